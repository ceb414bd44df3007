package main

import (
	"context"
	"errors"
	"time"

	"github.com/emersion/go-imap/v2"

	"tern/common/maildir"
	"tern/common/maillog"
)

// Hardening of imapd's sessions ([login] and [storage] in tern.toml): the
// per-address login delay shared with smtpd and pop3d (common/authguard)
// and the free-space reserve for APPEND. The per-connection limit on
// failed logins and the pre-login timeout are the connection loop's
// (conn.go), where the decrypted commands are read.

// loginDelay waits out the delay of the client's address for account
// (common/authguard; "" when not named yet) before its credentials are
// checked.
func (s *session) loginDelay(account string) {
	ctx, cancel := context.WithTimeout(context.Background(), s.srv.cfg().Login.MaxDelay.D()+time.Second)
	defer cancel()
	s.srv.guard.Before(ctx, s.ip, s.srv.users.Canonical(account), s.log)
}

// loginFailed records a failed login for account with the shared table;
// the connection loop says BYE at login.max_failures.
func (s *session) loginFailed(account string) (failures, ipFailures int) {
	s.authFailures++
	ipFailures = s.srv.guard.Failed(s.ip, s.srv.users.Canonical(account), s.log)
	return s.authFailures, ipFailures
}

// loginSucceeded marks the account known good at the client's address.
func (s *session) loginSucceeded() {
	s.srv.guard.Succeeded(s.ip, s.user, s.log)
}

// errNoSpace is APPEND's answer below the [storage] reserve: NO with
// OVERQUOTA (RFC 5530 3), the code clients show as "out of space".
var errNoSpace = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeOverQuota,
	Text: "Not enough disk space, try again later"}

// checkSpace refuses an APPEND before anything is written while the
// Maildir's file system is below the reserve.
func (s *session) checkSpace(dir string) error {
	st := s.srv.cfg().Storage
	err := maildir.CheckSpace(dir, int64(st.MinFreeSpace), st.MinFreeInodes)
	if errors.Is(err, maildir.ErrNoSpace) {
		maillog.Rejected(s.log, maillog.Rejection{Stage: "append", Reason: err.Error()})
		return errNoSpace
	}
	if err != nil {
		s.log.Warn("free space check", "err", err)
	}
	return nil
}
