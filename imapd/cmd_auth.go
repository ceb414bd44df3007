package main

import (
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-sasl"

	"tern/common/auth"
	"tern/imapd/wire"
)

// The commands of the not-authenticated state (RFC 9051 6.2) and
// UNAUTHENTICATE (RFC 8437).

func init() {
	commands["STARTTLS"] = commandSpec{stateNotAuthenticated, (*session).cmdStarttls}
	commands["LOGIN"] = commandSpec{stateNotAuthenticated, (*session).cmdLogin}
	commands["AUTHENTICATE"] = commandSpec{stateNotAuthenticated, (*session).cmdAuthenticate}
	commands["UNAUTHENTICATE"] = commandSpec{authState, (*session).cmdUnauthenticate}
}

// errReplied says the handler has written its tagged reply itself.
var errReplied = errors.New("imapd: reply written")

// cmdStarttls: RFC 9051 6.2.1. Anything the client sent after the
// command line is thrown away with the plaintext reader (setConn).
func (s *session) cmdStarttls(c *wire.Command, p *wire.Parser) (reply, error) {
	if err := p.End(); err != nil {
		return reply{}, err
	}
	if s.tls || s.srv.tls == nil {
		return reply{}, &imap.Error{Type: imap.StatusResponseTypeBad, Text: "TLS is not available here"}
	}
	if s.inflate != nil {
		// After UNAUTHENTICATE: RFC 4978 4 puts compression inside TLS,
		// never under it.
		return reply{}, &imap.Error{Type: imap.StatusResponseTypeBad, Text: "TLS cannot start inside COMPRESS"}
	}
	s.enc.StatusResponse(c.Tag, imap.StatusResponseTypeOK, "", "Begin TLS negotiation now")
	if err := s.bw.Flush(); err != nil {
		return reply{}, err
	}
	if n := s.rd.Buffered(); n > 0 {
		s.log.Info("dropped bytes pipelined after STARTTLS", "bytes", n)
	}
	tc, err := s.raw.StartTLS(s.srv.tls)
	if err != nil {
		return reply{}, fmt.Errorf("STARTTLS handshake: %w", err)
	}
	s.tls = true
	s.setConn(tc)
	return reply{}, errReplied
}

// cmdLogin: RFC 9051 6.2.3.
func (s *session) cmdLogin(c *wire.Command, p *wire.Parser) (reply, error) {
	if !p.SP() {
		return reply{}, wire.Bad("LOGIN needs a user name and a password")
	}
	user, err := p.AString()
	if err != nil || !p.SP() {
		return reply{}, wire.Bad("LOGIN needs a user name and a password")
	}
	pass, err := p.AString()
	if err != nil {
		return reply{}, err
	}
	if err := p.End(); err != nil {
		return reply{}, err
	}
	if !s.plaintextAllowed() {
		return reply{}, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodePrivacyRequired,
			Text: "Use STARTTLS first"}
	}
	if err := s.Login(user, pass); err != nil {
		return reply{}, err
	}
	return s.authenticated()
}

// authenticated moves to the authenticated state; the tagged OK carries
// the new capabilities (RFC 9051 6.2.3).
func (s *session) authenticated() (reply, error) {
	s.state = stateAuthenticated
	return reply{code: "CAPABILITY", arg: s.capabilities(), text: "Logged in"}, nil
}

// cmdAuthenticate: RFC 9051 6.2.2, with an initial response (RFC 4959).
func (s *session) cmdAuthenticate(c *wire.Command, p *wire.Parser) (reply, error) {
	if !p.SP() {
		return reply{}, wire.Bad("AUTHENTICATE needs a mechanism")
	}
	mech, err := p.Atom()
	if err != nil {
		return reply{}, err
	}
	var initial []byte
	hasInitial := p.SP()
	if hasInitial {
		ir, err := p.Atom()
		if err != nil {
			return reply{}, err
		}
		if ir != "=" {
			if initial, err = base64.StdEncoding.DecodeString(ir); err != nil {
				return reply{}, wire.Bad("Invalid base64")
			}
		}
	}
	if err := p.End(); err != nil {
		return reply{}, err
	}
	if !s.plaintextAllowed() {
		return reply{}, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodePrivacyRequired,
			Text: "Use STARTTLS first"}
	}
	srv, err := s.Authenticate(mech)
	if err != nil {
		return reply{}, err
	}
	resp := initial
	if !hasInitial {
		resp = nil
	}
	for {
		challenge, done, err := srv.Next(resp)
		if err != nil {
			return reply{}, err
		}
		if done {
			break
		}
		s.enc.Atom("+ ").Atom(base64.StdEncoding.EncodeToString(challenge)).CRLF()
		if err := s.bw.Flush(); err != nil {
			return reply{}, err
		}
		s.raw.SetReadDeadline(time.Now().Add(s.readTimeout()))
		line, err := s.rd.ReadLine()
		if err != nil {
			return reply{}, err
		}
		if line == "*" {
			// RFC 9051 6.2.2: the client cancelled.
			return reply{}, wire.Bad("AUTHENTICATE cancelled")
		}
		if resp, err = base64.StdEncoding.DecodeString(line); err != nil {
			return reply{}, wire.Bad("Invalid base64")
		}
	}
	if s.user == "" {
		return reply{}, errAuthFailed
	}
	return s.authenticated()
}

// cmdUnauthenticate: RFC 8437 3, back to the not-authenticated state.
func (s *session) cmdUnauthenticate(c *wire.Command, p *wire.Parser) (reply, error) {
	if err := p.End(); err != nil {
		return reply{}, err
	}
	s.Unauthenticate()
	s.state = stateNotAuthenticated
	s.utf8, s.rev2, s.enc.UTF8, s.rd.UTF8 = false, false, false, false
	return reply{}, nil
}

// authError turns the SASL servers' errors into IMAP replies; a failure
// counts against account (as the SASL response named it) for the brake.
func (s *session) authError(account string, err error) error {
	var ie *imap.Error
	switch {
	case errors.As(err, &ie):
		return ie
	case errors.Is(err, auth.ErrMalformed), errors.Is(err, sasl.ErrUnexpectedClientResponse):
		return wire.Bad("Malformed SASL response")
	}
	s.authFailed(account, err)
	return errAuthFailed
}
