package main

import (
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/emersion/go-message/textproto"
)

// The MIME header fields that BODYSTRUCTURE reports are given to the
// client as they are in the message, the way Dovecot does and IMAP4rev1
// clients expect (RFC 3501 7.4.2: the fields are the message's): the case
// of types, parameter names and values is kept, RFC 2047 encoded words are
// left for the client to decode, and RFC 2231 parameters keep their
// encoded form. Only continuations are joined (RFC 2231 3), since the
// grammar has no room for them.

// rawField returns the first field named key, unfolded (RFC 5322 2.2.3:
// the CRLF of a fold is removed, its white space kept) and trimmed, and
// whether the field is present.
func rawField(h textproto.Header, key string) (string, bool) {
	raw, err := h.Raw(key)
	if err != nil || raw == nil {
		return "", false
	}
	_, v, _ := strings.Cut(string(raw), ":")
	return strings.Trim(unfold(v), " \t"), true
}

// unfold removes the CR and LF of folded lines (a Replacer built per call
// would cost more than the field).
func unfold(v string) string {
	if !strings.ContainsAny(v, "\r\n") {
		return v
	}
	b := make([]byte, 0, len(v))
	for i := 0; i < len(v); i++ {
		if v[i] != '\r' && v[i] != '\n' {
			b = append(b, v[i])
		}
	}
	return string(b)
}

// mimeParam is one parameter of a Content-Type or Content-Disposition.
type mimeParam struct{ key, value string }

// contentType is a parsed Content-Type or Content-Disposition value.
type contentType struct {
	typ, sub string // sub is empty for Content-Disposition
	params   []mimeParam
}

// param returns the value of a parameter, matching its name without
// regard to case (RFC 2045 5.1).
func (c contentType) param(key string) (string, bool) {
	for _, p := range c.params {
		if strings.EqualFold(p.key, key) {
			return p.value, true
		}
	}
	return "", false
}

// paramMap gives the parameters to the encoder, or nil when there are none
// (written NIL).
func (c contentType) paramMap() map[string]string {
	if len(c.params) == 0 {
		return nil
	}
	m := make(map[string]string, len(c.params))
	for _, p := range c.params {
		if _, dup := m[p.key]; !dup {
			m[p.key] = p.value
		}
	}
	return m
}

// parseContentType parses "type/subtype; k=v; ..." (RFC 2045 5.1) or,
// with withSub false, "disposition; k=v" (RFC 2183 2). It is lenient the
// way mail readers are: it stops at the first thing it cannot parse and
// keeps what it has. ok is false when not even the type is there.
func parseContentType(v string, withSub bool) (ct contentType, ok bool) {
	s := &mimeScanner{s: v}
	s.skipCFWS()
	ct.typ = s.token()
	if ct.typ == "" {
		return ct, false
	}
	if withSub {
		s.skipCFWS()
		if s.peek() == '/' {
			s.pos++
			s.skipCFWS()
			ct.sub = s.token()
		}
	}
	for {
		s.skipCFWS()
		if s.peek() != ';' {
			break
		}
		s.pos++
		s.skipCFWS()
		key := s.token()
		if key == "" {
			break
		}
		s.skipCFWS()
		if s.peek() != '=' {
			break
		}
		s.pos++
		s.skipCFWS()
		var value string
		if s.peek() == '"' {
			value = s.quoted()
		} else {
			value = s.token()
		}
		ct.params = append(ct.params, mimeParam{key, value})
	}
	ct.params = joinContinuations(ct.params)
	return ct, true
}

// joinContinuations joins RFC 2231 3 continuations (name*0, name*1*, …)
// into one parameter: "name" when no piece is encoded, else "name*" with
// the pieces that were not encoded percent-encoded, as RFC 2231 4.1 lets
// them be mixed.
func joinContinuations(params []mimeParam) []mimeParam {
	type piece struct {
		n       int
		encoded bool
		value   string
	}
	pieces := make(map[string][]piece)
	var out []mimeParam
	first := make(map[string]int) // where the joined parameter goes
	for _, p := range params {
		name, rest, found := strings.Cut(p.key, "*")
		if !found || rest == "" {
			out = append(out, p)
			continue
		}
		encoded := strings.HasSuffix(rest, "*")
		n, err := strconv.Atoi(strings.TrimSuffix(rest, "*"))
		if err != nil || n < 0 {
			out = append(out, p)
			continue
		}
		lname := strings.ToLower(name)
		if _, ok := pieces[lname]; !ok {
			first[lname] = len(out)
			out = append(out, mimeParam{key: name})
		}
		pieces[lname] = append(pieces[lname], piece{n, encoded, p.value})
	}
	for lname, ps := range pieces {
		sort.SliceStable(ps, func(i, j int) bool { return ps[i].n < ps[j].n })
		anyEncoded := false
		for _, p := range ps {
			anyEncoded = anyEncoded || p.encoded
		}
		var b strings.Builder
		for _, p := range ps {
			if anyEncoded && !p.encoded {
				b.WriteString(strings.ReplaceAll(url.PathEscape(p.value), "+", "%2B"))
			} else {
				b.WriteString(p.value)
			}
		}
		i := first[lname]
		if anyEncoded {
			out[i].key += "*"
		}
		out[i].value = b.String()
	}
	return out
}

// mimeScanner reads the RFC 2045 5.1 / RFC 5322 3.2 lexical tokens of a
// header value.
type mimeScanner struct {
	s   string
	pos int
	// comment is the text of the last comment skipped, for addresses whose
	// only name is a comment ("a@b.c (Name)").
	comment string
	// route is the source route of the last angle-addr read, "" if none.
	route string
}

func (s *mimeScanner) peek() byte {
	if s.pos < len(s.s) {
		return s.s[s.pos]
	}
	return 0
}

func (s *mimeScanner) atEnd() bool { return s.pos >= len(s.s) }

// skipCFWS skips white space and (nested) comments (RFC 5322 3.2.2).
func (s *mimeScanner) skipCFWS() {
	for s.pos < len(s.s) {
		switch c := s.s[s.pos]; {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			s.pos++
		case c == '(':
			start, depth, i := s.pos+1, 0, s.pos
		comment:
			for ; i < len(s.s); i++ {
				switch s.s[i] {
				case '\\':
					i++
				case '(':
					depth++
				case ')':
					if depth--; depth == 0 {
						break comment
					}
				}
			}
			s.comment = strings.TrimSpace(s.s[start:min(i, len(s.s))])
			s.pos = min(i+1, len(s.s))
		default:
			return
		}
	}
}

// token reads an RFC 2045 5.1 token: anything but controls, space and
// tspecials.
func (s *mimeScanner) token() string {
	start := s.pos
	for s.pos < len(s.s) {
		c := s.s[s.pos]
		if c <= ' ' || c == 0x7f || strings.IndexByte(`()<>@,;:\"/[]?=`, c) >= 0 {
			break
		}
		s.pos++
	}
	return s.s[start:s.pos]
}

// quoted reads a quoted-string at the current '"' and returns its content
// with the quoting undone; an unterminated one runs to the end.
func (s *mimeScanner) quoted() string {
	var b strings.Builder
	for s.pos++; s.pos < len(s.s); s.pos++ {
		c := s.s[s.pos]
		switch c {
		case '\\':
			if s.pos+1 < len(s.s) {
				s.pos++
				b.WriteByte(s.s[s.pos])
			}
		case '"':
			s.pos++
			return b.String()
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
