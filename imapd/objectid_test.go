package main

import (
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"tern/common/config"
	"tern/common/maildir"
)

var (
	reMailboxID = regexp.MustCompile(`MAILBOXID \((F[0-9a-f]{24})\)`)
	reEmailID   = regexp.MustCompile(`EMAILID \((M[0-9a-f]{24})\)`)
	reSaveDate  = regexp.MustCompile(`SAVEDATE "([^"]+)"`)
	reThreadID  = regexp.MustCompile(`THREADID \((T[0-9a-f]{24})\)`)
)

// find returns the first submatch of re in lines, failing when none.
func find(t *testing.T, re *regexp.Regexp, lines []string) string {
	t.Helper()
	for _, l := range lines {
		if m := re.FindStringSubmatch(l); m != nil {
			return m[1]
		}
	}
	t.Fatalf("no %s in %q", re, lines)
	return ""
}

// RFC 8474 4: MAILBOXID in CREATE's OK, SELECT's and EXAMINE's untagged
// OK, STATUS and LIST-STATUS; kept across RENAME, new after DELETE and
// CREATE.
func TestMailboxIDWire(t *testing.T) {
	e := startServer(t, noDelay)
	eachTransport(t, e, func(t *testing.T, w *wireConn) {
		w.login()
		name := "Obj-" + t.Name()[strings.LastIndex(t.Name(), "/")+1:]
		if caps := w.ok("C", "CAPABILITY"); !strings.Contains(caps[0], " OBJECTID") || !strings.Contains(caps[0], " SAVEDATE") {
			t.Fatalf("capabilities: %q", caps[0])
		}
		id := find(t, reMailboxID, w.ok("A", "CREATE "+name))
		if got := find(t, reMailboxID, w.ok("B", "STATUS "+name+" (MESSAGES MAILBOXID)")); got != id {
			t.Fatalf("STATUS MAILBOXID %s, CREATE said %s", got, id)
		}
		if got := find(t, reMailboxID, w.ok("C", "EXAMINE "+name)); got != id {
			t.Fatalf("EXAMINE MAILBOXID %s, want %s", got, id)
		}
		w.ok("D", "UNSELECT")
		w.ok("E", "RENAME "+name+" "+name+"-2")
		out := w.ok("F", `LIST "" `+name+`-2 RETURN (STATUS (MAILBOXID UIDNEXT))`)
		if got := find(t, reMailboxID, out); got != id {
			t.Fatalf("after RENAME MAILBOXID %s, want %s (%q)", got, id, out)
		}
		w.ok("G", "DELETE "+name+"-2")
		again := find(t, reMailboxID, w.ok("H", "CREATE "+name+"-2"))
		if again == id {
			t.Fatalf("a mailbox created again kept MAILBOXID %s", id)
		}
		inbox := find(t, reMailboxID, w.ok("I", "SELECT INBOX"))
		if inbox == id || inbox == again {
			t.Fatalf("INBOX shares MAILBOXID %s", inbox)
		}
		// Errors: an unknown STATUS item and a missing mailbox.
		w.answers("J", "STATUS INBOX (MAILBOXID BOGUS)", "BAD")
		w.answers("K", "STATUS Nowhere (MAILBOXID)", "NO [NONEXISTENT]")
	})
}

// RFC 8474 5.1 and 7, RFC 8514 4: EMAILID, THREADID and SAVEDATE in FETCH
// and SEARCH; the EMAILID stays with a moved message and with a copy.
func TestEmailIDSaveDateWire(t *testing.T) {
	e := startServer(t, noDelay)
	eachTransport(t, e, func(t *testing.T, w *wireConn) {
		tr := t.Name()[strings.LastIndex(t.Name(), "/")+1:]
		box, dst := "Src-"+tr, "Dst-"+tr
		w.login()
		w.ok("A", "CREATE "+box)
		w.ok("B", "CREATE "+dst)
		e.deliver(t, box, testMessage("objid "+tr, "body\r\n"))
		w.ok("C", "SELECT "+box)
		out := w.ok("D", "FETCH 1 (EMAILID THREADID SAVEDATE INTERNALDATE)")
		id := find(t, reEmailID, out)
		thread := find(t, reThreadID, out)
		// A reply naming the first message in References, one naming it
		// in In-Reply-To only, and an unrelated message without ids.
		e.deliver(t, box, "Subject: Re: x\r\nMessage-ID: <r1-"+tr+"@example.test>\r\nReferences: <objid-"+tr+"@example.test>\r\n\r\nr1\r\n")
		e.deliver(t, box, "Subject: Re: x\r\nMessage-ID: <r2-"+tr+"@example.test>\r\nIn-Reply-To: <objid-"+tr+"@example.test>\r\n\r\nr2\r\n")
		e.deliver(t, box, "Subject: other\r\n\r\nno ids\r\n")
		w.ok("D2", "NOOP")
		th := w.ok("D3", "FETCH 1:4 (THREADID)")
		if find(t, reThreadID, th[1:2]) != thread || find(t, reThreadID, th[2:3]) != thread || find(t, reThreadID, th[3:4]) == thread {
			t.Errorf("THREADIDs: %q, want the first three %s", th, thread)
		}
		if got := w.ok("D4", "SEARCH THREADID "+thread); !strings.HasPrefix(got[0], "* SEARCH 1 2 3\r") {
			t.Errorf("SEARCH THREADID: %q", got)
		}
		w.ok("D5", "STORE 2:4 +FLAGS.SILENT (\\Deleted)")
		w.ok("D6", "EXPUNGE")
		saved, err := time.Parse("02-Jan-2006 15:04:05 -0700", find(t, reSaveDate, out))
		if err != nil || time.Since(saved) > time.Minute || time.Until(saved) > time.Minute {
			t.Errorf("SAVEDATE %v (%v), want now", saved, err)
		}
		today := time.Now().Format("2-Jan-2006")
		for _, c := range []struct{ search, want string }{
			{"EMAILID " + id, "* SEARCH 1"},
			{"EMAILID M000000000000000000000000", "* SEARCH\r\n"},
			{"THREADID T1", "* SEARCH\r\n"},
			{"THREADID " + thread, "* SEARCH 1"},
			{"SAVEDON " + today, "* SEARCH 1"},
			{"SAVEDSINCE " + today, "* SEARCH 1"},
			{"SAVEDBEFORE " + today, "* SEARCH\r\n"},
			{"SAVEDBEFORE 1-Jan-2000", "* SEARCH\r\n"},
			{"SAVEDATESUPPORTED", "* SEARCH 1"},
			{"NOT EMAILID " + id, "* SEARCH\r\n"},
			{`HEADER ":EMAILID" ` + id, "* SEARCH\r\n"},
		} {
			out := w.ok("E", "SEARCH "+c.search)
			if !strings.HasPrefix(out[0], c.want) {
				t.Errorf("SEARCH %s: %q, want %q", c.search, out[0], c.want)
			}
		}
		for _, bad := range []string{"SEARCH EMAILID", "SEARCH EMAILID (x)", "SEARCH SAVEDON yesterday", "FETCH 1 (EMAILID THREADIDS)"} {
			w.answers("X", bad, "BAD")
		}
		w.ok("F", "COPY 1 "+dst)
		w.ok("G", "MOVE 1 "+dst)
		w.ok("H", "SELECT "+dst)
		out = w.ok("I", "FETCH 1:* (UID EMAILID)")
		if len(out) != 3 || !strings.Contains(out[0], id) || !strings.Contains(out[1], id) {
			t.Fatalf("EMAILIDs after COPY and MOVE: %q, want %s in both", out, id)
		}
	})
}

// A file another program drops into new/ gets an EMAILID and a save date
// of when imapd first saw it, whatever its mtime (the internal date).
func TestDroppedFileObjectID(t *testing.T) {
	e := startServer(t, noDelay)
	mb := e.mailbox(t)
	eachTransport(t, e, func(t *testing.T, w *wireConn) {
		w.login()
		w.ok("A", "SELECT INBOX")
		p := filepath.Join(mb.Root(), "new", "1200000000.M1P1Q1."+strings.ReplaceAll(t.Name(), "/", "_"))
		if err := os.WriteFile(p, []byte("Subject: by hand\n\nhello\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		old := time.Date(2008, 1, 10, 21, 20, 0, 0, time.UTC)
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
		w.ok("B", "NOOP")
		out := w.ok("C", "FETCH * (EMAILID SAVEDATE INTERNALDATE)")
		find(t, reEmailID, out)
		saved, err := time.Parse("02-Jan-2006 15:04:05 -0700", find(t, reSaveDate, out))
		if err != nil || time.Since(saved) > time.Minute {
			t.Errorf("SAVEDATE %v (%v), want now", saved, err)
		}
		if !strings.Contains(out[0], `INTERNALDATE "10-Jan-2008`) {
			t.Errorf("internal date is not the file's mtime: %q", out[0])
		}
	})
}

// EMAILID, MAILBOXID, SAVEDATE and METADATA outlive the imapd process:
// a message copied and one moved keep their EMAILIDs, and everything reads
// the same from a new process over the same tree.
func TestObjectIDAcrossRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the imapd binary")
	}
	dir, bin := buildImapd(t)
	tmpl := filepath.Join(dir, "vmail", "%d", "%n", "Maildir")
	root, err := config.Expand(tmpl, "demo@example.test")
	if err != nil {
		t.Fatal(err)
	}
	mbox, err := maildir.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"one", "two"} {
		if _, _, err := mbox.Deliver("INBOX", strings.NewReader(testMessage(s, s+"\r\n")), nil); err != nil {
			t.Fatal(err)
		}
	}
	session := func(addr string) *wireConn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		w := newWireConn(t, c)
		w.line()
		w.login()
		return w
	}
	state := func(w *wireConn) (ids, saved, mboxID, meta string) {
		w.ok("S", "SELECT Archive")
		out := w.ok("F", "FETCH 1:* (EMAILID SAVEDATE)")
		for _, l := range out[:len(out)-1] {
			ids += find(t, reEmailID, []string{l}) + " "
			saved += find(t, reSaveDate, []string{l}) + " "
		}
		mboxID = find(t, reMailboxID, w.ok("T", "STATUS Archive (MAILBOXID)"))
		meta = strings.Join(w.ok("M", "GETMETADATA Archive /private/note"), "")
		return
	}

	addr, stop := startProcess(t, bin, dir, tmpl, "first")
	w := session(addr)
	w.ok("A", "SELECT INBOX")
	orig := w.ok("B", "FETCH 1:2 (EMAILID)")
	w.ok("C", "COPY 1 Archive")
	w.ok("D", "MOVE 2 Archive")
	w.ok("E", `SETMETADATA Archive (/private/note "kept")`)
	ids1, saved1, mbox1, meta1 := state(w)
	if want := find(t, reEmailID, orig[:1]) + " " + find(t, reEmailID, orig[1:2]) + " "; ids1 != want {
		t.Fatalf("EMAILIDs after COPY and MOVE %q, want %q", ids1, want)
	}
	if !strings.Contains(meta1, `(/private/note "kept")`) {
		t.Fatalf("GETMETADATA: %q", meta1)
	}
	stop()

	addr, _ = startProcess(t, bin, dir, tmpl, "second")
	ids2, saved2, mbox2, meta2 := state(session(addr))
	if ids2 != ids1 || saved2 != saved1 || mbox2 != mbox1 || meta2 != meta1 {
		t.Fatalf("after a restart:\nEMAILID %q / %q\nSAVEDATE %q / %q\nMAILBOXID %q / %q\nMETADATA %q / %q",
			ids2, ids1, saved2, saved1, mbox2, mbox1, meta2, meta1)
	}
}
