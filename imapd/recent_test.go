package main

import (
	"os/exec"
	"strings"
	"testing"
)

// \Recent is given to exactly one session, counted by STATUS, EXAMINE and
// SELECT, searched by NEW, OLD and RECENT; a keyword new to an open
// mailbox reaches the other sessions as FLAGS. Driven by imaplib
// (testdata/recent.py) over plain IMAP and implicit TLS.
func TestRecentAndMailboxFlags(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed (Debian package python3)")
	}
	for _, transport := range []string{"plain", "tls"} {
		t.Run(transport, func(t *testing.T) {
			e := startServer(t)
			for _, s := range []string{"one", "two", "three"} {
				e.deliver(t, "INBOX", testMessage(s, "body\r\n"))
			}
			addr := e.addr
			if transport == "tls" {
				addr = e.tlsAddr
			}
			out, err := exec.Command(py, "testdata/recent.py", addr, transport).CombinedOutput()
			if err != nil || strings.TrimSpace(string(out)) != "ok" {
				t.Fatalf("imaplib: %v\n%s", err, out)
			}
		})
	}
}
