package main

import (
	"strings"
	"testing"
)

// A keyword that appears in the selected mailbox is announced with FLAGS
// and PERMANENTFLAGS before the first FETCH that carries it (RFC 9051
// 7.3.5), whoever set it.
func TestNewKeywordAnnounced(t *testing.T) {
	_, a, b := selectedPair(t, 1)

	check := func(out []string, kw string) {
		t.Helper()
		announcedBefore(t, out, kw)
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

// A command that syncs with the store (STORE, FETCH, SEARCH) and is then
// followed by the unilateral updates must announce a keyword another
// session set meanwhile before the update's FETCH that carries it: the
// command's own sync must not hide the new keyword from the update.
func TestNewKeywordAnnouncedAfterSyncingCommand(t *testing.T) {
	e, a, b := selectedPair(t, 3)

	// This session's own flag change, another session's new keyword:
	// the STORE answer and the update after it.
	b.ok("K", "STORE 2 +FLAGS.SILENT ($Race1)")
	announcedBefore(t, a.ok("T", "STORE 1 +FLAGS.SILENT (\\Seen)"), "$Race1")
	// A new message and another keyword, after a FETCH that asks for no
	// flags.
	b.ok("K", "STORE 3 +FLAGS.SILENT ($Race2)")
	e.deliver(t, "INBOX", testMessage("new", "hello"))
	announcedBefore(t, a.ok("F", "FETCH 1 (UID RFC822.SIZE)"), "$Race2")
	// And after a SEARCH.
	b.ok("K", "STORE 1 +FLAGS.SILENT ($Race3)")
	e.deliver(t, "INBOX", testMessage("new", "hello"))
	announcedBefore(t, a.ok("R", "SEARCH ALL"), "$Race3")
}

// selectedPair starts a server with n messages in INBOX and two plain
// sessions that have it selected.
func selectedPair(t testing.TB, n int) (e *testEnv, a, b *wireConn) {
	t.Helper()
	e = startServer(t, noDelay)
	for i := 0; i < n; i++ {
		e.deliver(t, "INBOX", testMessage("m", "hello"))
	}
	a, b = transports[0].dial(t, e), transports[0].dial(t, e)
	for _, c := range []*wireConn{a, b} {
		c.login()
		c.ok("S", "SELECT INBOX")
	}
	return e, a, b
}

// announcedBefore checks that the first FETCH in out carrying kw follows
// a FLAGS that lists it, and that there is such a FETCH.
func announcedBefore(t testing.TB, out []string, kw string) {
	t.Helper()
	flags, fetch := -1, -1
	for i, l := range out {
		if strings.HasPrefix(l, "* FLAGS ") && strings.Contains(l, kw) && flags < 0 {
			flags = i
		}
		if strings.Contains(l, " FETCH ") && strings.Contains(l, kw) && fetch < 0 {
			fetch = i
		}
	}
	if fetch < 0 {
		t.Fatalf("no FETCH with %s: %q", kw, out)
	}
	if flags < 0 || flags > fetch {
		t.Fatalf("%s not in FLAGS before its FETCH: %q", kw, out)
	}
}
