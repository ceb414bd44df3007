package main

import (
	"context"
	"time"

	"github.com/emersion/go-smtp"

	"tern/common/auth"
	"tern/common/maillog"
)

// Hardening of smtpd's sessions ([login] and [storage] in tern.toml):
// the per-connection limit on failed AUTHs, the per-address login delay
// shared with imapd and pop3d (common/authguard) and the free-space
// reserve. The short timeout before login is common/serve's (guard.go).

// replyTooManyAuthFailures ends a session after login.max_failures failed
// AUTHs (RFC 5321 3.8: the server may close with 421 at any time).
var replyTooManyAuthFailures = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0},
	Message: "Too many failed logins, closing connection"}

// replyNoSpace: RFC 5321 4.2.2 452 and RFC 3463 3.5 X.3.1 (mail system
// full); the sender keeps the message and retries.
var replyNoSpace = &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 3, 1},
	Message: "Insufficient system storage, try again later"}

// loginDelay waits out the delay of the client's address for account
// (common/authguard; "" when the exchange has not named it) before its
// credentials are checked; RFC 5321's timeouts bound the wait.
func (s *session) loginDelay(account string) {
	ctx, cancel := context.WithTimeout(context.Background(), s.srv.cfg().Login.MaxDelay.D()+time.Second)
	defer cancel()
	s.srv.guard.Before(ctx, s.ip, account, s.log)
}

// authFailed records a failed AUTH, logs the line fail2ban looks for, and
// returns the reply: 535 5.7.8 (RFC 4954 6), or 421 4.7.0 and the end of
// the session at login.max_failures.
func (s *session) authFailed(account string, err error) error {
	s.authFailures++
	ipFailures := s.srv.guard.Failed(s.ip, account, s.log)
	maillog.AuthFailed(s.log, account, auth.Reason(err), s.authFailures, ipFailures)
	if s.authFailures >= s.srv.cfg().Login.MaxFailures {
		// The loop closes the connection after a 421 (RFC 5321 3.8).
		return replyTooManyAuthFailures
	}
	return smtp.ErrAuthFailed
}

// authSucceeded marks the account known good at the client's address.
func (s *session) authSucceeded(addr string) { s.srv.guard.Succeeded(s.ip, addr, s.log) }

// checkSpace refuses new mail while the queue's file system (which smtpd
// writes every message to first) is below the [storage] reserve.
func (s *session) checkSpace(stage string) error {
	st := s.srv.cfg().Storage
	if err := s.srv.queue.CheckSpace(int64(st.MinFreeSpace), st.MinFreeInodes); err != nil {
		maillog.Rejected(s.log, maillog.Rejection{Stage: stage, From: s.from, Code: replyNoSpace.Code, Reason: err.Error()})
		return replyNoSpace
	}
	return nil
}
