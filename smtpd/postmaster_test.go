package main

import (
	"strings"
	"testing"
)

// TestPostmasterWithoutDomain: RFC 5321 4.1.1.3 and 4.5.1: "RCPT
// TO:<Postmaster>", without a domain and in any case, is accepted on
// every transport and delivered to the postmaster of the primary local
// domain, through its alias like any other address.
func TestPostmasterWithoutDomain(t *testing.T) {
	e, sink := startStrict(t, "")
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			c := e.open(t, tr)
			from := c.ready(tr)
			c.cmd("MAIL FROM:<"+from+">", "250")
			c.cmd("RCPT TO:<PostMaster>", "250 2.1.5")
			c.cmd("DATA", "354")
			c.send("Subject: to the postmaster over " + tr.name + "\r\n\r\nhello\r\n.\r\n")
			c.expect("250 2.0.0")
			c.cmd("QUIT", "221")
		})
	}
	got := sink.messages("postmaster@example.test")
	if len(got) != len(transports) {
		t.Fatalf("postmaster@example.test has %d messages, want %d", len(got), len(transports))
	}
	for _, tr := range transports {
		found := false
		for _, m := range got {
			found = found || strings.Contains(m, "over "+tr.name+"\r\n")
		}
		if !found {
			t.Errorf("no message over %s", tr.name)
		}
	}
}
