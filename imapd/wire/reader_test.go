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

var small = Limits{MaxCommand: 100, MaxAppend: 50, MaxAppendMessages: 3, MaxAppendTotal: 80, DiscardCap: 200}

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
	// The client is asked for the literal only when the handler reads it.
	if err != nil || c.Refused != nil || c.Stream == nil || c.Stream.Size != 5 || *conts != 0 {
		t.Fatalf("APPEND: %+v %v", c, err)
	}
	if err := r.Ask(c); err != nil || *conts != 1 {
		t.Fatalf("ask: %v, %d continuations", err, *conts)
	}
	msg, _ := io.ReadAll(r.LiteralReader(c.Stream.Size))
	if string(msg) != "hello" {
		t.Fatalf("message %q", msg)
	}
	if err := r.Next(c); err != nil || c.Refused != nil || c.Stream != nil {
		t.Fatalf("next: %v %v", err, c.Refused)
	}
	a := c.Append
	if a == nil || a.Mailbox != "INBOX" || !a.Complete || len(a.Messages) != 1 ||
		len(a.Messages[0].Flags) != 1 || a.Messages[0].Time.Year() != 2020 {
		t.Fatalf("args %+v", a)
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
	if err := r.Next(c); err != nil || c.Refused != nil {
		t.Fatalf("next: %v %v", err, c.Refused)
	}
	if a := c.Append; a == nil || !a.Complete {
		t.Fatalf("args %+v", a)
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

// RFC 3502 and RFC 4469: several messages, CATENATE parts, each streamed
// literal stopped before; a URL literal is read into the command.
func TestMultiAppendCatenate(t *testing.T) {
	in := "a APPEND INBOX (\\Seen) {3}\r\none CATENATE (URL {4}\r\n/x;U TEXT {3+}\r\ntwo URL \"/y\") {5}\r\nthree\r\nb NOOP\r\n"
	r, conts := testReader(in, small)
	c, err := r.ReadCommand()
	var got []string
	for err == nil && c.Refused == nil && c.Stream != nil {
		r.Ask(c)
		b, _ := io.ReadAll(r.LiteralReader(c.Stream.Size))
		got = append(got, string(b))
		err = r.Next(c)
	}
	if err != nil || c.Refused != nil || strings.Join(got, ",") != "one,two,three" {
		t.Fatalf("literals %q: %v %v", got, err, c.Refused)
	}
	// {3} and {5} and the URL literal {4}: three continuations.
	if *conts != 3 {
		t.Fatalf("%d continuations", *conts)
	}
	// The messages before the last were dropped as the command went on.
	a := c.Append
	if a == nil || !a.Complete || len(a.Messages) != 3 || a.Messages[1] != nil || a.Messages[2].Parts[0].Lit.Size != 5 {
		t.Fatalf("args %+v", a)
	}
	if c, _ := r.ReadCommand(); c.Tag != "b" {
		t.Fatalf("next %+v", c)
	}
	// The same arguments scanned whole, the streamed literals' data left
	// out as the reader leaves them out.
	c = &Command{Tag: "a", Name: "APPEND", Lits: [][]byte{[]byte("/x;U")},
		Text: []byte("a APPEND INBOX (\\Seen) {3}\r\n CATENATE (URL {4}\r\n TEXT {3+}\r\n URL \"/y\") {5}\r\n\r\n")}
	a, err = ScanAppend(c, false)
	if err != nil || len(a.Messages) != 3 || !a.Messages[1].Catenate || len(a.Messages[1].Parts) != 3 ||
		a.Messages[1].Parts[0].URL != "/x;U" || a.Messages[1].Parts[2].URL != "/y" || a.Messages[1].Parts[1].Lit.Size != 3 ||
		len(a.Messages[0].Flags) != 1 {
		t.Fatalf("args %+v %v", a, err)
	}
}

// The limits of one APPEND are checked before each streamed literal: the
// refused literal and the rest of the command are consumed, never run.
func TestMultiAppendLimits(t *testing.T) {
	for _, c := range []struct{ in, code string }{
		{"a APPEND INBOX {1+}\r\n1 {1+}\r\n2 {1+}\r\n3 {1+}\r\nX NOOP\r\n", "LIMIT"},
		{"a APPEND INBOX {40+}\r\n" + strings.Repeat("x", 40) + " {41+}\r\nX NOOP" + strings.Repeat("y", 35) + "\r\n", "TOOBIG"},
		{"a APPEND INBOX CATENATE (TEXT {30+}\r\n" + strings.Repeat("x", 30) + " TEXT {21+}\r\nX NOOP" + strings.Repeat("y", 15) + ")\r\n", "TOOBIG"},
	} {
		r, _ := testReader(c.in+"b NOOP\r\n", small)
		cmd, err := r.ReadCommand()
		for err == nil && cmd.Refused == nil && cmd.Stream != nil {
			io.Copy(io.Discard, r.LiteralReader(cmd.Stream.Size))
			err = r.Next(cmd)
		}
		if err != nil || cmd.Refused == nil || string(cmd.Refused.Code) != c.code {
			t.Fatalf("%q: %v %+v", c.in, err, cmd.Refused)
		}
		if next, _ := r.ReadCommand(); next.Tag != "b" {
			t.Fatalf("%q: next command %+v", c.in, next)
		}
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
		"a APPEND INBOX {1+}\r\nx CATENATE (URL {2}\r\n/x TEXT {1+}\r\ny) (\\Seen) {1}\r\nz\r\n",
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
			for c.Stream != nil && c.Refused == nil {
				io.Copy(io.Discard, r.LiteralReader(c.Stream.Size))
				if err := r.Next(c); err != nil {
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
