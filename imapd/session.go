package main

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-sasl"

	"tern/common/auth"
	"tern/common/authguard"
	"tern/common/config"
	"tern/common/maildir"
)

// session is the backend of one IMAP connection. It translates between
// imapserver and the store (common/maildir) and holds nothing but what one
// client was told; imapserver owns the protocol state machine, so a command
// reaches a method here only in a state where it is valid.
type session struct {
	srv  *server
	conn *imapserver.Conn
	log  *slog.Logger
	ip   string

	user        string // canonical address once authenticated
	mbox        *maildir.Mailbox
	releaseUser func()

	authFailures int // failed logins, for login.max_failures (throttle.go)

	// mu guards sel: imapserver may close a session while its IDLE
	// goroutine is still finishing an update.
	mu  sync.Mutex
	sel *view
}

var (
	_ imapserver.SessionIMAP4rev2      = (*session)(nil)
	_ imapserver.SessionSASL           = (*session)(nil)
	_ imapserver.SessionAppendLimit    = (*session)(nil)
	_ imapserver.SessionUnauthenticate = (*session)(nil)
)

// Close implements imapserver.Session.
func (s *session) Close() error {
	s.unselect()
	if s.releaseUser != nil {
		s.releaseUser()
		s.releaseUser = nil
	}
	s.srv.forget(s)
	s.log.Debug("session closed")
	return nil
}

// Login implements imapserver.Session (RFC 3501 6.2.3).
func (s *session) Login(username, password string) error {
	s.loginDelay(username)
	addr, err := s.srv.users.Authenticate(username, password)
	if err != nil {
		s.authFailed(username, err)
		return imapserver.ErrAuthFailed
	}
	return s.loggedIn(addr)
}

// authFailed writes the mail log line an admin (or fail2ban) greps for.
func (s *session) authFailed(username string, err error) {
	if errors.Is(err, auth.ErrFailed) {
		n, ipn := s.loginFailed(username)
		s.srv.log.Info("authentication failed", "event", "auth_failed", "user", username, "ip", s.ip,
			"failures", n, "ip_failures", ipn)
		return
	}
	s.log.Warn("authentication error", "user", username, "err", err)
}

// loggedIn opens the store of an authenticated user, within the
// per-user connection limit.
func (s *session) loggedIn(addr string) error {
	release, ok := s.srv.limits.acquireUser(addr)
	if !ok {
		s.srv.log.Info("too many connections", "event", "rejected", "user", addr, "ip", s.ip)
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeLimit,
			Text: "Too many connections for this user"}
	}
	root, err := config.Expand(s.srv.cfg.Maildir, addr)
	if err != nil {
		release()
		return storeError(s.log, "maildir path", err)
	}
	mbox, err := maildir.Open(root)
	if err != nil {
		release()
		return storeError(s.log, "open maildir", fmt.Errorf("open maildir of %s: %w", addr, err))
	}
	s.user, s.mbox, s.releaseUser = addr, mbox, release
	s.loginSucceeded()
	s.log = s.log.With("user", addr)
	s.log.Info("logged in", "event", "login")
	return nil
}

// AuthenticateMechanisms implements imapserver.SessionSASL.
func (s *session) AuthenticateMechanisms() []string { return []string{"PLAIN", "LOGIN"} }

// Authenticate implements imapserver.SessionSASL (RFC 3501 6.2.2).
func (s *session) Authenticate(mech string) (sasl.Server, error) {
	var srv sasl.Server
	switch mech {
	case "PLAIN":
		srv = s.srv.users.NewPlainServer(s.loggedIn)
	case "LOGIN":
		srv = s.srv.users.NewLoginServer(s.loggedIn)
	default:
		return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Text: "Unsupported authentication mechanism"}
	}
	return &saslReplies{Server: srv, s: s, mech: mech, account: "(sasl)"}, nil
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
	var ie *imap.Error
	switch {
	case errors.As(err, &ie):
		return nil, true, ie
	case errors.Is(err, auth.ErrFailed):
		r.s.authFailed(r.account, err)
		return nil, true, imapserver.ErrAuthFailed
	case errors.Is(err, auth.ErrMalformed), errors.Is(err, sasl.ErrUnexpectedClientResponse):
		return nil, true, &imap.Error{Type: imap.StatusResponseTypeBad, Text: "Malformed SASL response"}
	}
	r.s.authFailed(r.account, err)
	return nil, true, imapserver.ErrAuthFailed
}

// Unauthenticate implements imapserver.SessionUnauthenticate (RFC 8437).
func (s *session) Unauthenticate() error {
	s.unselect()
	if s.releaseUser != nil {
		s.releaseUser()
		s.releaseUser = nil
	}
	s.user, s.mbox = "", nil
	return nil
}

// AppendLimit implements imapserver.SessionAppendLimit (RFC 7889).
func (s *session) AppendLimit() uint32 {
	limit := int64(s.srv.cfg.IMAPD.MaxLiteralSize)
	if limit > int64(^uint32(0)) {
		return ^uint32(0)
	}
	return uint32(limit)
}

// Namespace implements imapserver.SessionNamespace (RFC 2342): one
// personal namespace with no prefix, "." as the hierarchy separator.
func (s *session) Namespace() (*imap.NamespaceData, error) {
	return &imap.NamespaceData{
		Personal: []imap.NamespaceDescriptor{{Prefix: "", Delim: delim}},
	}, nil
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
