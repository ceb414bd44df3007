package main

import (
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"tern/common/maildir"
)

// TestDroppedConnectionRemovesNothing: RFC 1939 6, only QUIT from the
// TRANSACTION state removes messages. DELE of every message followed by a
// dropped connection, twenty times, leaves the INBOX whole; then DELE of
// some and QUIT removes exactly those.
func TestDroppedConnectionRemovesNothing(t *testing.T) {
	env := newEnv(t)
	const n = 10
	env.deliver(t, "demo@example.test", n)
	before := keysOf(env.inbox(t, "demo@example.test"))
	ts := env.start(t)

	for round := 0; round < 20; round++ {
		p := dialPOP(t, ts.addr)
		// The previous dropped session may still hold the lock for a
		// moment, until the server sees the EOF.
		loginRetry(t, p, ts.addr)
		for i := 1; i <= n; i++ {
			p.ok("DELE " + strconv.Itoa(i))
		}
		p.conn.Close()
	}
	if got := keysOf(env.inbox(t, "demo@example.test")); !slices.Equal(got, before) {
		t.Fatalf("after 20 dropped sessions the INBOX has %d messages, want %d", len(got), len(before))
	}

	p := dialPOP(t, ts.addr)
	p = loginRetry(t, p, ts.addr)
	for _, i := range []int{2, 3, 7} {
		p.ok("DELE " + strconv.Itoa(i))
	}
	p.ok("QUIT")
	want := slices.Clone(before)
	want = slices.Delete(want, 6, 7)
	want = slices.Delete(want, 1, 3)
	if got := keysOf(env.inbox(t, "demo@example.test")); !slices.Equal(got, want) {
		t.Errorf("after QUIT the INBOX has %q, want %q", got, want)
	}
}

// TestShutdownRemovesNothing: a session cut by shutdown ends without the
// UPDATE state, says so, and the server stops promptly.
func TestShutdownRemovesNothing(t *testing.T) {
	env := newEnv(t)
	env.deliver(t, "demo@example.test", 3)
	ts := env.start(t)
	p := dialPOP(t, ts.addr)
	p.login("demo", "demo")
	p.ok("DELE 1")
	p.ok("DELE 2")
	start := time.Now()
	ts.stop()
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("shutdown took %v with an idle session", d)
	}
	if got := p.line(); got != "-ERR [SYS/TEMP] server shutting down, no messages removed" {
		t.Errorf("on shutdown: %q", got)
	}
	if !p.closed() {
		t.Error("connection open after shutdown")
	}
	if n := len(env.inbox(t, "demo@example.test").Messages); n != 3 {
		t.Errorf("after shutdown %d messages, want 3", n)
	}
}

// loginRetry logs in as demo, retrying while a previous session's lock is
// still held.
func loginRetry(t *testing.T, p *popClient, addr string) *popClient {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		p.ok("USER demo")
		r := p.cmd("PASS demo")
		if r[:3] == "+OK" {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("login: %q", r)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func keysOf(s *maildir.Snapshot) []string {
	var keys []string
	for _, m := range s.Messages {
		keys = append(keys, m.Key)
	}
	return keys
}

// TestQuitCountsVanishedMessages: a message file removed by another tool
// during the session is not counted among the messages QUIT says are left
// (RFC 1939 6), when the client has DELEd another one too.
func TestQuitCountsVanishedMessages(t *testing.T) {
	env := newEnv(t)
	env.deliver(t, "demo@example.test", 4)
	ts := env.start(t)
	p := dialPOP(t, ts.addr)
	p.login("demo", "demo")
	root := env.root(t, "demo@example.test")
	files, err := filepath.Glob(filepath.Join(root, "cur", "*"))
	if err != nil || len(files) != 4 {
		t.Fatalf("cur/ holds %v (%v), want 4 files", files, err)
	}
	sort.Strings(files)
	if err := os.Remove(files[1]); err != nil { // as rm(1) or another MUA would
		t.Fatal(err)
	}
	p.ok("DELE 3")
	if got := p.ok("QUIT"); !strings.HasSuffix(got, "(2 messages left)") {
		t.Errorf("QUIT = %q, want 2 messages left", got)
	}
	if n := len(env.inbox(t, "demo@example.test").Messages); n != 2 {
		t.Errorf("after QUIT %d messages, want 2", n)
	}
}

// TestShutdownGoodbyeEveryTransport: the shutdown's -ERR [SYS/TEMP]
// (RFC 2449 8.1.2) reaches a session on its own transport: in plaintext,
// after STLS and over implicit TLS, logged in or not.
func TestShutdownGoodbyeEveryTransport(t *testing.T) {
	env := newEnv(t)
	ts := env.start(t)
	plain := dialPOP(t, ts.addr)
	stls := dialPOP(t, ts.addr)
	stls.ok("STLS")
	stls = startTLS(t, env, stls)
	stls.login("demo", "demo")
	implicit := dialPOPS(t, env, ts)
	go ts.stop()
	for name, p := range map[string]*popClient{"plain": plain, "stls": stls, "implicit": implicit} {
		if got := p.line(); got != "-ERR [SYS/TEMP] server shutting down, no messages removed" {
			t.Errorf("%s: %q", name, got)
		}
	}
}
