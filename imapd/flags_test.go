package main

import (
	"strings"
	"testing"
)

// A keyword that appears in the selected mailbox is announced with FLAGS
// and PERMANENTFLAGS before the first FETCH that carries it (RFC 9051
// 7.3.5), whoever set it.
func TestNewKeywordAnnounced(t *testing.T) {
	e := startServer(t, noDelay)
	e.deliver(t, "INBOX", testMessage("one", "hello"))
	a, b := transports[0].dial(t, e), transports[0].dial(t, e)
	a.login()
	b.login()
	a.ok("S", "SELECT INBOX")
	b.ok("S", "SELECT INBOX")

	check := func(out []string, kw string) {
		t.Helper()
		flags, fetch := -1, -1
		for i, l := range out {
			if strings.HasPrefix(l, "* FLAGS ") && strings.Contains(l, kw) {
				flags = i
			}
			if strings.Contains(l, " FETCH ") && strings.Contains(l, kw) && fetch < 0 {
				fetch = i
			}
		}
		if flags < 0 || fetch < 0 || flags > fetch {
			t.Fatalf("%s not announced before its FETCH: %q", kw, out)
		}
		if !strings.Contains(strings.Join(out, ""), "PERMANENTFLAGS (") {
			t.Fatalf("no PERMANENTFLAGS: %q", out)
		}
	}
	check(a.ok("T", "STORE 1 +FLAGS ($Own)"), "$Own")
	b.ok("T", "STORE 1 +FLAGS ($Other)")
	check(a.ok("N", "NOOP"), "$Other")
	// Told once: the next FETCH needs no new FLAGS.
	for _, l := range a.ok("F", "FETCH 1 FLAGS") {
		if strings.HasPrefix(l, "* FLAGS") {
			t.Fatalf("FLAGS sent again: %q", l)
		}
	}
}
