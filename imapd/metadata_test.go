package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"tern/common/config"
)

// METADATA (RFC 5464) over every transport: server and mailbox entries,
// DEPTH and MAXSIZE, entries moving with RENAME and going with DELETE,
// and each limit's response code.
func TestMetadataWire(t *testing.T) {
	e := startServer(t, noDelay, func(c *config.Config) {
		c.IMAPD.MetadataMaxSize = 100
		c.IMAPD.MetadataMaxEntries = 3
		c.IMAPD.MetadataMaxTotal = 2000
	})
	mb := e.mailbox(t)
	eachTransport(t, e, func(t *testing.T, w *wireConn) {
		tr := t.Name()[strings.LastIndex(t.Name(), "/")+1:]
		box := "Meta-" + tr
		w.login()
		if caps := w.ok("C", "CAPABILITY"); !strings.Contains(caps[0], " METADATA METADATA-SERVER") {
			t.Fatalf("capabilities: %q", caps[0])
		}
		expect := func(cmd string, want ...string) []string {
			t.Helper()
			out := w.ok("A", cmd)
			all := strings.Join(out, "")
			for _, s := range want {
				if !strings.Contains(all, s) {
					t.Errorf("%s: %q lacks %q", cmd, out, s)
				}
			}
			return out
		}
		fail := func(cmd, want string) {
			t.Helper()
			w.answers("F", cmd, want)
		}
		// Server entries: the mailbox "".
		expect(`SETMETADATA "" (/private/Comment-` + tr + ` "hello")`)
		expect(`GETMETADATA "" /private/comment-`+tr, `* METADATA "" (/private/comment-`+tr+` "hello")`)
		expect(`SETMETADATA "" (/private/comment-` + tr + ` NIL)`)
		expect(`GETMETADATA "" (/private/comment-`+tr+`)`, `(/private/comment-`+tr+` NIL)`)

		// Mailbox entries, a literal value, DEPTH and MAXSIZE.
		expect("CREATE " + box)
		w.send(`A SETMETADATA ` + box + ` (/shared/comment {5}`)
		if l := w.line(); !strings.HasPrefix(l, "+") {
			t.Fatalf("no continuation: %q", l)
		}
		w.send(`world /private/vendor/a/b "deep")`)
		if out := w.until("A"); !strings.HasPrefix(out[len(out)-1], "A OK") {
			t.Fatalf("SETMETADATA with a literal: %q", out)
		}
		expect(`GETMETADATA (DEPTH infinity) `+box+` /private`, `/private/vendor/a/b "deep"`)
		if out := expect(`GETMETADATA (DEPTH 1) ` + box + ` /private/vendor`); strings.Contains(strings.Join(out, ""), "deep") {
			t.Errorf("DEPTH 1 went two levels down: %q", out)
		}
		out := expect(`GETMETADATA (MAXSIZE 3) `+box+` (/shared/comment)`, "OK [METADATA LONGENTRIES 5]")
		if strings.Contains(strings.Join(out, ""), "world") {
			t.Errorf("MAXSIZE 3 returned a 5-octet value: %q", out)
		}
		// Kept beside the Maildir, in the folder's directory.
		if data, err := os.ReadFile(filepath.Join(mb.Root(), "."+box, "tern-metadata")); err != nil || !strings.HasPrefix(string(data), "tern-metadata 1\n") {
			t.Errorf("tern-metadata: %q, %v", data, err)
		}

		// RENAME carries the entries; DELETE takes them away.
		expect("RENAME " + box + " " + box + "-2")
		expect(`GETMETADATA `+box+`-2 /shared/comment`, `(/shared/comment "world")`)
		expect("DELETE " + box + "-2")
		expect("CREATE " + box + "-2")
		expect(`GETMETADATA `+box+`-2 /shared/comment`, `(/shared/comment NIL)`)

		// Limits: value size, before and after the literal is read,
		// entries per mailbox.
		fail(`SETMETADATA `+box+`-2 (/private/big "`+strings.Repeat("x", 101)+`")`, "NO [METADATA MAXSIZE 100]")
		w.send(`F SETMETADATA ` + box + `-2 (/private/big {100000}`)
		if l := w.line(); !strings.HasPrefix(l, "F NO [METADATA MAXSIZE 100]") {
			t.Errorf("huge literal: %q", l)
		}
		expect(`SETMETADATA ` + box + `-2 (/private/a "1" /private/b "2" /private/c "3")`)
		fail(`SETMETADATA `+box+`-2 (/private/d "4")`, "NO [METADATA TOOMANY]")
		expect(`SETMETADATA ` + box + `-2 (/private/c NIL /private/d "4")`)

		// A name that is no atom comes back quoted; a value with a NUL
		// as a literal8.
		expect(`SETMETADATA ` + box + `-2 (/private/a NIL "/private/x(y" "q")`)
		expect(`GETMETADATA `+box+`-2 "/private/x(y"`, `("/private/x(y" "q")`)
		w.send(`A SETMETADATA ` + box + `-2 ("/private/x(y" {3+}`)
		w.send("a\x00b)")
		if out := w.until("A"); !strings.HasPrefix(out[len(out)-1], "A OK") {
			t.Fatalf("value with NUL: %q", out)
		}
		expect(`GETMETADATA `+box+`-2 "/private/x(y"`, "(\"/private/x(y\" ~{3}\r\n")
		expect(`SETMETADATA ` + box + `-2 ("/private/x(y" NIL)`)

		// Bad names and mailboxes.
		for _, bad := range []string{"/foo", "/private/a*", "/private//a", "/private/", "/private", "/shared/x%"} {
			fail(`SETMETADATA `+box+`-2 (`+bad+` "v")`, "BAD")
		}
		fail(`SETMETADATA `+box+`-2 ()`, "BAD")
		fail(`GETMETADATA (DEPTH 2) `+box+`-2 /private/a`, "BAD")
		fail(`GETMETADATA (BOGUS 1) `+box+`-2 /private/a`, "BAD")
		fail(`GETMETADATA Nowhere /private/a`, "NO [NONEXISTENT]")
		fail(`SETMETADATA Nowhere (/private/a "1")`, "NO [NONEXISTENT]")
		fail(`SETMETADATA "../../x" (/private/a "1")`, "NO")
		fail(`SETMETADATA "a/b" (/private/a "1")`, "NO")
		expect("DELETE " + box + "-2")
	})
	// The per-user total spans the server and every mailbox.
	w := transports[0].dial(t, e)
	w.login()
	w.ok("A", `SETMETADATA "" (/shared/t1 "`+strings.Repeat("y", 90)+`")`)
	for i := 0; ; i++ {
		box := "Tot" + string(rune('a'+i))
		w.ok("B", "CREATE "+box)
		w.send(`C SETMETADATA ` + box + ` (/shared/t1 "` + strings.Repeat("y", 90) + `" /shared/t2 "` + strings.Repeat("z", 90) + `")`)
		out := w.until("C")
		if l := out[len(out)-1]; !strings.HasPrefix(l, "C OK") {
			if !strings.HasPrefix(l, "C NO [METADATA TOOMANY]") || i < 5 {
				t.Fatalf("after %d mailboxes: %q", i, l)
			}
			break
		}
		if i > 20 {
			t.Fatal("metadata_max_total never reached")
		}
	}
}
