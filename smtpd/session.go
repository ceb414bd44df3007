package main

import (
	"errors"
	"io"
	"log/slog"
	"strings"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"tern/common/authguard"
	"tern/common/listen"
	"tern/common/mailaddr"
	"tern/common/maillog"
	"tern/common/recipient"
	"tern/common/serve"
	"tern/common/smtpserver"
)

// session is one SMTP session on one listener. common/smtpserver owns the
// command loop and its state (greeting, MAIL, RCPT, DATA); the session
// decides policy at each step and turns failures into typed replies.
type session struct {
	srv  *server
	kind kind
	conn *smtpserver.Conn
	sc   *serve.Conn // the admitted connection (guard.go)
	log  *slog.Logger
	ip   string

	authUser string     // the authenticated address, "" before AUTH
	peer     *localPeer // the local user, on the local submission socket

	authFailures int // failed AUTHs, for login.max_failures (throttle.go)

	from     string
	mailOpts smtp.MailOptions
	rcpts    []rcpt
}

// rcpt is one accepted recipient.
type rcpt struct {
	addr  string
	local bool // a local domain: delivered through lmtpd
	opts  smtp.RcptOptions
}

func (s *server) newSession(k kind, c *smtpserver.Conn) (smtp.Session, error) {
	sc := serveConnOf(c.Conn())
	sess := &session{srv: s, kind: k, conn: c, sc: sc, log: s.log}
	if sc != nil {
		sess.ip, sess.log = sc.Client(), sc.Log
		switch k {
		case kindMX:
			// A greeting ends the login stage of a sender that never logs in.
			sc.Login("")
		case kindLocal:
			// The kernel vouched for the peer: it counts as authenticated
			// as its own local sender (local.go).
			p, err := s.peerOf(sc.Conn)
			if err != nil {
				return nil, err
			}
			sess.peer, sess.authUser = p, p.sender
			sess.log = sess.log.With("uid", p.uid)
		}
	}
	sess.log.Debug("session", "helo", c.Hostname(), "tls", sess.isTLS())
	return sess, nil
}

func (s *session) isTLS() bool {
	_, ok := s.conn.TLSConnectionState()
	return ok
}

// authAllowed: RFC 4954 4 and DESIGN.md: plaintext passwords only over TLS,
// except on loopback. The MX listener takes no logins at all.
func (s *session) authAllowed() bool {
	if s.kind == kindMX || s.kind == kindLocal {
		return false
	}
	return s.isTLS() || listen.IsLoopback(s.conn.Conn().RemoteAddr())
}

// AuthMechanisms implements smtp.AuthSession.
func (s *session) AuthMechanisms() []string {
	if !s.authAllowed() {
		return nil
	}
	return []string{sasl.Plain, sasl.Login}
}

// Auth implements smtp.AuthSession.
func (s *session) Auth(mech string) (sasl.Server, error) {
	if !s.authAllowed() {
		if s.kind == kindMX || s.kind == kindLocal {
			return nil, replyAuthNotOffered
		}
		return nil, replyEncryptionRequired
	}
	onSuccess := func(addr string) error {
		s.authUser = addr
		if s.sc != nil {
			s.sc.Login(addr) // ends the login deadline
		}
		s.authSucceeded(addr)
		maillog.Login(s.log, addr, s.isTLS())
		return nil
	}
	var inner sasl.Server
	switch strings.ToUpper(mech) {
	case sasl.Plain:
		inner = s.srv.users.NewPlainServer(onSuccess)
	case sasl.Login:
		inner = s.srv.users.NewLoginServer(onSuccess)
	default:
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return &saslGuard{Server: inner, sess: s, mech: mech}, nil
}

// saslGuard turns every SASL failure into 535 5.7.8 (RFC 4954 6), so the
// client learns nothing about why, and logs it for fail2ban.
type saslGuard struct {
	sasl.Server
	sess    *session
	mech    string
	account string // as the first response names it (authguard.SASLAccount)
	waited  bool
}

func (g *saslGuard) Next(resp []byte) ([]byte, bool, error) {
	// The delay comes before the first response is looked at; a PLAIN
	// message, or LOGIN's user name, names the account whose exemption
	// counts (common/authguard).
	if !g.waited && resp != nil {
		g.waited = true
		g.account = g.sess.srv.users.Canonical(authguard.SASLAccount(g.mech, resp))
		g.sess.loginDelay(g.account)
	}
	ch, done, err := g.Server.Next(resp)
	if err != nil {
		return nil, true, g.sess.authFailed(g.account, err)
	}
	return ch, done, nil
}

// refuse logs a refused command and returns its reply; the loop counts
// it towards max_errors.
func (s *session) refuse(r *smtp.SMTPError, stage, from, to string) error {
	maillog.Rejected(s.log, maillog.Rejection{Stage: stage, From: from, To: to, Code: r.Code, Reason: r.Message})
	return r
}

// Mail implements smtp.Session.
func (s *session) Mail(from string, opts *smtp.MailOptions) error {
	if s.kind == kindLocal {
		if s.peer == nil {
			return replyLocalError // unreachable: Accept refuses such peers
		}
		return s.localMail(from, opts)
	}
	if s.kind != kindMX && s.authUser == "" {
		// RFC 4954 6 and RFC 6409 4.3: submission requires AUTH.
		return s.refuse(replyAuthRequired, "mail", from, "")
	}
	if err := s.checkSpace("MAIL"); err != nil {
		return err
	}
	if from != "" {
		if _, _, err := mailaddr.Split(from); err != nil {
			return s.refuse(replyBadSender, "mail", from, "")
		}
	}
	if s.authUser != "" && !s.mayUseSender(from) {
		// RFC 6409 6.1: the MSA may refuse a sender the user does not own.
		return s.refuse(replySenderNotOwned, "mail", from, "")
	}
	if opts != nil && opts.RequireTLS && !s.isTLS() {
		// RFC 8689 4.1: REQUIRETLS is offered only after STARTTLS.
		return s.refuse(replyRequireTLSNeedsTLS, "mail", from, "")
	}
	s.from = from
	if opts != nil {
		s.mailOpts = *opts
	}
	return nil
}

// mayUseSender: the user's own address, or an alias that leads to them.
func (s *session) mayUseSender(from string) bool {
	if from == "" {
		return false
	}
	if strings.EqualFold(from, s.authUser) {
		return true
	}
	res, err := s.srv.rcpts.Resolve(from)
	if err != nil {
		return false
	}
	for _, t := range res.Local {
		if strings.EqualFold(t.User, s.authUser) {
			return true
		}
	}
	return false
}

// Rcpt implements smtp.Session.
func (s *session) Rcpt(to string, opts *smtp.RcptOptions) error {
	if to == "postmaster" {
		// RFC 5321 4.1.1.3 and 4.5.1: common/smtpserver gives
		// "<Postmaster>" without a domain as "postmaster"; it is the
		// postmaster of the primary domain.
		to = "postmaster@" + s.srv.cfg().Domains[0]
	}
	local, domain, err := mailaddr.Split(to)
	if err != nil {
		return s.refuse(replyBadRecipient, "rcpt", s.from, to)
	}
	addr := local + "@" + domain
	r := rcpt{addr: addr}
	if opts != nil {
		r.opts = *opts
	}
	if s.srv.cfg().IsLocalDomain(domain) {
		if _, err := s.srv.rcpts.Resolve(addr); err != nil {
			if errors.Is(err, recipient.ErrUnknown) {
				return s.refuse(replyUnknownUser, "rcpt", s.from, to)
			}
			s.log.Error("resolve recipient", "to", to, "err", err)
			return replyLocalError
		}
		r.local = true
	} else if s.authUser == "" {
		// RFC 5321 3.6.2 and 7.1: relaying only for authenticated users.
		return s.refuse(replyRelayDenied, "rcpt", s.from, to)
	}
	for _, have := range s.rcpts {
		if have.addr == addr {
			return nil // the same recipient twice gets one copy
		}
	}
	if err := s.checkSpace("RCPT"); err != nil {
		return err
	}
	if s.authUser != "" {
		// smtpd.submission_rate, per user and per sender.
		if err := s.checkRate(); err != nil {
			return err
		}
	}
	s.rcpts = append(s.rcpts, r)
	return nil
}

// Reset implements smtp.Session.
func (s *session) Reset() {
	s.from, s.mailOpts, s.rcpts = "", smtp.MailOptions{}, nil
}

// Logout implements smtp.Session.
func (s *session) Logout() error { return nil }

// Data implements smtp.Session; see receive.go.
func (s *session) Data(r io.Reader) error {
	if s.sc != nil {
		// A shutdown lets the message end before its 421 (common/serve).
		s.sc.SetBusy(true)
		defer s.sc.SetBusy(false)
	}
	if err := s.checkSpace("DATA"); err != nil {
		return err
	}
	return s.receive(r)
}
