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

// appendScan is where the scan of APPEND's arguments stands: it goes on
// from there as the reader reads more of the command, and what the
// handler has consumed is dropped (compact), so that a command of many
// messages holds no more than one message's arguments at a time.
type appendScan struct {
	a     *AppendCommand
	state scanState
	pos   int   // in Command.Text, where the scan goes on
	lit   int   // next of Command.Lits
	total int64 // of every streamed literal so far
}

type scanState int

const (
	sMailbox      scanState = iota // before SP mailbox
	sMessage                       // before SP [flags] [date] append-data
	sAfterMessage                  // after a message: the end, or another
	sCatPart                       // before a cat-part
	sAfterCatPart                  // after a cat-part: SP or ")"
	sUTF8Close                     // after UTF8's literal8: ")"
)

// ScanAppend reads APPEND's arguments from a whole command (tests, fuzz);
// the reader scans as it reads, into Command.Append.
func ScanAppend(c *Command, utf8 bool) (*AppendCommand, error) {
	trail, err := scanAppend(c, utf8)
	if err == nil && trail == trailAString {
		err = errSyntax
	}
	if err != nil {
		return nil, err
	}
	return c.Append, nil
}

// scanAppend goes on with the scan of APPEND's arguments, up to the end
// of the command or to the literal that ends its text so far. A literal
// astring (the mailbox, a URL) is left for the reader to read; the scan
// takes it up from its start then.
func scanAppend(c *Command, utf8 bool) (appendTrail, error) {
	sc := c.scan
	if sc == nil {
		sc = &appendScan{a: &AppendCommand{}, pos: min(len(c.Tag)+1+len("APPEND"), len(c.Text))}
		c.scan = sc
		c.Append = sc.a
	}
	a := sc.a
	p := &Parser{c: c, UTF8: utf8, pos: sc.pos, lit: sc.lit}
	// next moves to state st with everything up to p consumed.
	next := func(st scanState) {
		sc.state, sc.pos, sc.lit = st, p.pos, p.lit
	}
	// stream takes the literal announced at p as a part of the last
	// message; the text ends there when it is the one just announced.
	stream := func(st scanState) bool {
		m := a.Messages[len(a.Messages)-1]
		lit := p.streamed()
		m.Parts = append(m.Parts, AppendPart{Lit: lit})
		sc.total += lit.Size
		next(st)
		return p.pos == len(c.Text)
	}
	for {
		switch sc.state {
		case sMailbox:
			if !p.SP() {
				return 0, Bad("APPEND needs a mailbox and a message")
			}
			if p.atFinalLiteral() {
				return trailAString, nil
			}
			name, err := p.Mailbox()
			if err != nil {
				return 0, err
			}
			a.Mailbox = name
			next(sMessage)
		case sMessage:
			if !p.SP() {
				return 0, Bad("APPEND needs a message literal")
			}
			m := &AppendMessage{}
			var err error
			if p.peek() == '(' {
				if m.Flags, err = p.Flags(); err != nil || !p.SP() {
					return 0, Bad("Invalid flags")
				}
				for _, f := range m.Flags {
					if f == "\\Recent" {
						return 0, Bad("\\Recent cannot be set")
					}
				}
			}
			if p.peek() == '"' {
				if m.Time, err = p.DateTime(); err != nil || !p.SP() {
					return 0, Bad("Invalid date-time")
				}
			}
			if p.atLiteral() {
				a.Messages = append(a.Messages, m)
				if stream(sAfterMessage) {
					return trailStream, nil
				}
				continue
			}
			switch p.word() {
			case "CATENATE":
				if !p.SP() || !p.Special('(') {
					return 0, Bad("CATENATE needs a list of parts")
				}
				m.Catenate = true
				a.Messages = append(a.Messages, m)
				next(sCatPart)
			case "UTF8":
				// RFC 6855 4: after ENABLE UTF8=ACCEPT only; the
				// message is a literal8 and the parenthesis closes
				// after it.
				if !utf8 || !p.SP() || !p.Special('(') || p.peek() != '~' || !p.atLiteral() {
					return 0, Bad("Invalid APPEND arguments")
				}
				a.Messages = append(a.Messages, m)
				if stream(sUTF8Close) {
					return trailStream, nil
				}
			default:
				return 0, Bad("APPEND needs a message literal")
			}
		case sCatPart:
			switch p.word() {
			case "TEXT":
				if !p.SP() || !p.atLiteral() {
					return 0, Bad("TEXT needs a literal")
				}
				if stream(sAfterCatPart) {
					return trailStream, nil
				}
			case "URL":
				if !p.SP() {
					return 0, Bad("URL needs a URL")
				}
				if p.atFinalLiteral() {
					return trailAString, nil
				}
				u, err := p.AString()
				if err != nil || u == "" {
					return 0, Bad("Invalid URL")
				}
				m := a.Messages[len(a.Messages)-1]
				m.Parts = append(m.Parts, AppendPart{URL: u})
				next(sAfterCatPart)
			default:
				return 0, Bad("CATENATE parts are TEXT or URL")
			}
		case sAfterCatPart:
			switch {
			case p.Special(')'):
				next(sAfterMessage)
			case p.SP():
				next(sCatPart)
			default:
				return 0, errSyntax
			}
		case sUTF8Close:
			if !p.Special(')') {
				return 0, errSyntax
			}
			next(sAfterMessage)
		case sAfterMessage:
			if p.More() {
				next(sMessage)
				continue
			}
			if p.End() != nil {
				return 0, errSyntax
			}
			a.Complete = true
			return trailEnd, nil
		}
	}
}

// compactAppend drops the part of an APPEND the handler has consumed (it
// calls Next only once it has read every part scanned so far): the text
// after the command name, the literals read into the command, and the
// messages before the last.
func compactAppend(c *Command) {
	sc := c.scan
	if sc == nil {
		return
	}
	head := min(len(c.Tag)+1+len("APPEND"), len(c.Text))
	c.Text = c.Text[:head]
	c.Lits = nil
	sc.pos, sc.lit = head, 0
	for i := 0; i < len(sc.a.Messages)-1; i++ {
		sc.a.Messages[i] = nil
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
