package wire

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
)

// Parser reads the arguments of one command. Errors are *imap.Error of
// type BAD (or NO with a response code where RFC 5530 has one), ready to
// be the tagged reply.
type Parser struct {
	c   *Command
	pos int
	lit int // next literal of c.Lits
	// UTF8 says mailbox names are UTF-8 (RFC 6855 3: after ENABLE
	// UTF8=ACCEPT); else they are modified UTF-7 (RFC 3501 5.1.3).
	UTF8 bool
	// MaxDepth bounds the nesting of parenthesised lists and SEARCH keys.
	MaxDepth int
	// StatusMailboxID says a STATUS item list (of STATUS or of LIST's
	// RETURN (STATUS)) asked for MAILBOXID (RFC 8474 4.2), an item
	// imap.StatusOptions has no field for.
	StatusMailboxID bool
}

// NewParser parses c's arguments, starting after the command name.
func NewParser(c *Command, utf8 bool, maxDepth int) *Parser {
	p := &Parser{c: c, UTF8: utf8, MaxDepth: maxDepth}
	p.pos = min(len(c.Tag)+1+len(c.Name), len(c.Text))
	return p
}

// Bad is a BAD reply with text.
func Bad(format string, args ...any) *imap.Error {
	return &imap.Error{Type: imap.StatusResponseTypeBad, Text: fmt.Sprintf(format, args...)}
}

var errSyntax = Bad("Syntax error")

func (p *Parser) peek() byte {
	if p.pos < len(p.c.Text) {
		return p.c.Text[p.pos]
	}
	return 0
}

// More says whether arguments remain before the end of the command.
func (p *Parser) More() bool {
	ch := p.peek()
	return ch != '\r' && ch != '\n' && ch != 0
}

// Peek returns the next byte of the arguments (0 at the end).
func (p *Parser) Peek() byte { return p.peek() }

// SP reads one space.
func (p *Parser) SP() bool {
	if p.peek() == ' ' {
		p.pos++
		return true
	}
	return false
}

// Special reads the byte ch.
func (p *Parser) Special(ch byte) bool {
	if p.peek() == ch {
		p.pos++
		return true
	}
	return false
}

// End checks that the command ends here (RFC 9051 2.2.1: CRLF).
func (p *Parser) End() error {
	rest := p.c.Text[p.pos:]
	if string(rest) == "\r\n" {
		return nil
	}
	if string(rest) == "\n" {
		// A bare LF ends a line as well: clients that send it are
		// answered rather than left waiting.
		return nil
	}
	return Bad("Unexpected arguments")
}

// atLiteral says whether a literal announcement starts here.
func (p *Parser) atLiteral() bool {
	rest := p.c.Text[p.pos:]
	if len(rest) > 0 && rest[0] == '~' {
		rest = rest[1:]
	}
	if len(rest) == 0 || rest[0] != '{' {
		return false
	}
	end := bytes.IndexByte(rest, '}')
	return end > 0 && bytes.HasPrefix(rest[end+1:], []byte("\r\n")) || end > 0 && bytes.HasPrefix(rest[end+1:], []byte("\n"))
}

// literal reads a literal announcement and returns its data.
func (p *Parser) literal() ([]byte, error) {
	rest := p.c.Text[p.pos:]
	end := bytes.IndexByte(rest, '}')
	if rest[0] == '~' || end < 0 {
		return nil, errSyntax
	}
	p.pos += end + 1
	p.Special('\r') // a bare LF ends the line too
	if !p.Special('\n') {
		return nil, errSyntax
	}
	if p.lit >= len(p.c.Lits) {
		return nil, errSyntax
	}
	b := p.c.Lits[p.lit]
	p.lit++
	return b, nil
}

// RFC 9051 9: atom-specials are "(" ")" "{" SP CTL list-wildcards
// quoted-specials resp-specials.
func isAtomChar(ch byte) bool {
	if ch <= 0x1f || ch >= 0x7f {
		return false
	}
	switch ch {
	case '(', ')', '{', ' ', '%', '*', '"', '\\', ']':
		return false
	}
	return true
}

// Atom reads an atom.
func (p *Parser) Atom() (string, error) {
	start := p.pos
	for p.pos < len(p.c.Text) && isAtomChar(p.c.Text[p.pos]) {
		p.pos++
	}
	if p.pos == start {
		return "", errSyntax
	}
	return string(p.c.Text[start:p.pos]), nil
}

// astringChar adds "]" (resp-specials) to the atom characters.
func isAStringChar(ch byte) bool { return isAtomChar(ch) || ch == ']' }

// quoted reads a quoted string (RFC 9051 9: no CR or LF inside).
func (p *Parser) quoted() (string, error) {
	if !p.Special('"') {
		return "", errSyntax
	}
	var b strings.Builder
	for {
		if p.pos >= len(p.c.Text) {
			return "", errSyntax
		}
		ch := p.c.Text[p.pos]
		p.pos++
		switch ch {
		case '"':
			return b.String(), nil
		case '\\':
			if p.pos >= len(p.c.Text) {
				return "", errSyntax
			}
			ch = p.c.Text[p.pos]
			if ch != '"' && ch != '\\' {
				return "", Bad("Invalid escape in quoted string")
			}
			p.pos++
		case '\r', '\n', 0:
			return "", Bad("Unterminated quoted string")
		}
		b.WriteByte(ch)
	}
}

// String reads a quoted string or a literal.
func (p *Parser) String() (string, error) {
	if p.peek() == '"' {
		return p.quoted()
	}
	if p.atLiteral() {
		b, err := p.literal()
		return string(b), err
	}
	return "", errSyntax
}

// AString reads an atom (with "]"), a quoted string or a literal.
func (p *Parser) AString() (string, error) {
	if p.peek() == '"' || p.atLiteral() {
		return p.String()
	}
	start := p.pos
	for p.pos < len(p.c.Text) && isAStringChar(p.c.Text[p.pos]) {
		p.pos++
	}
	if p.pos == start {
		return "", errSyntax
	}
	return string(p.c.Text[start:p.pos]), nil
}

// NString reads a string or NIL.
func (p *Parser) NString() (string, bool, error) {
	if p.peek() == '"' || p.atLiteral() {
		s, err := p.String()
		return s, true, err
	}
	a, err := p.Atom()
	if err != nil || !strings.EqualFold(a, "NIL") {
		return "", false, errSyntax
	}
	return "", false, nil
}

// Number reads a 32-bit number.
func (p *Parser) Number() (uint32, error) {
	n, err := p.number(32)
	return uint32(n), err
}

// Number64 reads a 63-bit number.
func (p *Parser) Number64() (int64, error) {
	n, err := p.number(63)
	return int64(n), err
}

func (p *Parser) number(bits int) (uint64, error) {
	start := p.pos
	for p.pos < len(p.c.Text) && p.c.Text[p.pos] >= '0' && p.c.Text[p.pos] <= '9' {
		p.pos++
	}
	if p.pos == start {
		return 0, Bad("Number expected")
	}
	n, err := strconv.ParseUint(string(p.c.Text[start:p.pos]), 10, bits)
	if err != nil {
		return 0, Bad("Number out of range")
	}
	return n, nil
}

// List reads a parenthesised list, calling item for each element.
func (p *Parser) List(item func() error) error {
	if !p.Special('(') {
		return errSyntax
	}
	if p.Special(')') {
		return nil
	}
	for {
		if err := item(); err != nil {
			return err
		}
		if p.Special(')') {
			return nil
		}
		if !p.SP() {
			return errSyntax
		}
	}
}

// Flag reads a flag: "\" atom or a keyword (RFC 9051 9).
func (p *Parser) Flag() (imap.Flag, error) {
	bs := p.Special('\\')
	if bs && p.Special('*') {
		return imap.FlagWildcard, nil
	}
	a, err := p.Atom()
	if err != nil {
		return "", Bad("Invalid flag")
	}
	if bs {
		return canonFlag("\\" + a), nil
	}
	return imap.Flag(a), nil
}

// canonFlag gives system flags their canonical case (RFC 9051 2.3.2:
// flags are case-insensitive).
func canonFlag(f string) imap.Flag {
	for _, sys := range []imap.Flag{imap.FlagSeen, imap.FlagAnswered, imap.FlagFlagged,
		imap.FlagDeleted, imap.FlagDraft, "\\Recent"} {
		if strings.EqualFold(f, string(sys)) {
			return sys
		}
	}
	return imap.Flag(f)
}

// Flags reads a flag list.
func (p *Parser) Flags() ([]imap.Flag, error) {
	flags := []imap.Flag{}
	err := p.List(func() error {
		f, err := p.Flag()
		if f == imap.FlagWildcard {
			return Bad("Invalid flag")
		}
		flags = append(flags, f)
		return err
	})
	return flags, err
}

// Mailbox reads a mailbox name and decodes it: modified UTF-7 (RFC 3501
// 5.1.3) unless UTF8 (RFC 6855 3: then "&" is literal). INBOX is
// case-insensitive (RFC 9051 5.1).
func (p *Parser) Mailbox() (string, error) {
	raw, err := p.AString()
	if err != nil {
		return "", err
	}
	return DecodeMailbox(raw, p.UTF8)
}

// errBadName is the answer to a name that cannot be a mailbox name.
// RFC 5530 3: CANNOT, the name is one the server cannot create or use;
// the command itself was well formed, so NO rather than BAD.
var errBadName = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot,
	Text: "Invalid mailbox name"}

// DecodeMailbox decodes a mailbox name as sent by the client.
func DecodeMailbox(raw string, utf8 bool) (string, error) {
	name := raw
	if !utf8 {
		var err error
		if name, err = DecodeUTF7(raw); err != nil {
			return "", errBadName
		}
	} else if !validUTF8(raw) {
		return "", errBadName
	}
	for _, r := range name {
		// RFC 9051 5.1: names with control characters are refused
		// rather than stored.
		if r < 0x20 || r == 0x7f {
			return "", errBadName
		}
	}
	if strings.EqualFold(name, "INBOX") {
		return "INBOX", nil
	}
	return name, nil
}

// DateTime reads a quoted date-time (RFC 9051 9).
func (p *Parser) DateTime() (time.Time, error) {
	s, err := p.quoted()
	if err != nil {
		return time.Time{}, err
	}
	s = strings.TrimLeft(s, " ")
	t, err := time.Parse("_2-Jan-2006 15:04:05 -0700", s)
	if err != nil {
		t, err = time.Parse("2-Jan-2006 15:04:05 -0700", s)
	}
	if err != nil {
		return time.Time{}, Bad("Invalid date-time")
	}
	return t, nil
}

// Date reads a date, bare or quoted (RFC 9051 9).
func (p *Parser) Date() (time.Time, error) {
	var s string
	var err error
	if p.peek() == '"' {
		s, err = p.quoted()
	} else {
		s, err = p.Atom()
	}
	if err != nil {
		return time.Time{}, err
	}
	t, err := time.Parse("2-Jan-2006", s)
	if err != nil {
		return time.Time{}, Bad("Invalid date")
	}
	return t, nil
}

// NumSet reads a sequence set (RFC 9051 9), or "$" (RFC 5182).
func (p *Parser) NumSet(uid bool) (imap.NumSet, error) {
	if p.Special('$') {
		// RFC 5182 2.1: the saved search result, for either kind.
		return imap.SearchRes(), nil
	}
	var seq imap.SeqSet
	var uids imap.UIDSet
	for {
		start, err := p.seqNumber()
		if err != nil {
			return nil, err
		}
		stop := start
		if p.Special(':') {
			if stop, err = p.seqNumber(); err != nil {
				return nil, err
			}
		}
		if uid {
			uids = append(uids, imap.UIDRange{Start: imap.UID(start), Stop: imap.UID(stop)})
		} else {
			seq = append(seq, imap.SeqRange{Start: start, Stop: stop})
		}
		if !p.Special(',') {
			break
		}
	}
	if uid {
		return uids, nil
	}
	return seq, nil
}

// seqNumber reads a nz-number or "*" (0).
func (p *Parser) seqNumber() (uint32, error) {
	if p.Special('*') {
		return 0, nil
	}
	n, err := p.Number()
	if err != nil || n == 0 {
		return 0, Bad("Invalid sequence set")
	}
	return n, nil
}

// ErrDepth is returned when lists nest deeper than MaxDepth.
var ErrDepth = &imap.Error{Type: imap.StatusResponseTypeBad, Code: imap.ResponseCodeLimit,
	Text: "Too deeply nested"}
