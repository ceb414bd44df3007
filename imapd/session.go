package main

import (
	"errors"
	"fmt"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-sasl"

	"tern/common/auth"
	"tern/common/authguard"
	"tern/common/config"
	"tern/common/maildir"
	"tern/common/maillog"
)

// The session's backend: what a command does to the store, whatever the
// wire looked like (conn.go and the cmd_*.go files read and answer it).

// Login checks a user's password (RFC 9051 6.2.3).
func (s *session) Login(username, password string) error {
	s.loginDelay(username)
	addr, err := s.srv.users.Authenticate(username, password)
	if err != nil {
		s.authFailed(username, err)
		return errAuthFailed
	}
	return s.loggedIn(addr)
}

// authFailed writes the mail log line an admin (or fail2ban) greps for.
func (s *session) authFailed(username string, err error) {
	if errors.Is(err, auth.ErrFailed) {
		n, ipn := s.loginFailed(username)
		maillog.AuthFailed(s.log, username, auth.Reason(err), n, ipn)
		return
	}
	s.authFailures++
	s.log.Warn("authentication error", "user", username, "err", err)
}

// loggedIn opens the store of an authenticated user, within the
// per-user connection limit.
func (s *session) loggedIn(addr string) error {
	if !s.raw.Login(addr) {
		maillog.LoginRefused(s.log, addr, "too many connections for this user")
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeLimit,
			Text: "Too many connections for this user"}
	}
	root, err := config.Expand(s.srv.cfg().Maildir, addr)
	if err != nil {
		s.raw.Logout()
		return storeError(s.log, "maildir path", err)
	}
	mbox, err := maildir.Open(root)
	if err != nil {
		s.raw.Logout()
		return storeError(s.log, "open maildir", fmt.Errorf("open maildir of %s: %w", addr, err))
	}
	s.user, s.mbox = addr, mbox
	s.loginSucceeded()
	maillog.Login(s.log, addr, s.tls)
	s.log = s.log.With("user", addr)
	return nil
}

// Authenticate returns the SASL server of a mechanism (RFC 9051 6.2.2).
func (s *session) Authenticate(mech string) (sasl.Server, error) {
	var srv sasl.Server
	switch mech {
	case "PLAIN", "plain":
		srv = s.srv.users.NewPlainServer(s.loggedIn)
	case "LOGIN", "login":
		srv = s.srv.users.NewLoginServer(s.loggedIn)
	default:
		return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot,
			Text: "Unsupported authentication mechanism"}
	}
	return &saslReplies{Server: srv, s: s, mech: mech, account: ""}, nil
}

// saslReplies turns the SASL servers' errors into IMAP replies.
type saslReplies struct {
	sasl.Server
	s       *session
	mech    string
	account string // as the first response names it, for the login brake
	waited  bool
}

func (r *saslReplies) Next(resp []byte) ([]byte, bool, error) {
	if !r.waited && resp != nil {
		r.waited = true
		if a := authguard.SASLAccount(r.mech, resp); a != "" {
			r.account = a
		}
		r.s.loginDelay(r.account)
	}
	challenge, done, err := r.Server.Next(resp)
	if err == nil {
		return challenge, done, nil
	}
	return nil, true, r.s.authError(r.account, err)
}

// Unauthenticate ends the login (RFC 8437).
func (s *session) Unauthenticate() error {
	s.notifyStop()
	s.unselect()
	s.raw.Logout()
	s.user, s.mbox = "", nil
	return nil
}

// AppendLimit is the largest message APPEND takes (RFC 7889).
func (s *session) AppendLimit() uint32 {
	limit := int64(s.srv.cfg().IMAPD.MaxLiteralSize)
	if limit > int64(^uint32(0)) {
		return ^uint32(0)
	}
	return uint32(limit)
}

// delim is the hierarchy separator the client sees; it is the store's.
const delim = rune('.')

func (s *session) unselect() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sel != nil {
		s.sel.close()
		s.sel = nil
	}
}
