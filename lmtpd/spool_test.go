package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMemoryBufferAndSpoolFile: a message within lmtpd.memory_buffer and
// one beyond it are delivered alike, to two users at once (two different
// Delivered-To prefixes) and through a Sieve body test, and the spool
// file of the large one does not outlive its transaction.
func TestMemoryBufferAndSpoolFile(t *testing.T) {
	e := startServer(t, func(c *configT) { c.LMTPD.MemoryBuffer = 1 << 10 })
	e.writeSieve(t, "demo@example.test", `require ["fileinto", "mailbox", "body"];
if body :contains "needle" { fileinto :create "Found"; stop; }
`)
	filler := strings.Repeat("0123456789abcdef0123456789abcdef\r\n", 100)
	for _, size := range []string{"small", "large"} {
		body := "needle " + size
		if size == "large" {
			// The text the body test looks for comes after the buffer.
			body = filler + body
		}
		msg := "Subject: " + size + "\r\n\r\n" + body + "\r\n"
		c := dialRaw(t, "unix", e.unix)
		c.send("LHLO c", "MAIL FROM:<a@remote.test>", "RCPT TO:<demo@example.test>", "RCPT TO:<alice@example.test>", "DATA")
		for range 4 { // LHLO, MAIL, two RCPT
			c.expect("250 ")
		}
		c.expect("354 ")
		c.send(strings.TrimSuffix(msg, "\r\n"), ".")
		c.expect("250 2.0.0 <demo@example.test>")
		c.expect("250 2.0.0 <alice@example.test>")
		c.send("QUIT")
		for user, folder := range map[string]string{"demo@example.test": "Found", "alice@example.test": "INBOX"} {
			want := "Return-Path: <a@remote.test>\r\nDelivered-To: " + user + "\r\n" + msg
			found := false
			for _, m := range e.messages(t, user, folder) {
				found = found || m == want
			}
			if !found {
				t.Errorf("%s message: %s %s has no exact copy", size, user, folder)
			}
		}
	}
	spool, err := os.ReadDir(filepath.Join(e.cfg.StateDir, "lmtpd", "spool"))
	if err != nil || len(spool) != 0 {
		t.Errorf("spool directory: %d entries, %v", len(spool), err)
	}
}
