package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// sendOne sends one message on the MX port and returns the final reply.
func sendOne(t *testing.T, e *testEnv, rcpt, body string) string {
	t.Helper()
	c := dialRaw(t, e.addr(kindMX))
	c.cmd("EHLO client.test", "250")
	c.cmd("MAIL FROM:<x@remote.test>", "250")
	c.cmd("RCPT TO:<"+rcpt+">", "250")
	c.cmd("DATA", "354")
	c.send(body + "\r\n.\r\n")
	r := c.reply()
	c.cmd("QUIT", "221")
	return r
}

// TestLMTPConnectionReused: messages one after another share one LMTP
// connection, and one that lmtpd dropped while idle is replaced without
// losing the message.
func TestLMTPConnectionReused(t *testing.T) {
	cfg := newTestConfig(t, "")
	sink := startLMTP(t, cfg)
	e := startSMTPD(t, cfg)
	for i := range 3 {
		if r := sendOne(t, e, "demo@example.test", fmt.Sprintf("Subject: %d\r\n\r\nx", i)); !strings.HasPrefix(r, "250") {
			t.Fatalf("message %d: %q", i, r)
		}
	}
	if n := sink.conns.Load(); n != 1 {
		t.Errorf("3 messages took %d LMTP connections, want 1", n)
	}
	// lmtpd restarts: the pooled connection is dead.
	sink.stop()
	sink = startLMTP(t, cfg)
	if r := sendOne(t, e, "demo@example.test", "Subject: after\r\n\r\nx"); !strings.HasPrefix(r, "250 2.0.0 OK") || strings.Contains(r, "queued as") {
		t.Fatalf("after an lmtpd restart: %q", r)
	}
	if got := sink.messages("demo@example.test"); len(got) != 4 {
		t.Fatalf("%d copies delivered, want 4", len(got))
	}
}

// TestLMTPIdleConnectionsClosed: with no message for the idle timeout the
// pooled connection is closed, and with lmtp_idle_connections = 0 none is
// kept.
func TestLMTPIdleConnectionsClosed(t *testing.T) {
	cfg := newTestConfig(t, "lmtp_idle_timeout = \"200ms\"\n")
	idleSink := startLMTP(t, cfg)
	e := startSMTPD(t, cfg)
	if r := sendOne(t, e, "demo@example.test", "Subject: a\r\n\r\nx"); !strings.HasPrefix(r, "250") {
		t.Fatal(r)
	}
	// The pooled connection is lmtpd's one open session until the
	// courier's pool closes it.
	if n := idleSink.open.Load(); n != 1 {
		t.Fatalf("%d open LMTP sessions after a message, want 1", n)
	}
	waitFor(t, 5*time.Second, "the idle connection to close", func() bool { return idleSink.open.Load() == 0 })

	cfg = newTestConfig(t, "lmtp_idle_connections = 0\n")
	sink := startLMTP(t, cfg)
	e = startSMTPD(t, cfg)
	for range 2 {
		if r := sendOne(t, e, "demo@example.test", "Subject: b\r\n\r\nx"); !strings.HasPrefix(r, "250") {
			t.Fatal(r)
		}
	}
	if n := sink.conns.Load(); n != 2 {
		t.Errorf("without a pool 2 messages took %d connections", n)
	}
}

// TestMemoryBuffer: a message larger than smtpd.memory_buffer goes
// through a spool file, a smaller one does not touch the queue, and both
// are delivered whole; a buffered message that must be queued is written
// to the queue before its 250.
func TestMemoryBuffer(t *testing.T) {
	cfg := newTestConfig(t, "memory_buffer = \"1K\"\n")
	sink := startLMTP(t, cfg)
	e := startSMTPD(t, cfg)
	small := "Subject: small\r\n\r\nx"
	large := "Subject: large\r\n\r\n" + strings.Repeat("0123456789abcdef0123456789abcdef\r\n", 200) + "end"
	for _, body := range []string{small, large} {
		if r := sendOne(t, e, "demo@example.test", body); !strings.HasPrefix(r, "250") || strings.Contains(r, "queued as") {
			t.Fatalf("%q", r)
		}
	}
	got := sink.messages("demo@example.test")
	if len(got) != 2 {
		t.Fatalf("%d copies, want 2", len(got))
	}
	for _, body := range []string{small, large} {
		found := false
		for _, m := range got {
			found = found || strings.HasSuffix(m, body+"\r\n")
		}
		if !found {
			t.Errorf("no copy ends with %.20q…", body)
		}
	}
	tmp, _ := os.ReadDir(filepath.Join(e.srv.queue.Dir(), "tmp"))
	if len(tmp) != 0 {
		t.Errorf("queue tmp/ keeps %d files", len(tmp))
	}

	sink.stop()
	if r := sendOne(t, e, "demo@example.test", small); !strings.HasPrefix(r, "250 2.0.0 OK: queued as") {
		t.Fatalf("with lmtpd down: %q", r)
	}
	ids, _ := e.srv.queue.IDs()
	if len(ids) != 1 {
		t.Fatalf("queue has %d messages, want 1", len(ids))
	}
	data, err := os.ReadFile(filepath.Join(e.srv.queue.Dir(), "data", ids[0]))
	if err != nil || !strings.HasSuffix(string(data), small+"\r\n") {
		t.Fatalf("queued data %q, %v", data, err)
	}
}
