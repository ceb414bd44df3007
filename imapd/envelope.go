package main

import (
	"strings"

	"github.com/emersion/go-imap/v2"
	gomessage "github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"
)

// envelope builds the ENVELOPE of a message (RFC 3501 7.4.2) from its
// header as Dovecot does: subject, names and message ids are the header's
// text, unfolded, with RFC 2047 encoded words left for the client to
// decode, and groups are given as RFC 3501's group markers. Two things
// the encoder does not do itself: the date is written from its parsed
// value (in RFC 5322 form, or NIL when it does not parse), and names and
// subjects in raw 8-bit are sent as RFC 2047 words.
func envelope(h textproto.Header) *imap.Envelope {
	env := &imap.Envelope{}
	if _, ok := rawField(h, "Date"); ok {
		mh := mail.Header{Header: gomessage.Header{Header: h}}
		env.Date, _ = mh.Date()
	}
	env.Subject, _ = rawField(h, "Subject")
	for _, f := range []struct {
		key string
		dst *[]imap.Address
	}{
		{"From", &env.From}, {"Sender", &env.Sender}, {"Reply-To", &env.ReplyTo},
		{"To", &env.To}, {"Cc", &env.Cc}, {"Bcc", &env.Bcc},
	} {
		if v, ok := rawField(h, f.key); ok {
			*f.dst = parseAddressList(v)
		}
	}
	// The encoder writes "<" + id + ">", so an id field that is one
	// bracketed string goes through unchanged; anything else (a comment
	// after the id) is reduced to the first id.
	for _, f := range []struct {
		key string
		set func(string)
	}{
		{"In-Reply-To", func(id string) { env.InReplyTo = []string{id} }},
		{"Message-Id", func(id string) { env.MessageID = id }},
	} {
		v, ok := rawField(h, f.key)
		if !ok || !strings.HasPrefix(v, "<") {
			continue
		}
		if strings.HasSuffix(v, ">") {
			f.set(v[1 : len(v)-1])
		} else if id, _, found := strings.Cut(v[1:], ">"); found {
			f.set(id)
		}
	}
	return env
}

// parseAddressList parses an address-list (RFC 5322 3.4) leniently:
// whatever cannot be parsed ends the list, and what was parsed is kept.
// Groups become a start marker (the group name as mailbox, no host), their
// members and an end marker (RFC 3501 7.4.2).
func parseAddressList(v string) []imap.Address {
	addrs, _ := parseAddresses(v)
	return addrs
}

// parseAddresses is parseAddressList that also gives each address's
// obsolete source route (RFC 5322 4.4, "@a,@b" of "<@a,@b:user@host>"), ""
// when it has none; group markers have none.
func parseAddresses(v string) (out []imap.Address, routes []string) {
	s := &mimeScanner{s: v}
	for {
		s.skipCFWS()
		if s.atEnd() {
			return out, routes
		}
		if s.peek() == ',' {
			s.pos++
			continue
		}
		before := s.pos
		phrase := s.phrase()
		s.skipCFWS()
		if s.peek() == ':' {
			s.pos++
			out = append(out, imap.Address{Mailbox: phrase})
			routes = append(routes, "")
			for {
				s.skipCFWS()
				if s.atEnd() {
					break
				}
				if c := s.peek(); c == ';' {
					s.pos++
					break
				} else if c == ',' {
					s.pos++
					continue
				}
				addr, ok := s.mailbox(s.phrase())
				if !ok {
					break
				}
				out = append(out, addr)
				routes = append(routes, s.route)
			}
			out = append(out, imap.Address{})
			routes = append(routes, "")
			continue
		}
		addr, ok := s.mailbox(phrase)
		if !ok || s.pos == before {
			return out, routes
		}
		out = append(out, addr)
		routes = append(routes, s.route)
	}
}

// mailbox reads the rest of a mailbox (RFC 5322 3.4) whose leading
// phrase has been read: an angle-addr, or an addr-spec whose local part
// was that phrase.
func (s *mimeScanner) mailbox(phrase string) (imap.Address, bool) {
	s.comment, s.route = "", ""
	s.skipCFWS()
	switch s.peek() {
	case '<':
		s.pos++
		s.skipCFWS()
		// An obsolete route ("@a,@b:", RFC 5322 4.4) is kept aside:
		// ENVELOPE has a field for it (RFC 3501 7.4.2 adl).
		if s.peek() == '@' {
			if i := strings.IndexByte(s.s[s.pos:], ':'); i >= 0 {
				s.route = strings.Join(strings.Fields(s.s[s.pos:s.pos+i]), "")
				s.pos += i + 1
			}
		}
		local := s.localPart()
		var host string
		s.skipCFWS()
		if s.peek() == '@' {
			s.pos++
			host = s.domain()
		}
		if i := strings.IndexByte(s.s[s.pos:], '>'); i >= 0 {
			s.pos += i + 1
		} else {
			s.pos = len(s.s)
		}
		return imap.Address{Name: phrase, Mailbox: local, Host: host}, local != "" || host != ""
	case '@':
		s.pos++
		host := s.domain()
		s.skipCFWS()
		return imap.Address{Name: s.comment, Mailbox: strings.ReplaceAll(phrase, " ", ""), Host: host}, true
	}
	if phrase == "" {
		return imap.Address{}, false
	}
	// A bare word: a local part without a domain.
	return imap.Address{Name: s.comment, Mailbox: phrase}, true
}

// phrase reads words (atoms with dots, quoted strings) up to a special
// character, and joins them with single spaces, unquoted.
func (s *mimeScanner) phrase() string {
	var words []string
	for {
		s.skipCFWS()
		switch c := s.peek(); {
		case c == 0:
			return strings.Join(words, " ")
		case c == '"':
			words = append(words, s.quoted())
		default:
			w := s.atom()
			if w == "" {
				return strings.Join(words, " ")
			}
			words = append(words, w)
		}
	}
}

// atom reads RFC 5322 atext and dots (obs-phrase allows dots).
func (s *mimeScanner) atom() string {
	start := s.pos
	for s.pos < len(s.s) {
		c := s.s[s.pos]
		if c <= ' ' || strings.IndexByte(`()<>[]:;@\,"`, c) >= 0 {
			break
		}
		s.pos++
	}
	return s.s[start:s.pos]
}

func (s *mimeScanner) localPart() string {
	var b strings.Builder
	for {
		s.skipCFWS()
		switch s.peek() {
		case '"':
			b.WriteString(s.quoted())
		default:
			w := s.atom()
			if w == "" {
				return b.String()
			}
			b.WriteString(w)
		}
	}
}

func (s *mimeScanner) domain() string {
	s.skipCFWS()
	if s.peek() == '[' {
		start := s.pos
		if i := strings.IndexByte(s.s[s.pos:], ']'); i >= 0 {
			s.pos += i + 1
		} else {
			s.pos = len(s.s)
		}
		return s.s[start:s.pos]
	}
	return s.atom()
}
