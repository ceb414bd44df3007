package main

import (
	"strings"
	"testing"
)

// TestPostmasterWithoutDomain: RFC 5321 4.1.1.3 and 4.5.1: "RCPT
// TO:<Postmaster>" without a domain is accepted over LMTP too and
// delivered through the postmaster alias of the primary domain.
func TestPostmasterWithoutDomain(t *testing.T) {
	e := startServer(t, nil)
	c := dialRaw(t, "unix", e.unix)
	c.send("LHLO client.test")
	c.expect("250 ")
	c.send("MAIL FROM:<a@remote.test>", "RCPT TO:<POSTMASTER>", "DATA")
	c.expect("250 ")
	c.expect("250 ")
	c.expect("354 ")
	c.send("Subject: to the postmaster\r\n\r\nhi\r\n.")
	c.expect("250 2.0.0 <postmaster>")
	got := e.messages(t, "demo@example.test", "INBOX")
	if len(got) != 1 || !strings.Contains(got[0], "Subject: to the postmaster") {
		t.Errorf("demo (postmaster) INBOX = %q", got)
	}
}
