package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"tern/common/config"
)

// NOTIFY (RFC 5465) on every transport: events of other mailboxes made by
// another process arrive between commands, without IDLE or NOOP.

// await reads unsolicited lines until one matches re; the lines before it
// must not be tagged replies.
func (w *wireConn) await(re string) string {
	w.t.Helper()
	rx := regexp.MustCompile(re)
	w.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	defer w.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		l := w.line()
		if rx.MatchString(l) {
			return l
		}
		if !strings.HasPrefix(l, "* ") {
			w.t.Fatalf("waiting for %q: got %q", re, l)
		}
	}
}

// quiet fails if the server sends anything within d.
func (w *wireConn) quiet(d time.Duration) {
	w.t.Helper()
	w.conn.SetReadDeadline(time.Now().Add(d))
	defer w.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if l, err := w.r.ReadString('\n'); err == nil {
		w.t.Fatalf("unexpected %q", l)
	}
}

// dropByHand puts a message into a folder's new/ the way a program outside
// tern would, from another process: write in tmp/, rename into new/.
func dropByHand(t *testing.T, e *testEnv, folder, name, msg string) {
	t.Helper()
	f, err := e.mailbox(t).Folder(folder)
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(t.TempDir(), "msg")
	if err := os.WriteFile(src, []byte(msg), 0o600); err != nil {
		t.Fatal(err)
	}
	tmp, dst := filepath.Join(f.Dir(), "tmp", name), filepath.Join(f.Dir(), "new", name)
	if out, err := exec.Command("sh", "-c", `cp "$1" "$2" && mv "$2" "$3"`, "sh", src, tmp, dst).CombinedOutput(); err != nil {
		t.Fatalf("drop by hand: %v\n%s", err, out)
	}
}

func TestNotifyEvents(t *testing.T) {
	e := startServer(t, noDelay)
	n := 0
	eachTransport(t, e, func(t *testing.T, w *wireConn) {
		n++
		box := "Lists" + strings.Repeat("x", n)
		w.login()
		if caps := w.ok("C", "CAPABILITY"); !strings.Contains(caps[0], " NOTIFY") {
			t.Fatalf("no NOTIFY in %q", caps[0])
		}
		w.ok("A", "CREATE "+box)
		w.ok("B", "ENABLE CONDSTORE")
		out := w.ok("N", "NOTIFY SET STATUS (selected (MessageNew (UID FLAGS) MessageExpunge FlagChange)) (mailboxes "+box+
			" (MessageNew MessageExpunge FlagChange)) (personal (MailboxName SubscriptionChange))")
		// RFC 5465 3.1: MESSAGES, UIDNEXT, UIDVALIDITY and HIGHESTMODSEQ.
		if !regexp.MustCompile(`^\* STATUS "` + box + `" \(MESSAGES 0 UIDNEXT 1 UIDVALIDITY \d+ HIGHESTMODSEQ \d+\)`).MatchString(out[0]) {
			t.Fatalf("initial STATUS: %q", out)
		}
		w.ok("S", "SELECT INBOX")

		// A message dropped into the other mailbox by another process:
		// STATUS arrives with no command running.
		dropByHand(t, e, box, "1000.hand"+box+".host", testMessage("by hand", "x\r\n"))
		w.await(`^\* STATUS "` + box + `" \(MESSAGES 1 UIDNEXT 2 HIGHESTMODSEQ \d+\)`)

		// Into the selected mailbox: EXISTS, then the FETCH asked for.
		e.deliver(t, "INBOX", testMessage("delivered", "y\r\n"))
		w.await(`^\* \d+ EXISTS`)
		w.await(`^\* \d+ FETCH \(UID \d+ FLAGS \(`)

		// Another IMAP session flags and expunges in the other mailbox.
		o := transports[0].dial(t, e)
		o.login()
		o.ok("a", "SELECT "+box)
		o.ok("b", `STORE 1 +FLAGS.SILENT (\Seen)`)
		w.await(`^\* STATUS "` + box + `" \(UIDVALIDITY \d+ UNSEEN 0 HIGHESTMODSEQ \d+\)`)
		o.ok("c", `STORE 1 +FLAGS.SILENT (\Deleted)`)
		w.await(`^\* STATUS "` + box + `" \(UIDVALIDITY \d+ HIGHESTMODSEQ \d+\)`)
		o.ok("d", "EXPUNGE")
		w.await(`^\* STATUS "` + box + `" \(MESSAGES 0 UIDNEXT 2 HIGHESTMODSEQ \d+\)`)

		// RFC 5465 5.4, 5.5: names and subscriptions, as LIST.
		o.ok("e", "CREATE New"+box)
		w.await(`^\* LIST \(\\HasNoChildren\) "\." "New` + box + `"\r\n`)
		o.ok("f", "SUBSCRIBE New"+box)
		w.await(`^\* LIST \(\\HasNoChildren \\Subscribed\) "\." "New` + box + `"\r\n`)
		o.ok("g", "RENAME New"+box+" Old"+box)
		w.await(`^\* LIST \(\\HasNoChildren\) "\." "Old` + box + `" \("OLDNAME" \("New` + box + `"\)\)`)
		o.ok("h", "DELETE Old"+box)
		w.await(`^\* LIST \(\\NonExistent\) "\." "Old` + box + `"\r\n`)

		// The session's own changes are not told back (RFC 5465 5).
		w.ok("O", "CREATE Own"+box)
		w.quiet(300 * time.Millisecond)

		// NOTIFY NONE: nothing more.
		w.ok("X", "NOTIFY NONE")
		dropByHand(t, e, box, "1001.hand"+box+".host", testMessage("after none", "z\r\n"))
		w.quiet(500 * time.Millisecond)
		w.ok("Z", "LOGOUT")
	})
}

func TestNotifyInIdle(t *testing.T) {
	e := startServer(t, noDelay)
	w := transports[0].dial(t, e)
	w.login()
	w.ok("A", "CREATE Other")
	w.ok("N", "NOTIFY SET (mailboxes Other (MessageNew MessageExpunge))")
	w.ok("S", "SELECT INBOX")
	w.send("I IDLE")
	w.await(`^\+ `)
	dropByHand(t, e, "Other", "1.idle.host", testMessage("idle", "i\r\n"))
	w.await(`^\* STATUS "?Other"? \(MESSAGES 1 UIDNEXT 2\)`)
	w.send("DONE")
	w.until("I")
}

func TestNotifyErrors(t *testing.T) {
	e := startServer(t, noDelay, func(c *config.Config) { c.IMAPD.NotifyMaxMailboxes = 3 })
	eachTransport(t, e, func(t *testing.T, w *wireConn) {
		w.send("P NOTIFY NONE")
		if l := w.line(); !strings.HasPrefix(l, "P BAD") {
			t.Fatalf("NOTIFY before login: %q", l)
		}
		w.login()
		for _, c := range []struct{ cmd, want string }{
			{"NOTIFY", "BAD"},
			{"NOTIFY MAYBE", "BAD"},
			{"NOTIFY NONE extra", "BAD"},
			{"NOTIFY SET", "BAD"},
			{"NOTIFY SET STATUS", "BAD"},
			{"NOTIFY SET (personal)", "BAD"},
			{"NOTIFY SET (nowhere (MessageNew))", "BAD"},
			{"NOTIFY SET (mailboxes (MessageNew))", "BAD"},
			{"NOTIFY SET (selected (MailboxName))", "BAD"},
			{"NOTIFY SET (selected (MessageNew) (selected-delayed (MessageNew)))", "BAD"},
			{"NOTIFY SET (selected (MessageNew)) (selected-delayed (MessageNew))", "BAD"},
			{"NOTIFY SET (personal (MessageNew (UID) MessageExpunge))", "BAD"},
			{"NOTIFY SET (selected (MessageExpunge (UID)))", "BAD"},
			{"NOTIFY SET (selected (MessageNew (NOSUCHITEM)))", "BAD"},
			// RFC 5465 3.1: unsupported events are NO [BADEVENT (...)].
			{"NOTIFY SET (personal (AnnotationChange))", "NO [BADEVENT (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange" +
				" MailboxMetadataChange ServerMetadataChange)]"},
			{"NOTIFY SET (selected (MailboxMetadataChange))", "BAD"},
			{"NOTIFY SET (personal (ServerMetadataChange SomethingNew))", "NO [BADEVENT "},
			{"NOTIFY SET (selected (MessageNew (UID BODY.PEEK[HEADER.FIELDS (Subject)]) MessageExpunge))", "OK"},
			{"NOTIFY SET (selected-delayed NONE) (inboxes NONE)", "OK"},
			{"NOTIFY SET (subtree (INBOX Nonexistent) (MessageNew MessageExpunge))", "OK"},
		} {
			w.send("T " + c.cmd)
			out := w.until("T")
			if !strings.HasPrefix(out[len(out)-1], "T "+c.want) {
				t.Errorf("%s: %q, want %s", c.cmd, out, c.want)
			}
		}
	})

	// imapd.notify_max_mailboxes: more mailboxes are refused, and
	// mailboxes created later end NOTIFY with NOTIFICATIONOVERFLOW.
	w := transports[0].dial(t, e)
	w.login()
	w.ok("A", "CREATE Work.One")
	w.ok("B", "CREATE Work.Two")
	w.ok("C", "CREATE Work.Three")
	w.send("N NOTIFY SET (subtree Work (MessageNew MessageExpunge))")
	if out := w.until("N"); !strings.HasPrefix(out[len(out)-1], "N NO [NOTIFICATIONOVERFLOW]") {
		t.Fatalf("NOTIFY over the limit: %q", out)
	}
	w.ok("D", "DELETE Work.Three")
	w.ok("M", "NOTIFY SET (subtree Work (MessageNew MessageExpunge))")
	o := transports[0].dial(t, e)
	o.login()
	o.ok("a", "CREATE Work.Four")
	w.await(`^\* OK \[NOTIFICATIONOVERFLOW\]`)
	dropByHand(t, e, "Work.One", "1.after.host", testMessage("after overflow", "o\r\n"))
	w.quiet(500 * time.Millisecond)
}

// drain returns what the server sends within d.
func (w *wireConn) drain(d time.Duration) []string {
	w.t.Helper()
	w.conn.SetReadDeadline(time.Now().Add(d))
	defer w.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var out []string
	for {
		l, err := w.r.ReadString('\n')
		if err != nil {
			return out
		}
		out = append(out, l)
	}
}

// SELECTED pushes the selected mailbox's expunges at once; SELECTED-DELAYED
// keeps them for the next command (RFC 5465 6.1).
func TestNotifySelectedDelayed(t *testing.T) {
	e := startServer(t, noDelay)
	for _, s := range []string{"one", "two", "three"} {
		e.deliver(t, "INBOX", testMessage(s, s+"\r\n"))
	}
	w := transports[0].dial(t, e)
	w.login()
	w.ok("S", "SELECT INBOX")
	w.ok("N", "NOTIFY SET (selected-delayed (MessageNew MessageExpunge))")
	o := transports[0].dial(t, e)
	o.login()
	o.ok("a", "SELECT INBOX")
	o.ok("b", `STORE 1 +FLAGS.SILENT (\Deleted)`)
	o.ok("c", "EXPUNGE")
	for _, l := range w.drain(500 * time.Millisecond) {
		if strings.Contains(l, "EXPUNGE") {
			t.Fatalf("EXPUNGE before a command with SELECTED-DELAYED: %q", l)
		}
	}
	if out := w.ok("P", "NOOP"); !slices.Contains(out, "* 1 EXPUNGE\r\n") {
		t.Fatalf("NOOP after the expunge: %q", out)
	}
	w.ok("M", "NOTIFY SET (selected (MessageNew MessageExpunge))")
	o.ok("d", `STORE 1 +FLAGS.SILENT (\Deleted)`)
	o.ok("e", "EXPUNGE")
	w.await(`^\* 1 EXPUNGE`)
}
