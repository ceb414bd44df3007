// Package wire is imapd's IMAP wire format: a command reader that enforces
// the line and literal limits while it reads (RFC 9051 4.3, RFC 7888), a
// parser from command arguments into go-imap's imap types, and an encoder
// that writes responses straight into a buffered writer.
//
// The reader never hands the bytes of a literal to the parser as command
// text: a literal is either read into the command, streamed to APPEND, or
// read and thrown away when refused. A refused literal that is too large to
// throw away ends the connection.
package wire

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/emersion/go-imap/v2"
)

// ErrFatal wraps the errors after which the connection cannot go on: the
// client announced a non-synchronizing literal larger than the reader will
// read and throw away, so the stream can no longer be followed.
var ErrFatal = errors.New("wire: connection cannot continue")

// ErrLineTooLong is the ErrFatal of a line longer than DiscardCap: it is
// not read to its end. On a compressed stream (RFC 4978) a few KiB can
// inflate to gigabytes; no line is worth skipping that far.
var ErrLineTooLong = fmt.Errorf("%w: line too long to skip", ErrFatal)

// Literal is a literal announced at the end of a line fragment (RFC 9051
// 4.3: "{n}" synchronizing, "{n+}" non-synchronizing, RFC 7888; "~{n}" a
// literal8 of BINARY APPEND, RFC 3516 4.4).
type Literal struct {
	Size   int64
	Sync   bool
	Binary bool
}

// Limits bound what one command may make the reader hold or read.
type Limits struct {
	// MaxCommand bounds a command's text, CRLFs and literals included,
	// except the streamed message literal of APPEND.
	MaxCommand int
	// MaxAppend bounds one message of APPEND (RFC 7889 APPENDLIMIT):
	// its literal, or the sum of its CATENATE TEXT literals.
	MaxAppend int64
	// MaxAppendMessages bounds the messages of one APPEND (RFC 3502
	// MULTIAPPEND); one more is NO [LIMIT].
	MaxAppendMessages int
	// MaxAppendTotal bounds the sum of the literals of one APPEND's
	// messages; beyond it the command is NO [TOOBIG].
	MaxAppendTotal int64
	// DiscardCap is the largest refused non-synchronizing literal, and
	// the longest over-long line, that is read and thrown away; a larger
	// one ends the connection with BYE. 0: no cap on lines.
	DiscardCap int64
	// MaxMetadata is the largest METADATA value (RFC 5464): SETMETADATA
	// may carry one such value beyond MaxCommand, and a literal too large
	// for it is NO [METADATA MAXSIZE n] (RFC 5464 4.3) rather than BAD.
	MaxMetadata int
}

// MetadataMaxSizeCode is RFC 5464 4.3's response code for a value over
// the limit of max octets.
func MetadataMaxSizeCode(max int) imap.ResponseCode {
	return imap.ResponseCode("METADATA MAXSIZE " + strconv.Itoa(max))
}

// MaxIDCommand is the longest ID command that RFC 2971 3.3 allows:
// 30 pairs of a 30-octet field and a 1024-octet value, quoted.
const MaxIDCommand = 64 + 30*(30+1024+6)

// Command is one command as read: its text without the literal data, and
// the literals in order. Text keeps the literal announcements and the CRLF
// of each fragment, so the parser finds each literal where it was sent.
type Command struct {
	Tag  string
	Name string // upper case; "UID FETCH" and the like are "UID" here
	Text []byte
	Lits [][]byte

	// Refused is set when the command must not run: the reply to give
	// (BAD or NO with a response code). Its literals have been consumed.
	Refused *imap.Error
	// Stream is set when the reader stopped before a literal of APPEND
	// that the handler streams (a message, a CATENATE TEXT): the handler
	// reads it with LiteralReader and then calls Next to read on. For a
	// synchronizing literal the client has not been asked for it yet
	// (Continued is false): the handler asks when it starts reading, so
	// that a command it refuses first is answered without the client
	// sending the data.
	Stream *Literal
	// Continued says the client was asked for the Stream literal (or
	// needs no asking: LITERAL+).
	Continued bool
	// Append is APPEND's arguments as far as they were read (wire/append.go):
	// up to the Stream literal, or the whole command.
	Append *AppendCommand

	scan *appendScan
}

// Reader reads commands from one connection's buffered reader.
type Reader struct {
	br     *bufio.Reader
	limits Limits
	// Continue writes a continuation request ("+ ...") and flushes it.
	Continue func(text string) error
	// UTF8 says whether mailbox names are UTF-8 (RFC 6855 ENABLE
	// UTF8=ACCEPT); APPEND's prefix check uses it.
	UTF8 bool
	// Allowed says whether a command may have its literals read: a
	// literal of an unknown or out-of-state command is refused before
	// the client is asked for it.
	Allowed func(c *Command) bool

	carry []byte // the start of a line whose read timed out
	head  []byte // the start of the last line found too long
}

// ReadLine reads one line that is not a command (a SASL response, IDLE's
// DONE), within the command limit, without its CRLF.
func (r *Reader) ReadLine() (string, error) {
	frag, _, long, err := r.readLine(r.limits.MaxCommand)
	if err != nil {
		return "", err
	}
	if long {
		return "", &imap.Error{Type: imap.StatusResponseTypeBad, Code: imap.ResponseCodeTooBig, Text: "Line too long"}
	}
	frag = bytes.TrimSuffix(frag, []byte("\n"))
	frag = bytes.TrimSuffix(frag, []byte("\r"))
	return string(frag), nil
}

// NewReader reads commands from br.
func NewReader(br *bufio.Reader, limits Limits, cont func(string) error) *Reader {
	return &Reader{br: br, limits: limits, Continue: cont}
}

// Buffered is the number of bytes read from the connection and not yet
// used.
func (r *Reader) Buffered() int { return r.br.Buffered() }

// Pending says whether part of a line was read before a timeout.
func (r *Reader) Pending() bool { return len(r.carry) > 0 }

// SetReader replaces the buffered reader (after STARTTLS, or when the
// session takes a pooled buffer).
func (r *Reader) SetReader(br *bufio.Reader) { r.br = br }

func tooBig(typ imap.StatusResponseType, text string) *imap.Error {
	return &imap.Error{Type: typ, Code: imap.ResponseCodeTooBig, Text: text}
}

// ReadCommand reads the next command. I/O errors and ErrFatal are
// returned as errors; a command that must be refused comes back with
// Refused set after all its bytes were consumed.
func (r *Reader) ReadCommand() (*Command, error) {
	c := &Command{}
	return c, r.read(c)
}

// Next reads on after a streamed literal of APPEND, up to the next one
// (Stream set again) or the end of the command. With Refused set (the
// handler gave up on the command), the rest is consumed as for any refused
// command: a synchronizing literal is never asked for, a
// non-synchronizing one is read and thrown away.
func (r *Reader) Next(c *Command) error {
	c.Stream = nil
	c.Continued = false
	compactAppend(c)
	return r.read(c)
}

// Ask sends the continuation request of a synchronizing Stream literal,
// once; the handler calls it when it starts reading the literal.
func (r *Reader) Ask(c *Command) error {
	if c.Stream == nil || c.Continued {
		return nil
	}
	c.Continued = true
	if !c.Stream.Sync {
		return nil
	}
	return r.Continue("Ready for literal data")
}

// LiteralReader returns the reader of a streamed literal of n bytes.
func (r *Reader) LiteralReader(n int64) io.Reader { return io.LimitReader(r.br, n) }

// Discard throws away what is left of a streamed literal that the
// handler did not read.
func (r *Reader) Discard(lr io.Reader) error {
	_, err := io.Copy(io.Discard, lr)
	return err
}

func (r *Reader) read(c *Command) error {
	for {
		budget := r.limits.MaxCommand - len(c.Text)
		if c.Name == "SETMETADATA" {
			budget += r.limits.MaxMetadata
		}
		for _, l := range c.Lits {
			budget -= len(l)
		}
		first := len(c.Text) == 0
		if first {
			// RFC 2971 3.3 allows ID up to 30 pairs of 30 and 1024
			// octets; its line may be longer than other commands'.
			budget = max(budget, MaxIDCommand)
		}
		frag, tail, long, err := r.readLine(budget)
		head := r.head
		if first && !long {
			if _, name := commandName(frag); name != "ID" {
				budget = r.limits.MaxCommand
				if len(frag) > budget {
					long, tail, head = true, frag[max(0, len(frag)-64):], frag[:64]
				}
			}
		}
		if err != nil {
			return err
		}
		var lit Literal
		var hasLit bool
		if long {
			if c.Tag == "" {
				c.Tag, c.Name = commandName(head)
			}
			if c.Refused == nil {
				c.Refused = &imap.Error{Type: imap.StatusResponseTypeBad, Code: imap.ResponseCodeTooBig,
					Text: "Command line too long"}
			}
			lit, hasLit = literalAt(tail)
		} else {
			c.Text = append(c.Text, frag...)
			if c.Tag == "" {
				c.Tag, c.Name = commandName(c.Text)
			}
			lit, hasLit = literalAt(frag)
		}
		if !hasLit {
			if c.Name == "APPEND" && c.Refused == nil && (r.Allowed == nil || r.Allowed(c)) {
				// The end of APPEND: the scan reads the parts after
				// the last literal and checks the end.
				if _, err := scanAppend(c, r.UTF8); err != nil {
					c.Refused = replyOf(err)
				}
			}
			return nil
		}
		if c.Refused != nil {
			if err := r.refuse(lit); err != nil || lit.Sync {
				return err
			}
			continue
		}
		if first && c.Name == "SETMETADATA" {
			budget += r.limits.MaxMetadata
		}
		switch refused, stream := r.decide(c, lit, budget-len(frag)); {
		case refused != nil:
			c.Refused = refused
			if err := r.refuse(lit); err != nil || lit.Sync {
				return err
			}
		case stream:
			c.Stream = &lit
			c.Continued = !lit.Sync
			return nil
		default:
			if lit.Sync {
				if err := r.Continue("Ready for literal data"); err != nil {
					return err
				}
			}
			buf := make([]byte, lit.Size)
			if _, err := io.ReadFull(r.br, buf); err != nil {
				return err
			}
			c.Lits = append(c.Lits, buf)
		}
	}
}

// refuse consumes a refused literal: a synchronizing one is never sent by
// the client (it waits for "+" and gets the tagged reply instead); a
// non-synchronizing one is already on its way and is thrown away, up to
// DiscardCap (RFC 7888 4: else the server may close the connection).
func (r *Reader) refuse(lit Literal) error {
	if lit.Sync {
		return nil
	}
	if lit.Size > r.limits.DiscardCap {
		return fmt.Errorf("%w: refused literal of %d octets", ErrFatal, lit.Size)
	}
	_, err := r.br.Discard(int(lit.Size))
	return err
}

// decide says what to do with a literal: refuse it (with the reply),
// stream it (APPEND's message), or read it into the command.
func (r *Reader) decide(c *Command, lit Literal, budget int) (*imap.Error, bool) {
	if r.Allowed != nil && !r.Allowed(c) {
		return &imap.Error{Type: imap.StatusResponseTypeBad, Text: "Unknown command or not valid in this state"}, false
	}
	if c.Name == "APPEND" {
		trail, err := scanAppend(c, r.UTF8)
		if err != nil {
			return replyOf(err), false
		}
		if trail == trailStream {
			return r.appendLimits(c), true
		}
	}
	if lit.Binary {
		return &imap.Error{Type: imap.StatusResponseTypeBad, Text: "literal8 is only allowed for APPEND's message"}, false
	}
	if lit.Size > int64(budget) {
		if c.Name == "SETMETADATA" && r.limits.MaxMetadata > 0 {
			// RFC 5464 4.3: a value too large is NO [METADATA MAXSIZE
			// n], refused here before it is read.
			return &imap.Error{Type: imap.StatusResponseTypeNo, Code: MetadataMaxSizeCode(r.limits.MaxMetadata),
				Text: "Metadata value too large"}, false
		}
		return tooBig(imap.StatusResponseTypeBad, "Literal too large for this command"), false
	}
	return nil, false
}

// readLine reads one fragment up to and including LF. A fragment that
// does not fit in max is read to its end and thrown away (long is set);
// tail then holds its last bytes, where a literal may be announced.
func (r *Reader) readLine(max int) (frag, tail []byte, long bool, err error) {
	// A fragment cut by a read timeout (IDLE's re-check) goes on where
	// it stopped.
	line := r.carry
	r.carry = nil
	var skipped int64
	for {
		chunk, err := r.br.ReadSlice('\n')
		if long {
			if skipped += int64(len(chunk)); r.limits.DiscardCap > 0 && skipped > r.limits.DiscardCap {
				return nil, nil, false, ErrLineTooLong
			}
		}
		if !long {
			if len(line)+len(chunk) > max {
				long = true
				r.head = append(r.head[:0], line[:min(len(line), 64)]...)
				if len(r.head) < 64 {
					r.head = append(r.head, chunk[:min(len(chunk), 64-len(r.head))]...)
				}
				line = nil
			} else {
				line = append(line, chunk...)
			}
		}
		if long {
			tail = append(tail, chunk...)
			if len(tail) > 64 {
				tail = append(tail[:0], tail[len(tail)-64:]...)
			}
		}
		if err == nil {
			if long {
				return nil, tail, true, nil
			}
			return line, nil, false, nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			if !long {
				r.carry = line
			}
			return nil, nil, false, err
		}
	}
}

// literalAt finds a literal announced at the end of a fragment.
func literalAt(frag []byte) (Literal, bool) {
	b := bytes.TrimSuffix(frag, []byte("\n"))
	b = bytes.TrimSuffix(b, []byte("\r"))
	if len(b) < 3 || b[len(b)-1] != '}' {
		return Literal{}, false
	}
	open := bytes.LastIndexByte(b, '{')
	if open < 0 {
		return Literal{}, false
	}
	num := b[open+1 : len(b)-1]
	lit := Literal{Sync: true}
	if n := len(num); n > 0 && (num[n-1] == '+' || num[n-1] == '-') {
		// RFC 7888: "+" is LITERAL+; "-" is not in the grammar, but a
		// client that sends it is taken at its word rather than letting
		// the data run as commands.
		lit.Sync = false
		num = num[:n-1]
	}
	if len(num) == 0 || len(num) > 19 {
		return Literal{}, false
	}
	for _, ch := range num {
		if ch < '0' || ch > '9' {
			return Literal{}, false
		}
	}
	n, err := strconv.ParseInt(string(num), 10, 64)
	if err != nil {
		return Literal{}, false
	}
	lit.Size = n
	lit.Binary = open > 0 && b[open-1] == '~'
	return lit, true
}

// commandName reads the tag and the command name of a command's text.
func commandName(text []byte) (tag, name string) {
	i := bytes.IndexAny(text, " \r\n")
	if i <= 0 {
		return "*", ""
	}
	tag = string(text[:i])
	rest := text[i:]
	if len(rest) == 0 || rest[0] != ' ' {
		return tag, ""
	}
	rest = rest[1:]
	j := bytes.IndexAny(rest, " \r\n{")
	if j < 0 {
		j = len(rest)
	}
	return tag, string(bytes.ToUpper(rest[:j]))
}

// appendLimits checks the streamed literal the reader stopped before
// against the limits of one APPEND.
func (r *Reader) appendLimits(c *Command) *imap.Error {
	a := c.Append
	if m := a.Messages[len(a.Messages)-1]; !m.Catenate && m.Parts[0].Lit.Size == 0 {
		// RFC 3502 6.3.11: a zero-length message literal is an error
		// (NO), and is how a client cancels an APPEND.
		return &imap.Error{Type: imap.StatusResponseTypeNo, Text: "Empty message: APPEND cancelled"}
	}
	if len(a.Messages) > r.limits.MaxAppendMessages {
		// RFC 5530 3: LIMIT, a server limit the client may work around
		// (fewer messages per command).
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeLimit,
			Text: "Too many messages in one APPEND"}
	}
	if a.Messages[len(a.Messages)-1].Size() > r.limits.MaxAppend {
		// RFC 7889 4: NO [TOOBIG] for a message over APPENDLIMIT
		// (RFC 4469 5: also for the sum of CATENATE's TEXT parts).
		return tooBig(imap.StatusResponseTypeNo, "Message larger than APPENDLIMIT")
	}
	if c.scan.total > r.limits.MaxAppendTotal {
		return tooBig(imap.StatusResponseTypeNo, "Messages of one APPEND too large together")
	}
	return nil
}

// replyOf is the reply to an error of the argument scan.
func replyOf(err error) *imap.Error {
	var ie *imap.Error
	if !errors.As(err, &ie) {
		ie = Bad("Invalid APPEND arguments")
	}
	return ie
}

// LiteralAt finds a literal announced at the end of a line (a response
// line, for clients and tests).
func LiteralAt(line []byte) (Literal, bool) { return literalAt(line) }
