package wire

import (
	"time"

	"github.com/emersion/go-imap/v2"
)

// APPEND's arguments (RFC 3501 6.3.11) with MULTIAPPEND (RFC 3502 6:
// several messages), CATENATE (RFC 4469 5: a message made of TEXT
// literals and URLs), UTF8 (RFC 6855 4) and literal8 (RFC 3516 4.4):
//
//	append         = "APPEND" SP mailbox 1*append-message
//	append-message = [SP flag-list] [SP date-time] SP append-data
//	append-data    = literal / literal8 / "UTF8" SP "(" literal8 ")" /
//	                 "CATENATE" SP "(" cat-part *(SP cat-part) ")"
//	cat-part       = "TEXT" SP (literal / literal8) / "URL" SP astring
//
// The message literals and TEXT literals are streamed: the reader stops
// before each and the handler reads it into the store, so their data
// never enter Command.Lits. Only the mailbox name and the URLs may be
// literals read into the command.

// AppendCommand is APPEND's arguments as far as they have been read.
type AppendCommand struct {
	Mailbox  string
	Messages []*AppendMessage
	// Complete says the command ended after the last message; otherwise
	// the last part of the last message is the streamed literal the
	// reader stopped before.
	Complete bool
}

// AppendMessage is one message of an APPEND.
type AppendMessage struct {
	Flags    []imap.Flag
	Time     time.Time
	Catenate bool // RFC 4469: built from Parts in order
	Parts    []AppendPart
}

// AppendPart is a streamed literal (the message, or a CATENATE TEXT) or a
// CATENATE URL.
type AppendPart struct {
	URL string
	Lit Literal // when URL is ""
}

// Size is the sum of the message's literals (the URLs' parts are not known
// here).
func (m *AppendMessage) Size() int64 {
	var n int64
	for _, p := range m.Parts {
		if p.URL == "" {
			n += p.Lit.Size
		}
	}
	return n
}

type appendTrail int

const (
	trailEnd     appendTrail = iota // the command is complete
	trailStream                     // it stops before a streamed literal
	trailAString                    // it stops before a literal astring (mailbox, URL)
)

// ScanAppend reads APPEND's arguments from the command as read so far:
// complete, or stopped before a streamed literal.
func ScanAppend(c *Command, utf8 bool) (*AppendCommand, error) {
	a, trail, err := scanAppend(c, utf8)
	if err == nil && trail == trailAString {
		err = errSyntax
	}
	return a, err
}

// scanAppend parses APPEND's arguments from the start of the command's
// text, up to its end or to the literal that ends the text so far.
func scanAppend(c *Command, utf8 bool) (*AppendCommand, appendTrail, error) {
	p := &Parser{c: c, UTF8: utf8}
	p.pos = min(len(c.Tag)+1+len("APPEND"), len(c.Text))
	a := &AppendCommand{}
	if !p.SP() {
		return nil, 0, Bad("APPEND needs a mailbox and a message")
	}
	if p.atFinalLiteral() {
		return a, trailAString, nil
	}
	var err error
	if a.Mailbox, err = p.Mailbox(); err != nil {
		return nil, 0, err
	}
	for {
		if !p.SP() {
			return nil, 0, Bad("APPEND needs a message literal")
		}
		m := &AppendMessage{}
		a.Messages = append(a.Messages, m)
		if p.peek() == '(' {
			if m.Flags, err = p.Flags(); err != nil || !p.SP() {
				return nil, 0, Bad("Invalid flags")
			}
			for _, f := range m.Flags {
				if f == "\\Recent" {
					return nil, 0, Bad("\\Recent cannot be set")
				}
			}
		}
		if p.peek() == '"' {
			if m.Time, err = p.DateTime(); err != nil || !p.SP() {
				return nil, 0, Bad("Invalid date-time")
			}
		}
		if p.atLiteral() {
			m.Parts = append(m.Parts, AppendPart{Lit: p.streamed()})
			if p.pos == len(c.Text) {
				return a, trailStream, nil
			}
		} else {
			switch p.word() {
			case "CATENATE":
				m.Catenate = true
				if !p.SP() || !p.Special('(') {
					return nil, 0, Bad("CATENATE needs a list of parts")
				}
				for {
					switch p.word() {
					case "TEXT":
						if !p.SP() || !p.atLiteral() {
							return nil, 0, Bad("TEXT needs a literal")
						}
						m.Parts = append(m.Parts, AppendPart{Lit: p.streamed()})
						if p.pos == len(c.Text) {
							return a, trailStream, nil
						}
					case "URL":
						if !p.SP() {
							return nil, 0, Bad("URL needs a URL")
						}
						if p.atFinalLiteral() {
							return a, trailAString, nil
						}
						u, err := p.AString()
						if err != nil || u == "" {
							return nil, 0, Bad("Invalid URL")
						}
						m.Parts = append(m.Parts, AppendPart{URL: u})
					default:
						return nil, 0, Bad("CATENATE parts are TEXT or URL")
					}
					if p.Special(')') {
						break
					}
					if !p.SP() {
						return nil, 0, errSyntax
					}
				}
			case "UTF8":
				// RFC 6855 4: after ENABLE UTF8=ACCEPT only; the
				// message is a literal8 and the parenthesis closes
				// after it.
				if !utf8 || !p.SP() || !p.Special('(') || p.peek() != '~' || !p.atLiteral() {
					return nil, 0, Bad("Invalid APPEND arguments")
				}
				m.Parts = append(m.Parts, AppendPart{Lit: p.streamed()})
				if p.pos == len(c.Text) {
					return a, trailStream, nil
				}
				if !p.Special(')') {
					return nil, 0, errSyntax
				}
			default:
				return nil, 0, Bad("APPEND needs a message literal")
			}
		}
		if !p.More() {
			if p.End() != nil {
				return nil, 0, errSyntax
			}
			a.Complete = true
			return a, trailEnd, nil
		}
	}
}

// atFinalLiteral says whether the text so far ends with a literal
// announced here.
func (p *Parser) atFinalLiteral() bool {
	if !p.atLiteral() {
		return false
	}
	end := p.pos
	for end < len(p.c.Text) && p.c.Text[end] != '\n' {
		end++
	}
	return end+1 == len(p.c.Text)
}

// streamed reads the announcement of a streamed literal (its data are not
// in the command).
func (p *Parser) streamed() Literal {
	rest := p.c.Text[p.pos:]
	nl := 0
	for nl < len(rest) && rest[nl] != '\n' {
		nl++
	}
	if nl < len(rest) {
		nl++
	}
	lit, _ := literalAt(rest[:nl])
	p.pos += nl
	return lit
}
