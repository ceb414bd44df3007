package main

import (
	"strings"
	"testing"
)

// The store's \Recent and keyword state reaches the client through the
// layer on every transport: an IMAP4rev1 SELECT reports and claims
// \Recent (RFC 3501 2.3.2, 7.3.2), FETCH shows it and SEARCH RECENT/NEW
// find it, new mail is followed by RECENT; a session that enabled
// IMAP4rev2 sees none of it (RFC 9051 2.3.2 removed \Recent).
func TestRecentOverWire(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			e := startServer(t, noDelay)
			e.deliver(t, "INBOX", testMessage("one", "hello"))
			e.deliver(t, "INBOX", testMessage("two", "hello"))

			a := tr.dial(t, e)
			a.login()
			sel := strings.Join(a.ok("S", "SELECT INBOX"), "")
			if !strings.Contains(sel, "* 2 RECENT") {
				t.Fatalf("SELECT: %q", sel)
			}
			if out := strings.Join(a.ok("F", "FETCH 1:* FLAGS"), ""); strings.Count(out, `\Recent`) != 2 {
				t.Fatalf("FETCH FLAGS: %q", out)
			}
			a.ok("T", `STORE 1 +FLAGS (\Seen)`)
			if out := strings.Join(a.ok("R", "SEARCH RECENT"), ""); !strings.Contains(out, "* SEARCH 1 2\r\n") {
				t.Fatalf("SEARCH RECENT: %q", out)
			}
			if out := strings.Join(a.ok("N", "SEARCH NEW"), ""); !strings.Contains(out, "* SEARCH 2\r\n") {
				t.Fatalf("SEARCH NEW: %q", out)
			}

			// A second session does not get them: they were claimed.
			b := tr.dial(t, e)
			b.login()
			if out := strings.Join(b.ok("S", "SELECT INBOX"), ""); !strings.Contains(out, "* 0 RECENT") {
				t.Fatalf("second SELECT: %q", out)
			}
			if out := strings.Join(b.ok("O", "SEARCH OLD"), ""); !strings.Contains(out, "* SEARCH 1 2\r\n") {
				t.Fatalf("SEARCH OLD: %q", out)
			}
			b.ok("C", "CLOSE")

			// New mail is claimed by the session that sees it first.
			e.deliver(t, "INBOX", testMessage("three", "hello"))
			out := strings.Join(a.ok("P", "NOOP"), "")
			if i, j := strings.Index(out, "* 3 EXISTS"), strings.Index(out, "* 3 RECENT"); i < 0 || j < i {
				t.Fatalf("NOOP after new mail: %q", out)
			}

			// IMAP4rev2: no RECENT response, no \Recent flag.
			e.deliver(t, "INBOX", testMessage("four", "hello"))
			c := tr.dial(t, e)
			c.login()
			c.ok("E", "ENABLE IMAP4rev2")
			sel = strings.Join(c.ok("S", "SELECT INBOX"), "")
			if strings.Contains(sel, "RECENT") {
				t.Fatalf("IMAP4rev2 SELECT: %q", sel)
			}
			if out := strings.Join(c.ok("F", "FETCH 1:* FLAGS"), ""); strings.Contains(out, `\Recent`) {
				t.Fatalf("IMAP4rev2 FETCH: %q", out)
			}

			// ENABLE while selected also ends \Recent in that mailbox.
			if out := strings.Join(a.ok("F", "FETCH 3 FLAGS"), ""); !strings.Contains(out, `\Recent`) {
				t.Fatalf("IMAP4rev1 FETCH: %q", out)
			}
			a.ok("E", "ENABLE IMAP4rev2")
			if out := strings.Join(a.ok("F", "FETCH 3 FLAGS"), ""); strings.Contains(out, `\Recent`) {
				t.Fatalf("FETCH after ENABLE IMAP4rev2: %q", out)
			}
		})
	}
}

// FETCH ENVELOPE gives each address's source route as its adl (RFC 3501
// 7.4.2), NIL where there is none.
func TestEnvelopeRoutesOverWire(t *testing.T) {
	e := startServer(t, noDelay)
	e.deliver(t, "INBOX", "From: <@route:user@domain>\r\nTo: plain@example.test\r\nSubject: r\r\n\r\nbody\r\n")
	eachTransport(t, e, func(t *testing.T, w *wireConn) {
		w.login()
		w.ok("S", "EXAMINE INBOX")
		out := strings.Join(w.ok("F", "FETCH 1 ENVELOPE"), "")
		if !strings.Contains(out, `((NIL "@route" "user" "domain"))`) ||
			!strings.Contains(out, `((NIL NIL "plain" "example.test"))`) {
			t.Fatalf("ENVELOPE: %q", out)
		}
	})
}

// LSUB is told apart from LIST (SUBSCRIBED) by the command itself: a
// subscription whose mailbox is gone is \Noselect in LSUB (RFC 3501
// 6.3.9) and \NonExistent in LIST (RFC 5258 3.1).
func TestLsubAndListSubscribedOverWire(t *testing.T) {
	e := startServer(t, noDelay)
	eachTransport(t, e, func(t *testing.T, w *wireConn) {
		w.login()
		name := "Gone" + strings.ToUpper(t.Name()[strings.LastIndexByte(t.Name(), '/')+1:])
		w.ok("C", "CREATE "+name)
		w.ok("U", "SUBSCRIBE "+name)
		w.ok("D", "DELETE "+name)
		out := strings.Join(w.ok("L", `LSUB "" `+name), "")
		if !strings.Contains(out, `* LSUB (\Noselect) "." "`+name+`"`) {
			t.Fatalf("LSUB: %q", out)
		}
		out = strings.Join(w.ok("X", `LIST (SUBSCRIBED) "" `+name), "")
		if !strings.Contains(out, `* LIST (\NonExistent \Subscribed) "." "`+name+`"`) {
			t.Fatalf("LIST (SUBSCRIBED): %q", out)
		}
	})
}
