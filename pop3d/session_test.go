package main

import (
	"net"
	"strings"
	"testing"
	"time"
)

// TestErrors: every bad input gets a one-line -ERR and the session goes on.
func TestErrors(t *testing.T) {
	env := newEnv(t)
	env.opts.maxErrors = 100
	env.deliver(t, "demo@example.test", 2)
	ts := env.start(t)
	p := dialPOP(t, ts.addr)

	for _, c := range []struct{ cmd, want string }{
		{"HELO", "-ERR unknown command"},
		{"APOP demo 0123456789abcdef0123456789abcdef", "-ERR unknown command"},
		{"XY", "-ERR malformed command"},
		{"STAT", "-ERR STAT is not valid in the AUTHORIZATION state"},
		{"RETR 1", "-ERR RETR is not valid in the AUTHORIZATION state"},
		{"DELE 1", "-ERR DELE is not valid in the AUTHORIZATION state"},
		{"NOOP", "-ERR NOOP is not valid in the AUTHORIZATION state"},
		{"USER", "-ERR syntax error in arguments"},
		{"USER a b", "-ERR syntax error in arguments"},
		{"CAPA x", "-ERR syntax error in arguments"},
		{"USER ", "-ERR malformed command"},
		{"USER\x01demo", "-ERR malformed command"},
	} {
		if got := p.cmd(c.cmd); got != c.want {
			t.Errorf("%q before login: %q, want %q", c.cmd, got, c.want)
		}
	}
	p.login("demo", "demo")
	for _, c := range []struct{ cmd, want string }{
		{"RETR", "-ERR syntax error in arguments"},
		{"RETR x", "-ERR syntax error in arguments"},
		{"RETR +1", "-ERR syntax error in arguments"},
		{"RETR -1", "-ERR syntax error in arguments"},
		{"RETR 1 2", "-ERR syntax error in arguments"},
		{"RETR  1", "-ERR syntax error in arguments"},
		{"RETR 0", "-ERR no such message"},
		{"RETR 3", "-ERR no such message"},
		{"RETR 99999999999", "-ERR syntax error in arguments"},
		{"LIST 9", "-ERR no such message"},
		{"LIST 1 2", "-ERR syntax error in arguments"},
		{"UIDL a", "-ERR syntax error in arguments"},
		{"TOP 1", "-ERR syntax error in arguments"},
		{"TOP 1 -1", "-ERR syntax error in arguments"},
		{"TOP 3 1", "-ERR no such message"},
		{"DELE", "-ERR syntax error in arguments"},
		{"STAT 1", "-ERR syntax error in arguments"},
		{"NOOP now", "-ERR syntax error in arguments"},
		{"QUIT now", "-ERR syntax error in arguments"},
		{"retr 0", "-ERR no such message"}, // keywords are case-insensitive
	} {
		if got := p.cmd(c.cmd); got != c.want {
			t.Errorf("%q: %q, want %q", c.cmd, got, c.want)
		}
	}

	// RFC 2449 4: 255 octets with CRLF is the limit; one more is refused,
	// and the rest of the line is not read as a command.
	p.ok("NOOP")
	long := "LIST " + strings.Repeat("1", 255-2-5)
	if got := p.cmd(long); got != "-ERR syntax error in arguments" {
		t.Errorf("line of 255 octets: %q", got)
	}
	if got := p.cmd(long + "1"); got != "-ERR line too long (the limit is 255 octets with CRLF)" {
		t.Errorf("line of 256 octets: %q", got)
	}
	if got := p.cmd("NOOP " + strings.Repeat("x", 100000)); !strings.HasPrefix(got, "-ERR line too long") {
		t.Errorf("line of 100 kB: %q", got)
	}
	p.send("NOOP\n")
	if got := p.line(); got != "-ERR lines must end with CRLF" {
		t.Errorf("bare LF: %q", got)
	}
	p.ok("NOOP")
	p.ok("QUIT")
}

func TestTooManyErrors(t *testing.T) {
	env := newEnv(t)
	env.opts.maxErrors = 3
	ts := env.start(t)
	p := dialPOP(t, ts.addr)
	p.cmd("FOO")
	p.cmd("STAT")
	if got := p.cmd("BAR"); got != "-ERR unknown command; too many errors, closing" {
		t.Errorf("third error: %q", got)
	}
	if !p.closed() {
		t.Error("connection open after too many errors")
	}
}

// TestPipelining: RFC 2449 6.6, commands sent together are all answered,
// in order.
func TestPipelining(t *testing.T) {
	env := newEnv(t)
	msgs := env.deliver(t, "demo@example.test", 3)
	ts := env.start(t)
	p := dialPOP(t, ts.addr)
	p.send("USER demo\r\nPASS demo\r\nSTAT\r\nRETR 1\r\nRETR 2\r\nDELE 3\r\nUIDL 3\r\nQUIT\r\n")
	for _, want := range []string{"+OK send PASS", "+OK maildrop has 3 messages", "+OK 3 "} {
		if got := p.line(); !strings.HasPrefix(got, want) {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	for i := 1; i <= 2; i++ {
		if got := p.line(); !strings.HasSuffix(got, " octets") {
			t.Fatalf("RETR %d: %q", i, got)
		}
		if got := p.body(); string(got) != string(crlf(msgs[i-1])) {
			t.Errorf("RETR %d body differs", i)
		}
	}
	for _, want := range []string{"+OK message 3 deleted", "-ERR message already deleted", "+OK mail.example.test POP3 server signing off (2 messages left)"} {
		if got := p.line(); got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
}

// TestPartialPipelinedLine: a reply is not held back for a command of
// which only part has arrived; the client may wait for the reply first.
func TestPartialPipelinedLine(t *testing.T) {
	env := newEnv(t)
	ts := env.start(t)
	p := dialPOP(t, ts.addr)
	p.login("demo", "demo")
	p.conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	p.send("NOOP\r\nNO")
	if got := p.line(); got != "+OK" {
		t.Fatalf("first NOOP: %q", got)
	}
	p.send("OP\r\n")
	if got := p.line(); got != "+OK" {
		t.Fatalf("second NOOP: %q", got)
	}
}

func TestIdleTimeout(t *testing.T) {
	env := newEnv(t)
	env.opts.idleTimeout = 300 * time.Millisecond
	env.deliver(t, "demo@example.test", 1)
	ts := env.start(t)
	p := dialPOP(t, ts.addr)
	p.login("demo", "demo")
	p.ok("DELE 1")
	if got := p.line(); got != "-ERR idle for too long, closing; no messages removed" {
		t.Errorf("idle timeout: %q", got)
	}
	if !p.closed() {
		t.Error("connection open after the idle timeout")
	}
	if n := len(env.inbox(t, "demo@example.test").Messages); n != 1 {
		t.Errorf("after a timeout %d messages, want 1", n)
	}
}

func TestMaxConnections(t *testing.T) {
	env := newEnv(t)
	env.opts.maxConnections = 2
	ts := env.start(t)
	a := dialPOP(t, ts.addr)
	b := dialPOP(t, ts.addr)
	c, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 200)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, _ := c.Read(buf)
	if got := string(buf[:n]); got != "-ERR [SYS/TEMP] too many connections, try again later\r\n" {
		t.Errorf("third connection: %q", got)
	}
	a.ok("QUIT")
	b.ok("CAPA") // the other session is alive
	b.lines()
	deadline := time.Now().Add(5 * time.Second)
	for {
		d, err := net.Dial("tcp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		d.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, _ := d.Read(buf)
		d.Close()
		if strings.HasPrefix(string(buf[:n]), "+OK") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a closed session's slot was not freed")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
