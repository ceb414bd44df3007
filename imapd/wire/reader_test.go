package wire

import (
	"bufio"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
)

// testReader reads commands from in; conts counts the continuation
// requests it made.
func testReader(in string, limits Limits) (*Reader, *int) {
	n := new(int)
	r := NewReader(bufio.NewReaderSize(strings.NewReader(in), 64), limits, func(string) error { *n++; return nil })
	return r, n
}

var small = Limits{MaxCommand: 100, MaxAppend: 50, DiscardCap: 200}

func TestReadCommandLiterals(t *testing.T) {
	r, conts := testReader("a LOGIN {4}\r\nuser {4+}\r\npass\r\nb NOOP\r\n", small)
	c, err := r.ReadCommand()
	if err != nil || c.Refused != nil {
		t.Fatalf("LOGIN: %v %v", err, c.Refused)
	}
	if c.Tag != "a" || c.Name != "LOGIN" || len(c.Lits) != 2 || string(c.Lits[0]) != "user" || string(c.Lits[1]) != "pass" {
		t.Fatalf("command %+v", c)
	}
	if *conts != 1 {
		t.Fatalf("%d continuation requests, want 1 (the synchronizing literal)", *conts)
	}
	p := NewParser(c, false, 8)
	p.SP()
	u, err1 := p.AString()
	p.SP()
	pw, err2 := p.AString()
	if u != "user" || pw != "pass" || err1 != nil || err2 != nil || p.End() != nil {
		t.Fatalf("parsed %q %q %v %v", u, pw, err1, err2)
	}
	c, err = r.ReadCommand()
	if err != nil || c.Name != "NOOP" {
		t.Fatalf("next command %+v %v", c, err)
	}
}

// An over-size synchronizing literal is refused at once, without a
// continuation request; the client then sends no literal.
func TestSyncLiteralTooBig(t *testing.T) {
	r, conts := testReader("a LOGIN {5000}\r\nb NOOP\r\n", small)
	c, err := r.ReadCommand()
	if err != nil || c.Refused == nil || c.Refused.Code != imap.ResponseCodeTooBig {
		t.Fatalf("refusal %+v %v", c.Refused, err)
	}
	if *conts != 0 {
		t.Fatal("continuation request sent for a refused literal")
	}
	if c, _ := r.ReadCommand(); c.Tag != "b" {
		t.Fatalf("next command %+v", c)
	}
}

// A refused non-synchronizing literal is read and thrown away, never
// parsed as commands; the rest of its command goes with it.
func TestRefusedNonSyncLiteralDiscarded(t *testing.T) {
	body := "x STORE 1:* +FLAGS (\\Deleted)\r\ny EXPUNGE\r\n"
	in := "a APPEND INBOX (\\Seen \"x\") {" + itoa(len(body)) + "+}\r\n" + body + "\r\nb NOOP\r\n"
	r, _ := testReader(in, small)
	c, err := r.ReadCommand()
	if err != nil || c.Refused == nil {
		t.Fatalf("APPEND with a bad flag: %+v %v", c, err)
	}
	c, err = r.ReadCommand()
	if err != nil || c.Tag != "b" || c.Name != "NOOP" {
		t.Fatalf("after the refused literal: %+v %v", c, err)
	}
}

// A refused non-synchronizing literal beyond the discard cap ends the
// connection.
func TestRefusedLiteralOverCap(t *testing.T) {
	r, _ := testReader("a APPEND INBOX {1000+}\r\n"+strings.Repeat("x", 1000), small)
	if _, err := r.ReadCommand(); !errors.Is(err, ErrFatal) {
		t.Fatalf("err %v, want ErrFatal", err)
	}
}

func TestAppendStreams(t *testing.T) {
	r, conts := testReader("a APPEND INBOX (\\Seen) \" 1-Jan-2020 10:00:00 +0000\" {5}\r\nhello\r\nb NOOP\r\n", small)
	c, err := r.ReadCommand()
	if err != nil || c.Refused != nil || c.Stream == nil || c.Stream.Size != 5 || *conts != 1 {
		t.Fatalf("APPEND: %+v %v", c, err)
	}
	msg, _ := io.ReadAll(r.LiteralReader(c.Stream.Size))
	if string(msg) != "hello" {
		t.Fatalf("message %q", msg)
	}
	if err := r.Finish(c); err != nil || c.Refused != nil {
		t.Fatalf("finish: %v %v", err, c.Refused)
	}
	p := NewParser(c, false, 8)
	p.SP()
	name, opts, err := p.AppendArgs()
	if err != nil || name != "INBOX" || len(opts.Flags) != 1 || opts.Time.Year() != 2020 {
		t.Fatalf("args %q %+v %v", name, opts, err)
	}
	if c, _ := r.ReadCommand(); c.Tag != "b" {
		t.Fatalf("next %+v", c)
	}
}

// RFC 6855 4: after UTF8=ACCEPT the message may come as UTF8 (~{n}).
func TestAppendUTF8(t *testing.T) {
	r, _ := testReader("a APPEND INBOX UTF8 (~{5+}\r\nhello)\r\nb NOOP\r\n", small)
	r.UTF8 = true
	c, err := r.ReadCommand()
	if err != nil || c.Refused != nil || c.Stream == nil || c.Stream.Size != 5 {
		t.Fatalf("APPEND UTF8: %+v %v", c, err)
	}
	io.Copy(io.Discard, r.LiteralReader(5))
	if err := r.Finish(c); err != nil || c.Refused != nil {
		t.Fatalf("finish: %v %v", err, c.Refused)
	}
	if c, _ := r.ReadCommand(); c.Tag != "b" {
		t.Fatalf("next %+v", c)
	}
	// Without UTF8=ACCEPT it is not APPEND's syntax.
	r, _ = testReader("a APPEND INBOX UTF8 (~{5+}\r\nhello)\r\nb NOOP\r\n", small)
	if c, _ := r.ReadCommand(); c.Refused == nil {
		t.Fatalf("APPEND UTF8 without UTF8=ACCEPT accepted")
	}
}

func TestAppendTooBig(t *testing.T) {
	r, conts := testReader("a APPEND INBOX {51}\r\nb NOOP\r\n", small)
	c, _ := r.ReadCommand()
	if c.Refused == nil || c.Refused.Type != imap.StatusResponseTypeNo || c.Refused.Code != imap.ResponseCodeTooBig || *conts != 0 {
		t.Fatalf("refusal %+v", c.Refused)
	}
}

func TestLineTooLong(t *testing.T) {
	r, _ := testReader("a1 LOGIN "+strings.Repeat("x", 300)+" {10+}\r\n0123456789\r\nb NOOP\r\n", small)
	c, err := r.ReadCommand()
	if err != nil || c.Tag != "a1" || c.Refused == nil {
		t.Fatalf("long line: %+v %v", c, err)
	}
	if c, _ := r.ReadCommand(); c.Tag != "b" {
		t.Fatalf("the literal of a long line ran as a command: %+v", c)
	}
}

func TestNotAllowedRefusesLiteral(t *testing.T) {
	r, conts := testReader("a FROB {3}\r\nb NOOP\r\n", small)
	r.Allowed = func(c *Command) bool { return c.Name != "FROB" }
	c, _ := r.ReadCommand()
	if c.Refused == nil || *conts != 0 {
		t.Fatalf("unknown command's literal asked for: %+v", c)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// FuzzReadCommand: whatever the input, the reader ends (with commands or
// an error), never holds more than its limits, and never returns bytes of
// a refused literal as a command.
func FuzzReadCommand(f *testing.F) {
	for _, s := range []string{
		"a LOGIN {4}\r\nuser {4+}\r\npass\r\n",
		"a APPEND INBOX {5}\r\nhello\r\n",
		"a APPEND INBOX (\\x y) {10+}\r\nb EXPUNGE\r\n\r\n",
		"a APPEND {5}\r\nINBOX ~{3}\r\nabc\r\n",
		"a SEARCH OR (FROM {3}\r\nabc) ALL\r\n",
		"a X {99999999999999999999}\r\n",
		"\r\n\n\r",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r, _ := testReader(string(in), small)
		for i := 0; i < 1000; i++ {
			c, err := r.ReadCommand()
			if err != nil {
				return
			}
			total := len(c.Text)
			for _, l := range c.Lits {
				total += len(l)
			}
			if total > small.MaxCommand {
				t.Fatalf("command of %d octets over the limit", total)
			}
			if c.Stream != nil {
				io.Copy(io.Discard, r.LiteralReader(c.Stream.Size))
				if err := r.Finish(c); err != nil {
					return
				}
			}
			if c.Refused == nil {
				p := NewParser(c, false, 8)
				p.SP()
				p.Search()
			}
		}
		t.Fatal("reader did not end")
	})
}

// An over-long line is skipped up to DiscardCap and refused; a longer
// one (past the room kept for ID) ends the connection (ErrLineTooLong),
// so that a compressed stream that inflates without end is not read
// without end.
func TestLongLineDiscardCap(t *testing.T) {
	r, _ := testReader("a NOOP "+strings.Repeat("x", 150)+"\r\nb NOOP "+strings.Repeat("y", 40000)+"\r\nc NOOP\r\n", small)
	c, err := r.ReadCommand()
	if err != nil || c.Refused == nil || c.Refused.Code != imap.ResponseCodeTooBig {
		t.Fatalf("line over MaxCommand: %v %+v", err, c.Refused)
	}
	if _, err := r.ReadCommand(); !errors.Is(err, ErrLineTooLong) || !errors.Is(err, ErrFatal) {
		t.Fatalf("line over DiscardCap: %v", err)
	}
}
