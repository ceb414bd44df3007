package main

import (
	"context"
	"errors"
	"time"

	"github.com/emersion/go-imap/v2"

	"tern/common/maildir"
)

// Hardening of imapd's sessions ([login] and [storage] in tern.toml): the
// per-connection limit on failed logins, the per-address login delay
// shared with smtpd and pop3d (common/authguard), the short timeout before
// login, and the free-space reserve for APPEND.

// loginDelay waits out the delay of the client's address for account
// (common/authguard; "" when not named yet) before its credentials are
// checked.
func (s *session) loginDelay(account string) {
	ctx, cancel := context.WithTimeout(context.Background(), s.srv.cfg.Login.MaxDelay.D()+time.Second)
	defer cancel()
	s.srv.guard.Before(ctx, s.ip, s.srv.users.Canonical(account), s.log)
}

// loginFailed records a failed login with the shared table and, at
// login.max_failures, has the connection send BYE and close right after
// the tagged NO (RFC 9051 7.1.5: BYE may come at any time).
func (s *session) loginFailed(account string) (failures, ipFailures int) {
	s.authFailures++
	ipFailures = s.srv.guard.Failed(s.ip, s.srv.users.Canonical(account), s.log)
	if s.authFailures >= s.srv.cfg.Login.MaxFailures {
		if lc, ok := s.conn.NetConn().(*lineConn); ok {
			lc.byeAfterReply("Too many failed logins")
		}
	}
	return s.authFailures, ipFailures
}

// loginSucceeded marks the account known good at the client's address and
// lifts the short pre-login timeout.
func (s *session) loginSucceeded() {
	if lc, ok := s.conn.NetConn().(*lineConn); ok {
		lc.loggedIn.Store(true)
	}
	s.srv.guard.Succeeded(s.ip, s.user, s.log)
}

// byeAfterReply makes the connection say BYE and close after the next
// reply it writes.
func (c *lineConn) byeAfterReply(text string) {
	c.wmu.Lock()
	c.bye = text
	c.wmu.Unlock()
}

// afterWrite sends the pending BYE; called with wmu held.
func (c *lineConn) afterWrite() {
	if c.bye == "" {
		return
	}
	c.Conn.SetWriteDeadline(time.Now().Add(time.Second))
	c.Conn.Write([]byte("* BYE " + c.bye + "\r\n"))
	c.bye = ""
	c.Conn.Close()
}

// readLimit is the longest wait for the client: login.timeout until the
// session has logged in, imapd.idle_timeout after (RFC 9051 5.4: at
// least 30 minutes).
func (c *lineConn) readLimit() time.Duration {
	if c.loginTimeout > 0 && !c.loggedIn.Load() {
		return c.loginTimeout
	}
	return c.idle
}

// errNoSpace is APPEND's answer below the [storage] reserve: NO with
// OVERQUOTA (RFC 5530 3), the code clients show as "out of space".
var errNoSpace = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeOverQuota,
	Text: "Not enough disk space, try again later"}

// checkSpace refuses an APPEND before anything is written while the
// Maildir's file system is below the reserve.
func (s *session) checkSpace(dir string) error {
	st := s.srv.cfg.Storage
	err := maildir.CheckSpace(dir, int64(st.MinFreeSpace), st.MinFreeInodes)
	if errors.Is(err, maildir.ErrNoSpace) {
		s.log.Warn("APPEND refused: disk full", "event", "rejected", "err", err)
		return errNoSpace
	}
	if err != nil {
		s.log.Warn("free space check", "err", err)
	}
	return nil
}
