package main

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/emersion/go-sasl"

	"tern/common/auth"
	"tern/common/authguard"
	"tern/common/maillog"
)

// Handlers of the AUTHORIZATION state (RFC 1939 4, 7), CAPA (RFC 2449 5),
// STLS (RFC 2595 4) and AUTH (RFC 5034 4).

// saslMechanisms are the SASL mechanisms offered, in CAPA and AUTH order.
var saslMechanisms = []string{"PLAIN", "LOGIN"}

// cmdCapa lists the capabilities (RFC 2449 5). USER and SASL are listed only
// where they may be used, so that a client never sends a password in the
// clear to find out it was refused (the role LOGINDISABLED plays in IMAP).
func (s *session) cmdCapa(c command) (reply, error) {
	if _, ok := c.args(0, 0); !ok {
		return replySyntax, nil
	}
	lines := []string{"TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"}
	if s.state == stateAuthorization {
		if s.srv.tls != nil && !s.tls {
			lines = append(lines, "STLS")
		}
		if s.plaintextAllowed() {
			lines = append(lines, "USER", "SASL "+strings.Join(saslMechanisms, " "))
		}
	}
	// RFC 2449 6.9: IMPLEMENTATION is for humans; the version stays out of
	// it so that it tells an attacker nothing.
	lines = append(lines, "IMPLEMENTATION tern")
	return reply{ok: true, text: "capability list follows", lines: lines}, nil
}

// cmdStls starts TLS (RFC 2595 4). The handshake runs after the +OK has been
// flushed; whatever the client pipelined after STLS is discarded, never
// executed after the handshake.
func (s *session) cmdStls(c command) (reply, error) {
	if _, ok := c.args(0, 0); !ok {
		return replySyntax, nil
	}
	if s.tls {
		return errReply(codeNone, "TLS is already active"), nil
	}
	if s.srv.tls == nil {
		return errReply(codeNone, "TLS is not available"), nil
	}
	return reply{ok: true, text: "begin TLS negotiation", then: s.startTLS}, nil
}

func (s *session) startTLS() error {
	if n := s.r.Buffered(); n > 0 {
		s.log.Debug("discarding bytes sent before the TLS handshake", "bytes", n)
	}
	tc, err := s.raw.StartTLS(s.srv.tls)
	if err != nil {
		return fmt.Errorf("tls handshake: %w", err)
	}
	s.setConn(tc)
	s.tls = true
	// RFC 2595 4: the session starts over in the AUTHORIZATION state; a
	// USER given before TLS does not carry over.
	s.user = ""
	s.log.Debug("tls started")
	return nil
}

// cmdUser names the user for PASS (RFC 1939 7). The answer is +OK whether or
// not the user exists, so that USER cannot be used to probe for addresses.
func (s *session) cmdUser(c command) (reply, error) {
	args, ok := c.args(1, 1)
	if !ok {
		return replySyntax, nil
	}
	if !s.plaintextAllowed() {
		return replyPlaintextNeedTLS, nil
	}
	s.user = args[0]
	return okReply("send PASS"), nil
}

// cmdPass checks the password for the name given by USER (RFC 1939 7). The
// whole rest of the line is the password: RFC 1939 7 lets a server treat
// spaces in the argument as part of it.
func (s *session) cmdPass(c command) (reply, error) {
	if !s.plaintextAllowed() {
		return replyPlaintextNeedTLS, nil
	}
	if s.user == "" {
		return reply{text: "send USER first", bad: true}, nil
	}
	if c.arg == "" {
		return replySyntax, nil
	}
	user := s.user
	s.user = ""
	if err := s.loginDelay(user); err != nil {
		return reply{}, err
	}
	address, err := s.srv.users.Authenticate(user, c.arg)
	if err != nil {
		return s.authFailed(user, err), nil
	}
	return s.login(address), nil
}

// cmdAuth runs a SASL exchange (RFC 5034 4). Both mechanisms send the
// password as it is, so AUTH is refused where USER/PASS is.
func (s *session) cmdAuth(c command) (reply, error) {
	args, ok := c.args(0, 2)
	if !ok {
		return replySyntax, nil
	}
	if !s.plaintextAllowed() {
		return replyPlaintextNeedTLS, nil
	}
	if len(args) == 0 {
		// Not in RFC 5034, but Outlook and other older clients send a
		// bare AUTH to learn the mechanisms, as RFC 1734 servers allowed.
		return reply{ok: true, text: "SASL mechanisms follow", lines: saslMechanisms}, nil
	}
	var address string
	onSuccess := func(a string) error { address = a; return nil }
	var srv sasl.Server
	switch strings.ToUpper(args[0]) {
	case "PLAIN":
		srv = s.srv.users.NewPlainServer(onSuccess)
	case "LOGIN":
		srv = s.srv.users.NewLoginServer(onSuccess)
	default:
		return errReply(codeNone, "unsupported SASL mechanism"), nil
	}
	var resp []byte
	if len(args) == 2 {
		// RFC 5034 4: "=" is an empty initial response.
		if args[1] != "=" {
			var err error
			if resp, err = base64.StdEncoding.DecodeString(args[1]); err != nil {
				if err := s.loginDelay(""); err != nil {
					return reply{}, err
				}
				return s.authFailed("", fmt.Errorf("initial response: %w", err)), nil
			}
		} else {
			resp = []byte{}
		}
	}
	var account string
	waited := false
	for {
		// The delay comes before the first response is looked at: a
		// PLAIN message, or LOGIN's user name, names the account whose
		// exemption counts (common/authguard).
		if !waited && resp != nil {
			waited = true
			account = authguard.SASLAccount(args[0], resp)
			if err := s.loginDelay(account); err != nil {
				return reply{}, err
			}
		}
		challenge, done, err := srv.Next(resp)
		if err != nil {
			return s.authFailed(account, err), nil
		}
		if done {
			return s.login(address), nil
		}
		// RFC 5034 4: a challenge is "+" SP base64, answered by one line
		// of base64, or "*" to cancel.
		s.w.WriteString("+ " + base64.StdEncoding.EncodeToString(challenge) + "\r\n")
		if err := s.w.Flush(); err != nil {
			return reply{}, err
		}
		line, err := s.readLine(maxSASLLine)
		switch {
		case errors.Is(err, errLineTooLong), errors.Is(err, errBareLF):
			return s.authFailed(account, err), nil
		case err != nil:
			return reply{}, err
		}
		if string(line) == "*" {
			return errReply(codeNone, "authentication cancelled"), nil
		}
		if resp, err = base64.StdEncoding.DecodeString(string(line)); err != nil {
			return s.authFailed(account, fmt.Errorf("response: %w", err)), nil
		}
	}
}

// authFailed counts a failed login, logs it for the admin (and fail2ban),
// and closes the connection once the limit is reached.
func (s *session) authFailed(user string, err error) reply {
	s.failures++
	ipFailures := s.srv.guard.Failed(s.ip, s.srv.users.Canonical(user), s.log)
	maillog.AuthFailed(s.log, user, authReason(err), s.failures, ipFailures)
	// RFC 3206 5: [AUTH] says the credentials were refused, so a client
	// asks the user again instead of retrying later.
	r := errReply(codeAuth, "authentication failed")
	if s.failures >= s.srv.options().maxAuthFailures {
		r.text += "; too many failures, closing"
		r.quit = true
	}
	return r
}

func authReason(err error) string {
	switch {
	case errors.Is(err, auth.ErrFailed):
		return "bad credentials"
	case errors.Is(err, auth.ErrMalformed):
		return "malformed SASL response"
	}
	return err.Error()
}

// loginDelay waits out the delay of the client's address after failed
// logins (common/authguard) before credentials are checked, so that the
// wait cannot be skipped by hanging up early on a slow answer. It fails
// only when the server shuts down meanwhile.
func (s *session) loginDelay(account string) error {
	if s.srv.guard.Before(s.srv.conns.Context(), s.ip, s.srv.users.Canonical(account), s.log) != nil {
		return errShutdown
	}
	return nil
}

// login opens and locks the maildrop of a user who has just authenticated
// and enters the TRANSACTION state (RFC 1939 4). If the maildrop cannot be
// had the session stays in AUTHORIZATION.
func (s *session) login(address string) reply {
	drop, err := openMaildrop(s.srv.maildir, address)
	if errors.Is(err, errInUse) {
		maillog.LoginRefused(s.log, address, "maildrop in use")
		// RFC 2449 8.1.1: [IN-USE] says another session holds it.
		return errReply(codeInUse, "maildrop is locked by another POP3 session")
	}
	if err != nil {
		s.log.Error("open maildrop", "user", address, "err", err)
		return errReply(codeSysTemp, "cannot open the maildrop now, try again later")
	}
	s.drop, s.address, s.state = drop, address, stateTransaction
	// The maildrop's lock is the per-user limit (one POP3 session each);
	// Login ends the login deadline.
	s.raw.Login("")
	s.srv.guard.Succeeded(s.ip, address, s.log)
	maillog.Login(s.log, address, s.tls)
	s.log.Debug("maildrop opened", "user", address, "messages", len(drop.msgs))
	return okReply("maildrop has %d messages", len(drop.msgs))
}
