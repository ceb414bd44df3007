package main

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"tern/common/maildir"
)

// TestTransactionCommands drives every TRANSACTION command over a socket
// and checks the exact replies and bytes.
func TestTransactionCommands(t *testing.T) {
	env := newEnv(t)
	msgs := env.deliver(t, "demo@example.test", 5)
	ts := env.start(t)
	p := dialPOP(t, ts.addr)
	p.login("demo", "demo")

	var total int
	for _, m := range msgs {
		total += len(crlf(m))
	}
	if got, want := p.ok("STAT"), fmt.Sprintf("+OK 5 %d", total); got != want {
		t.Errorf("STAT = %q, want %q", got, want)
	}
	p.ok("LIST")
	list := p.lines()
	if len(list) != 5 {
		t.Fatalf("LIST: %q", list)
	}
	for i, l := range list {
		if want := fmt.Sprintf("%d %d", i+1, len(crlf(msgs[i]))); l != want {
			t.Errorf("LIST line %q, want %q", l, want)
		}
	}
	if got, want := p.ok("LIST 2"), fmt.Sprintf("+OK 2 %d", len(crlf(msgs[1]))); got != want {
		t.Errorf("LIST 2 = %q, want %q", got, want)
	}

	snap := env.inbox(t, "demo@example.test")
	p.ok("UIDL")
	for i, l := range p.lines() {
		if want := fmt.Sprintf("%d %s", i+1, snap.Messages[i].Key); l != want {
			t.Errorf("UIDL line %q, want %q", l, want)
		}
	}
	if got, want := p.ok("UIDL 3"), "+OK 3 "+snap.Messages[2].Key; got != want {
		t.Errorf("UIDL 3 = %q, want %q", got, want)
	}

	for i, m := range msgs {
		st := p.ok("RETR " + strconv.Itoa(i+1))
		if want := fmt.Sprintf("+OK %d octets", len(crlf(m))); st != want {
			t.Errorf("RETR status %q, want %q", st, want)
		}
		if got := p.body(); !bytes.Equal(got, crlf(m)) {
			t.Errorf("RETR %d:\n got %q\nwant %q", i+1, got, crlf(m))
		}
	}

	// TOP 1 0: the header and the blank line; TOP 1 2: two body lines more.
	p.ok("TOP 1 0")
	head, _, _ := bytes.Cut(msgs[0], []byte("\n\n"))
	if got, want := p.body(), crlf(append(head, "\n\n"...)); !bytes.Equal(got, want) {
		t.Errorf("TOP 1 0:\n got %q\nwant %q", got, want)
	}
	p.ok("TOP 1 2")
	if got, want := p.body(), crlf(append(head, "\n\nBody of message 1.\n.\n"...)); !bytes.Equal(got, want) {
		t.Errorf("TOP 1 2:\n got %q\nwant %q", got, want)
	}
	p.ok("TOP 1 100000")
	if got := p.body(); !bytes.Equal(got, crlf(msgs[0])) {
		t.Errorf("TOP 1 100000 is not the whole message: %q", got)
	}

	p.ok("NOOP")
	if got := p.ok("DELE 2"); got != "+OK message 2 deleted" {
		t.Errorf("DELE 2 = %q", got)
	}
	for _, c := range []string{"DELE 2", "RETR 2", "LIST 2", "UIDL 2", "TOP 2 1"} {
		if got := p.cmd(c); got != "-ERR message already deleted" {
			t.Errorf("%s after DELE = %q", c, got)
		}
	}
	if got, want := p.ok("STAT"), fmt.Sprintf("+OK 4 %d", total-len(crlf(msgs[1]))); got != want {
		t.Errorf("STAT after DELE = %q, want %q", got, want)
	}
	p.ok("LIST")
	if l := p.lines(); len(l) != 4 || strings.HasPrefix(l[1], "2 ") {
		t.Errorf("LIST after DELE: %q", l)
	}
	p.ok("RSET")
	if got, want := p.ok("STAT"), fmt.Sprintf("+OK 5 %d", total); got != want {
		t.Errorf("STAT after RSET = %q, want %q", got, want)
	}
	p.ok("DELE 1")
	p.ok("DELE 5")
	if got := p.ok("QUIT"); got != "+OK mail.example.test POP3 server signing off (3 messages left)" {
		t.Errorf("QUIT = %q", got)
	}
	if !p.closed() {
		t.Error("connection still open after QUIT")
	}
	after := env.inbox(t, "demo@example.test")
	var keys []string
	for _, m := range after.Messages {
		keys = append(keys, m.Key)
	}
	want := []string{snap.Messages[1].Key, snap.Messages[2].Key, snap.Messages[3].Key}
	if !slices.Equal(keys, want) {
		t.Errorf("after QUIT the INBOX has %q, want %q", keys, want)
	}
}

// TestRetrLeavesSeen: RETR does not set \Seen unless mark_seen is on.
func TestRetrLeavesSeen(t *testing.T) {
	for _, markSeen := range []bool{false, true} {
		t.Run(fmt.Sprintf("mark_seen=%v", markSeen), func(t *testing.T) {
			env := newEnv(t)
			env.opts.markSeen = markSeen
			env.deliver(t, "demo@example.test", 2)
			ts := env.start(t)
			p := dialPOP(t, ts.addr)
			p.login("demo", "demo")
			p.ok("RETR 1")
			p.body()
			p.ok("TOP 2 1")
			p.body()
			p.ok("QUIT")
			snap := env.inbox(t, "demo@example.test")
			if got := slices.Contains(snap.Messages[0].Flags, `\Seen`); got != markSeen {
				t.Errorf("after RETR, \\Seen = %v, want %v", got, markSeen)
			}
			if slices.Contains(snap.Messages[1].Flags, `\Seen`) {
				t.Error("TOP set \\Seen")
			}
		})
	}
}

// TestSnapshotAtLogin: RFC 1939 5, the maildrop is fixed for the session:
// a message delivered later is not listed, and one removed by another
// session keeps its number and fails on RETR.
func TestSnapshotAtLogin(t *testing.T) {
	env := newEnv(t)
	env.deliver(t, "demo@example.test", 3)
	ts := env.start(t)
	p := dialPOP(t, ts.addr)
	p.login("demo", "demo")

	root := env.root(t, "demo@example.test")
	if _, _, err := maildir.Deliver(root, strings.NewReader("Subject: late\n\nlate\n"), nil); err != nil {
		t.Fatal(err)
	}
	mb, err := maildir.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	f, err := mb.Folder("INBOX")
	if err != nil {
		t.Fatal(err)
	}
	snap, err := f.Sync()
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Expunge([]uint32{snap.Messages[1].UID}); err != nil {
		t.Fatal(err)
	}
	p.ok("UIDL")
	if l := p.lines(); len(l) != 3 {
		t.Errorf("UIDL after a later delivery lists %d messages, want 3", len(l))
	}
	if got := p.cmd("RETR 2"); got != "-ERR message was removed by another session" {
		t.Errorf("RETR of a message expunged by IMAP = %q", got)
	}
	if got := p.cmd("RETR 4"); got != "-ERR no such message" {
		t.Errorf("RETR of a message delivered after login = %q", got)
	}
	p.ok("RETR 3")
	p.body()
	p.ok("DELE 2") // already gone: QUIT must still succeed
	p.ok("QUIT")
	if n := len(env.inbox(t, "demo@example.test").Messages); n != 3 {
		t.Errorf("after QUIT %d messages, want 3 (two old, one late)", n)
	}
}

// TestInUse: one POP3 session per maildrop (RFC 1939 8, RFC 2449 8.1.1).
func TestInUse(t *testing.T) {
	env := newEnv(t)
	env.deliver(t, "demo@example.test", 1)
	ts := env.start(t)
	a := dialPOP(t, ts.addr)
	a.login("demo", "demo")
	b := dialPOP(t, ts.addr)
	b.ok("USER demo")
	if got := b.cmd("PASS demo"); !strings.HasPrefix(got, "-ERR [IN-USE] ") {
		t.Errorf("second session: %q", got)
	}
	// Still in AUTHORIZATION: another user may log in on it.
	b.login("alice", "alice")
	b.ok("QUIT")
	a.ok("QUIT")
	c := dialPOP(t, ts.addr)
	c.login("demo", "demo")
	c.ok("QUIT")

	// A dropped connection releases the lock too.
	d := dialPOP(t, ts.addr)
	d.login("demo", "demo")
	d.conn.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		e := dialPOP(t, ts.addr)
		e.ok("USER demo")
		if r := e.cmd("PASS demo"); strings.HasPrefix(r, "+OK") {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("lock not released after a dropped connection: %q", r)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
