package main

import (
	"sort"
	"strings"

	"tern/imapd/wire"
)

// The commands valid in every state (RFC 9051 6.1) and the session-wide
// ones of the authenticated state: ENABLE (RFC 5161), NAMESPACE (RFC
// 2342), ID (RFC 2971).

func init() {
	commands["CAPABILITY"] = commandSpec{anyState, (*session).cmdCapability}
	commands["NOOP"] = commandSpec{anyState, (*session).cmdNoop}
	commands["LOGOUT"] = commandSpec{anyState, (*session).cmdLogout}
	commands["ID"] = commandSpec{anyState, (*session).cmdID}
	commands["ENABLE"] = commandSpec{authState, (*session).cmdEnable}
	commands["NAMESPACE"] = commandSpec{authState, (*session).cmdNamespace}
}

// cmdCapability: RFC 9051 6.1.1.
func (s *session) cmdCapability(c *wire.Command, p *wire.Parser) (reply, error) {
	if err := p.End(); err != nil {
		return reply{}, err
	}
	s.enc.Atom("* CAPABILITY ").Atom(s.capabilities()).CRLF()
	return reply{}, nil
}

// cmdNoop: RFC 9051 6.1.2; the poll after every command gives the
// updates.
func (s *session) cmdNoop(c *wire.Command, p *wire.Parser) (reply, error) {
	return reply{}, p.End()
}

// cmdLogout: RFC 9051 6.1.3.
func (s *session) cmdLogout(c *wire.Command, p *wire.Parser) (reply, error) {
	if err := p.End(); err != nil {
		return reply{}, err
	}
	s.enc.Atom("* BYE Logging out").CRLF()
	return reply{}, errLogout
}

// cmdID: RFC 2971. The client's parameters are logged; the server tells
// its name only.
func (s *session) cmdID(c *wire.Command, p *wire.Parser) (reply, error) {
	params, err := p.ID()
	if err != nil {
		return reply{}, err
	}
	if err := p.End(); err != nil {
		return reply{}, err
	}
	if len(params) > 0 {
		keys := make([]string, 0, len(params))
		for k := range params {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		args := make([]any, 0, 2*len(keys))
		for _, k := range keys {
			args = append(args, "id_"+strings.ToLower(k), params[k])
		}
		s.log.Debug("client id", args...)
	}
	s.enc.Atom("* ID (").String("name").SP().String("tern").Atom(")").CRLF()
	return reply{}, nil
}

// cmdEnable: RFC 5161. IMAP4rev2 (RFC 9051 2.3) and UTF8=ACCEPT (RFC
// 6855 3) change how this session is answered; others are ignored.
func (s *session) cmdEnable(c *wire.Command, p *wire.Parser) (reply, error) {
	var enabled []string
	for p.SP() {
		a, err := p.Atom()
		if err != nil {
			return reply{}, err
		}
		switch strings.ToUpper(a) {
		case "IMAP4REV2":
			if !s.rev2 {
				s.rev2 = true
				enabled = append(enabled, "IMAP4rev2")
				// Enabled while selected: the open mailbox stops
				// showing \Recent too (RFC 9051 2.3.2).
				s.mu.Lock()
				if s.sel != nil {
					s.sel.rev2 = true
				}
				s.mu.Unlock()
			}
		case "CONDSTORE": // RFC 7162 3.1
			if !s.condstore {
				s.enableCondStore()
				enabled = append(enabled, "CONDSTORE")
			}
		case "QRESYNC": // RFC 7162 3.2.3
			if !s.qresync {
				s.enableQResync()
				enabled = append(enabled, "QRESYNC")
			}
		case "UTF8=ACCEPT":
			if !s.utf8 {
				s.utf8, s.enc.UTF8, s.rd.UTF8 = true, true, true
				enabled = append(enabled, "UTF8=ACCEPT")
			}
		}
	}
	if err := p.End(); err != nil {
		return reply{}, err
	}
	s.enc.Atom("* ENABLED")
	for _, e := range enabled {
		s.enc.SP().Atom(e)
	}
	s.enc.CRLF()
	return reply{}, nil
}

// cmdNamespace: RFC 2342, one personal namespace with no prefix.
func (s *session) cmdNamespace(c *wire.Command, p *wire.Parser) (reply, error) {
	if err := p.End(); err != nil {
		return reply{}, err
	}
	s.enc.Atom(`* NAMESPACE (("" `).String(string(delim)).Atom(")) NIL NIL").CRLF()
	return reply{}, nil
}
