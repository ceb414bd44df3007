package main

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"tern/common/maildir"
)

// RFC 7162 on the wire, on every transport.

var modseqRE = regexp.MustCompile(`MODSEQ \(?(\d+)`)

// modseqIn returns the MODSEQ or HIGHESTMODSEQ value of a response line.
func modseqIn(t testing.TB, line string) uint64 {
	t.Helper()
	m := modseqRE.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("no modseq in %q", line)
	}
	n, _ := strconv.ParseUint(m[1], 10, 64)
	return n
}

// untagged returns the lines of out (a command's responses) that start
// with prefix.
func untagged(out []string, prefix string) []string {
	var r []string
	for _, l := range out {
		if strings.HasPrefix(l, prefix) {
			r = append(r, strings.TrimRight(l, "\r\n"))
		}
	}
	return r
}

// bad sends a command and fails unless it is answered BAD.
func (w *wireConn) bad(tag, cmd string) {
	w.t.Helper()
	w.send(tag + " " + cmd)
	out := w.until(tag)
	if !strings.HasPrefix(out[len(out)-1], tag+" BAD") {
		w.t.Fatalf("%s: want BAD, got %q", cmd, out)
	}
}

// eachFreshTransport runs f on each transport against a server of its own.
func eachFreshTransport(t *testing.T, f func(t *testing.T, e *testEnv, w *wireConn)) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			e := startServer(t, noDelay)
			f(t, e, tr.dial(t, e))
		})
	}
}

// countFetch counts the untagged FETCH responses of out.
func countFetch(out []string) int {
	n := 0
	for _, l := range out {
		if strings.HasPrefix(l, "* ") && strings.Contains(l, " FETCH (") {
			n++
		}
	}
	return n
}

func TestCondStoreWire(t *testing.T) {
	eachFreshTransport(t, func(t *testing.T, e *testEnv, w *wireConn) {
		for i := 0; i < 3; i++ {
			e.deliver(t, "INBOX", testMessage(fmt.Sprintf("m%d", i), "x\r\n"))
		}
		w.login()
		caps := w.ok("C", "CAPABILITY")
		if !strings.Contains(caps[0], " CONDSTORE") || !strings.Contains(caps[0], " QRESYNC") {
			t.Fatalf("capabilities: %q", caps[0])
		}
		out := w.ok("S", "SELECT INBOX")
		hm := untagged(out, "* OK [HIGHESTMODSEQ ")
		if len(hm) != 1 || len(untagged(out, "* OK [NOMODSEQ")) != 0 {
			t.Fatalf("SELECT: %q", out)
		}
		h0 := modseqIn(t, hm[0])

		// Errors first: nothing is enabled by a refused command.
		w.bad("B1", "FETCH 1 (FLAGS) (CHANGEDSINCE 0)")
		w.bad("B2", fmt.Sprintf("UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)", h0))
		w.bad("B3", "FETCH 1 (FLAGS) (CHANGEDSINCE)")
		w.bad("B4", "STORE 1 (UNCHANGEDSINCE x) +FLAGS (\\Seen)")
		w.bad("B5", "SEARCH MODSEQ \"/flags/\\\\seen\" wrong 5")
		w.bad("B6", "SELECT INBOX (QRESYNC (1 1))") // RFC 7162 3.2.5: not enabled
		w.ok("S", "SELECT INBOX")

		// Without CONDSTORE enabled, STORE answers carry no MODSEQ.
		out = w.ok("N", "STORE 3 +FLAGS (\\Draft)")
		if f := untagged(out, "* 3 FETCH"); len(f) != 1 || strings.Contains(f[0], "MODSEQ") {
			t.Fatalf("STORE before CONDSTORE: %q", out)
		}
		// CHANGEDSINCE enables CONDSTORE implicitly and implies MODSEQ.
		out = w.ok("F1", fmt.Sprintf("FETCH 1:* (FLAGS) (CHANGEDSINCE %d)", h0))
		// RFC 7162 3.1: the first CONDSTORE-enabling command in the
		// selected state is preceded by HIGHESTMODSEQ.
		if f := untagged(out, "* "); len(f) != 2 || !strings.HasPrefix(f[0], "* OK [HIGHESTMODSEQ ") ||
			!strings.HasPrefix(f[1], "* 3 FETCH") || !strings.Contains(f[1], "MODSEQ (") {
			t.Fatalf("CHANGEDSINCE: %q", out)
		}
		out = w.ok("S1", "STORE 1 +FLAGS (\\Seen)")
		f := untagged(out, "* 1 FETCH")
		if len(f) != 1 {
			t.Fatalf("STORE: %q", out)
		}
		m1 := modseqIn(t, f[0])
		if m1 <= h0 {
			t.Fatalf("modseq %d after STORE, HIGHESTMODSEQ was %d", m1, h0)
		}
		// Message 1 changed after h0: UNCHANGEDSINCE h0 fails for it.
		out = w.ok("S2", fmt.Sprintf("STORE 1,2 (UNCHANGEDSINCE %d) +FLAGS (\\Flagged)", h0))
		if tag := out[len(out)-1]; !strings.HasPrefix(tag, "S2 OK [MODIFIED 1]") {
			t.Fatalf("conditional STORE: %q", out)
		}
		if len(untagged(out, "* 1 FETCH")) != 0 || len(untagged(out, "* 2 FETCH")) != 1 {
			t.Fatalf("conditional STORE answers: %q", out)
		}
		out = w.ok("S3", "UID STORE 1:3 (UNCHANGEDSINCE 0) +FLAGS.SILENT (\\Answered)")
		if tag := out[len(out)-1]; !strings.HasPrefix(tag, "S3 OK [MODIFIED 1:3]") {
			t.Fatalf("UNCHANGEDSINCE 0: %q", out)
		}
		// .SILENT still answers MODSEQ when CONDSTORE is on.
		out = w.ok("S4", fmt.Sprintf("STORE 2 (UNCHANGEDSINCE %d) -FLAGS.SILENT (\\Flagged)", m1+100))
		if f := untagged(out, "* 2 FETCH"); len(f) != 1 || strings.Contains(f[0], "FLAGS") || !strings.Contains(f[0], "MODSEQ") {
			t.Fatalf("STORE .SILENT: %q", out)
		}
		out = w.ok("F2", fmt.Sprintf("UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d)", m1-1))
		if len(untagged(out, "* ")) != 2 {
			t.Fatalf("CHANGEDSINCE after STORE: %q", out)
		}
		out = w.ok("F3", "FETCH 1 (MODSEQ)")
		if f := untagged(out, "* 1 FETCH"); len(f) != 1 || modseqIn(t, f[0]) != m1 {
			t.Fatalf("FETCH MODSEQ: %q", out)
		}
		out = w.ok("SE1", fmt.Sprintf("SEARCH MODSEQ %d", m1))
		if s := untagged(out, "* SEARCH"); len(s) != 1 || !strings.HasPrefix(s[0], "* SEARCH 1 2 (MODSEQ ") {
			t.Fatalf("SEARCH MODSEQ: %q", out)
		}
		out = w.ok("SE2", fmt.Sprintf(`UID SEARCH RETURN (ALL) MODSEQ "/flags/\\seen" all %d`, m1))
		if s := untagged(out, "* ESEARCH"); len(s) != 1 || !regexp.MustCompile(`UID ALL 1:2 MODSEQ \d+$`).MatchString(s[0]) {
			t.Fatalf("ESEARCH MODSEQ: %q", out)
		}
		// With MIN alone, the MODSEQ is the minimum message's (RFC 7162 3.1.5).
		out = w.ok("SE4", fmt.Sprintf(`SEARCH RETURN (MIN) MODSEQ %d`, m1))
		if s := untagged(out, "* ESEARCH"); len(s) != 1 || !strings.HasSuffix(s[0], fmt.Sprintf(" MIN 1 MODSEQ %d", m1)) {
			t.Fatalf("ESEARCH MIN MODSEQ: %q", out)
		}
		out = w.ok("SE3", "SEARCH MODSEQ 99999999")
		if s := untagged(out, "* SEARCH"); len(s) != 1 || s[0] != "* SEARCH" {
			t.Fatalf("SEARCH MODSEQ nothing: %q", out)
		}
		out = w.ok("ST", "STATUS INBOX (MESSAGES HIGHESTMODSEQ)")
		if s := untagged(out, "* STATUS"); len(s) != 1 || !strings.Contains(s[0], "HIGHESTMODSEQ ") || modseqIn(t, s[0]) < m1 {
			t.Fatalf("STATUS: %q", out)
		}
		w.ok("L", "LOGOUT")
	})
}

func TestQResyncWire(t *testing.T) {
	eachFreshTransport(t, func(t *testing.T, e *testEnv, w *wireConn) {
		for i := 0; i < 6; i++ {
			e.deliver(t, "INBOX", testMessage(fmt.Sprintf("m%d", i), "x\r\n"))
		}
		f, err := e.mailbox(t).Folder("INBOX")
		if err != nil {
			t.Fatal(err)
		}
		uid := 6
		w.login()
		out := w.ok("E", "ENABLE QRESYNC")
		if untagged(out, "* ENABLED")[0] != "* ENABLED QRESYNC" {
			t.Fatalf("ENABLE: %q", out)
		}
		out = w.ok("S", "SELECT INBOX")
		h0 := modseqIn(t, untagged(out, "* OK [HIGHESTMODSEQ")[0])
		v := untagged(out, "* OK [UIDVALIDITY ")[0]
		validity, _ := strconv.Atoi(strings.Fields(v)[3][:len(strings.Fields(v)[3])-1])
		w.ok("U", "UNSELECT")

		// Another client changes the mailbox: a flag, an expunge, new mail
		// (\Recent to this IMAP4rev1 session, RFC 3501 2.3.2).
		snap, err := f.Sync()
		if err != nil {
			t.Fatal(err)
		}
		changedUID, goneUID := snap.Messages[0].UID, snap.Messages[1].UID
		if _, _, err := f.SetFlags([]uint32{changedUID}, maildir.FlagsAdd, []string{"\\Flagged"}, 0); err != nil {
			t.Fatal(err)
		}
		if err := f.Expunge([]uint32{goneUID}); err != nil {
			t.Fatal(err)
		}
		e.deliver(t, "INBOX", testMessage("new", "x\r\n"))
		uid++

		out = w.ok("Q1", fmt.Sprintf("SELECT INBOX (QRESYNC (%d %d))", validity, h0))
		wantV := fmt.Sprintf("* VANISHED (EARLIER) %d", goneUID)
		if got := untagged(out, "* VANISHED"); len(got) != 1 || got[0] != wantV {
			t.Fatalf("QRESYNC VANISHED: %q, want %q", out, wantV)
		}
		fetches := untagged(out, "* ")
		var fl []string
		for _, l := range fetches {
			if strings.Contains(l, " FETCH ") {
				fl = append(fl, l)
			}
		}
		if len(fl) != 2 || !strings.Contains(fl[0], fmt.Sprintf("(UID %d FLAGS (\\Flagged) MODSEQ (", changedUID)) ||
			!strings.Contains(fl[1], fmt.Sprintf("(UID %d FLAGS (\\Recent) MODSEQ (", uid)) {
			t.Fatalf("QRESYNC FETCH: %q", fl)
		}
		// Known UIDs limit both.
		out = w.ok("Q2", fmt.Sprintf("SELECT INBOX (QRESYNC (%d %d %d))", validity, h0, changedUID))
		if len(untagged(out, "* VANISHED")) != 0 || len(untagged(out, "* 1 FETCH")) != 1 || countFetch(out) != 1 {
			t.Fatalf("QRESYNC with known UIDs: %q", out)
		}
		// With seq-match data too.
		out = w.ok("Q3", fmt.Sprintf("EXAMINE INBOX (QRESYNC (%d %d 1:%d (1:2 %d:%d)))", validity, h0, uid, changedUID, goneUID))
		if got := untagged(out, "* VANISHED"); len(got) != 1 || got[0] != wantV {
			t.Fatalf("QRESYNC with seq-match: %q", out)
		}
		// Another UIDVALIDITY: the client's cache is void, nothing told.
		out = w.ok("Q4", fmt.Sprintf("SELECT INBOX (QRESYNC (%d %d))", validity+1, h0))
		if len(untagged(out, "* VANISHED")) != 0 || countFetch(out) != 0 {
			t.Fatalf("QRESYNC with another UIDVALIDITY: %q", out)
		}
		out = w.ok("F", fmt.Sprintf("UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)", h0))
		if got := untagged(out, "* VANISHED"); len(got) != 1 || got[0] != wantV || countFetch(out) != 2 {
			t.Fatalf("UID FETCH VANISHED: %q", out)
		}
		w.bad("B1", fmt.Sprintf("FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)", h0))
		w.bad("B2", "UID FETCH 1:* (FLAGS) (VANISHED)")

		// EXPUNGE is answered with VANISHED (RFC 7162 3.2.10).
		w.ok("D", "STORE 1 +FLAGS.SILENT (\\Deleted)")
		out = w.ok("X", "EXPUNGE")
		if got := untagged(out, "* VANISHED"); len(got) != 1 || got[0] != fmt.Sprintf("* VANISHED %d", changedUID) ||
			strings.Contains(strings.Join(out, ""), "EXPUNGE\r") {
			t.Fatalf("EXPUNGE after QRESYNC: %q", out)
		}
		// Changes by others: flags with MODSEQ, expunges as VANISHED.
		snap, err = f.Sync()
		if err != nil {
			t.Fatal(err)
		}
		a, b := snap.Messages[0].UID, snap.Messages[1].UID
		if _, _, err := f.SetFlags([]uint32{a}, maildir.FlagsAdd, []string{"$Work"}, 0); err != nil {
			t.Fatal(err)
		}
		if err := f.Expunge([]uint32{b}); err != nil {
			t.Fatal(err)
		}
		out = w.ok("N", "NOOP")
		if got := untagged(out, "* VANISHED"); len(got) != 1 || got[0] != fmt.Sprintf("* VANISHED %d", b) {
			t.Fatalf("unsolicited VANISHED: %q", out)
		}
		if !regexp.MustCompile(fmt.Sprintf(`\* 1 FETCH \(UID %d FLAGS \(\$Work\) MODSEQ \(\d+\)\)`, a)).MatchString(strings.Join(out, "")) {
			t.Fatalf("unsolicited FETCH: %q", out)
		}
		w.ok("L", "LOGOUT")
	})
}

// Past the bounded expunge history (RFC 7162 3.2.5.2) a client is told
// conservatively that every UID it may know and the mailbox lacks is gone,
// and a client asking from after the floor is told exactly.
func TestQResyncBeyondHistory(t *testing.T) {
	defer maildir.SetExpungeHistory(50000)
	maildir.SetExpungeHistory(1)
	e := startServer(t, noDelay)
	for i := 0; i < 6; i++ {
		e.deliver(t, "INBOX", testMessage(fmt.Sprintf("m%d", i), "x\r\n"))
	}
	f, err := e.mailbox(t).Folder("INBOX")
	if err != nil {
		t.Fatal(err)
	}
	// Expunged before the client's first visit: an exact answer leaves
	// it out, a conservative one cannot.
	if err := f.Expunge([]uint32{1}); err != nil {
		t.Fatal(err)
	}
	w := transports[0].dial(t, e)
	w.login()
	w.ok("E", "ENABLE QRESYNC")
	out := w.ok("S", "SELECT INBOX")
	h0 := modseqIn(t, untagged(out, "* OK [HIGHESTMODSEQ")[0])
	v := strings.Fields(untagged(out, "* OK [UIDVALIDITY ")[0])[3]
	validity := strings.TrimSuffix(v, "]")
	w.ok("U", "UNSELECT")
	if err := f.Expunge([]uint32{2}); err != nil {
		t.Fatal(err)
	}
	snap, err := f.Sync()
	if err != nil {
		t.Fatal(err)
	}
	h1 := snap.HighestModSeq
	if err := f.Expunge([]uint32{4}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args, want string
	}{
		{fmt.Sprintf("%s %d", validity, h0), "* VANISHED (EARLIER) 1:2,4"},   // below the floor
		{fmt.Sprintf("%s %d 1:3", validity, h0), "* VANISHED (EARLIER) 1:2"}, // known UIDs
		{fmt.Sprintf("%s %d", validity, h1), "* VANISHED (EARLIER) 4"},       // within the history
		// seq-match: UID 3 is still message 1, so nothing below it went.
		{fmt.Sprintf("%s %d 1:6 (1 3)", validity, h0), "* VANISHED (EARLIER) 4"},
		// A pair that no longer matches narrows nothing.
		{fmt.Sprintf("%s %d 1:6 (2 3)", validity, h0), "* VANISHED (EARLIER) 1:2,4"},
		// Huge ranges cost no more than the mailbox's size.
		{fmt.Sprintf("%s %d 1:6 (1:4294967295 1:4294967295)", validity, h0), "* VANISHED (EARLIER) 1:2,4"},
		{fmt.Sprintf("%s %d 1:6 (1:4294967290 3:4294967292)", validity, h0), "* VANISHED (EARLIER) 4"},
	} {
		out := w.ok("Q", "SELECT INBOX (QRESYNC ("+c.args+"))")
		if got := untagged(out, "* VANISHED"); len(got) != 1 || got[0] != c.want {
			t.Errorf("QRESYNC (%s): %q, want %q", c.args, got, c.want)
		}
	}
	out = w.ok("F", fmt.Sprintf("UID FETCH 3:* (FLAGS) (CHANGEDSINCE %d VANISHED)", h0))
	if got := untagged(out, "* VANISHED"); len(got) != 1 || got[0] != "* VANISHED (EARLIER) 4" {
		t.Errorf("UID FETCH VANISHED below the floor: %q", out)
	}
}

// SELECT (CONDSTORE), EXAMINE (CONDSTORE) and ENABLE CONDSTORE turn
// MODSEQ on in FETCH answers to STORE and in flag updates (RFC 7162
// 3.1.8, 3.1.3, 3.1.4.1).
func TestSelectCondStore(t *testing.T) {
	e := startServer(t, noDelay)
	e.deliver(t, "INBOX", testMessage("m", "x\r\n"))
	for _, how := range []string{"SELECT INBOX (CONDSTORE)", "ENABLE CONDSTORE", "EXAMINE INBOX (CONDSTORE)"} {
		w := transports[0].dial(t, e)
		w.login()
		out := w.ok("A", how)
		if how == "ENABLE CONDSTORE" {
			if untagged(out, "* ENABLED")[0] != "* ENABLED CONDSTORE" {
				t.Fatalf("ENABLE: %q", out)
			}
			out = w.ok("S", "SELECT INBOX")
		}
		if len(untagged(out, "* OK [HIGHESTMODSEQ ")) != 1 {
			t.Fatalf("%s: %q", how, out)
		}
		cmd := "STORE 1 FLAGS (\\Seen)"
		if strings.HasPrefix(how, "EXAMINE") {
			// Read-only: a change by another session comes as an
			// unsolicited FETCH, with MODSEQ (RFC 7162 3.1.4.1).
			f, err := e.mailbox(t).Folder("INBOX")
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := f.SetFlags([]uint32{1}, maildir.FlagsSet, []string{"$Other"}, 0); err != nil {
				t.Fatal(err)
			}
			cmd = "NOOP"
		}
		out = w.ok("B", cmd)
		if f := untagged(out, "* 1 FETCH"); len(f) != 1 || !strings.Contains(f[0], "MODSEQ (") {
			t.Fatalf("%s then %s: %q", how, cmd, out)
		}
		w.ok("L", "LOGOUT")
	}
}
