package maildir

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// emailIDs maps each message's first body line to its EMAILID.
func emailIDs(t *testing.T, f *Folder) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, m := range mustSync(t, f).Messages {
		body := readMsg(t, f, m.UID)
		if !ValidObjectID(m.EmailID()) {
			t.Fatalf("EMAILID %q is not an objectid", m.EmailID())
		}
		out[strings.TrimSpace(body[strings.Index(body, "\n\n")+2:])] = m.EmailID()
	}
	return out
}

// RFC 8474 5.1: the EMAILID stays with a moved message and a copy keeps
// its original's, in this process, in a fresh one, and (for moves) after
// the index is lost.
func TestEmailIDMoveCopy(t *testing.T) {
	m := openTest(t)
	deliver(t, m, "INBOX", "Subject: a\n\nfirst\n")
	deliver(t, m, "INBOX", "Subject: b\n\nsecond\n")
	inbox, arch := folder(t, m, "INBOX"), folder(t, m, "Archive")
	before := emailIDs(t, inbox)
	if before["first"] == before["second"] {
		t.Fatalf("two messages share EMAILID %q", before["first"])
	}
	snap := mustSync(t, inbox)
	if _, _, err := inbox.Copy([]uint32{snap.Messages[0].UID}, arch); err != nil {
		t.Fatal(err)
	}
	if _, _, err := inbox.Move([]uint32{snap.Messages[1].UID}, arch); err != nil {
		t.Fatal(err)
	}
	check := func(when string, copyKept bool) {
		t.Helper()
		got := emailIDs(t, arch)
		if got["second"] != before["second"] {
			t.Errorf("%s: moved message has EMAILID %q, was %q", when, got["second"], before["second"])
		}
		if (got["first"] == before["first"]) != copyKept {
			t.Errorf("%s: copy has EMAILID %q, original %q (kept: want %v)", when, got["first"], before["first"], copyKept)
		}
		if src := emailIDs(t, inbox); src["first"] != before["first"] {
			t.Errorf("%s: copied original changed EMAILID", when)
		}
	}
	check("after COPY/MOVE", true)
	forgetState(arch.Dir())
	forgetState(inbox.Dir())
	check("fresh process", true)
	// A rebuilt index still derives the moved message's EMAILID from its
	// unchanged key; the copy then has an EMAILID of its own.
	for _, n := range []string{indexName, logName} {
		os.Remove(filepath.Join(arch.Dir(), n))
	}
	forgetState(arch.Dir())
	check("index rebuilt", false)
}

// A file another program drops into new/ gets an EMAILID and a save date
// at the sync that first sees it; delivered and appended messages are
// saved when they arrive, whatever their internal date.
func TestSaveDate(t *testing.T) {
	m := openTest(t)
	f := folder(t, m, "INBOX")
	old := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	start := time.Now().Add(-time.Second)
	uid, err := f.Append(strings.NewReader("Subject: x\n\nappended\n"), nil, old)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(f.Dir(), "new", "1000000000.M1P1Q1.outside")
	if err := os.WriteFile(p, []byte("Subject: y\n\ndropped\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, old, old); err != nil {
		t.Fatal(err)
	}
	snap := mustSync(t, f)
	if len(snap.Messages) != 2 {
		t.Fatalf("%d messages", len(snap.Messages))
	}
	for _, msg := range snap.Messages {
		if !msg.InternalDate.Equal(old) {
			t.Errorf("UID %d internal date %v, want %v", msg.UID, msg.InternalDate, old)
		}
		if msg.SaveDate().Before(start) || msg.SaveDate().After(time.Now().Add(time.Second)) {
			t.Errorf("UID %d save date %v, want about now", msg.UID, msg.SaveDate())
		}
		if !ValidObjectID(msg.EmailID()) {
			t.Errorf("UID %d EMAILID %q", msg.UID, msg.EmailID())
		}
	}
	// The save date is kept in the index: a fresh process reads it.
	forgetState(f.Dir())
	again := mustSync(t, f)
	for i, msg := range again.Messages {
		if !msg.SaveDate().Equal(snap.Messages[i].SaveDate().Truncate(time.Second)) || msg.EmailID() != snap.Messages[i].EmailID() {
			t.Errorf("UID %d: save date %v / EMAILID %s after reopening, was %v / %s", msg.UID,
				msg.SaveDate(), msg.EmailID(), snap.Messages[i].SaveDate(), snap.Messages[i].EmailID())
		}
	}
	_ = uid
}

// An index written in format 1 is read (save dates unknown: the internal
// date stands in) and rewritten in format 2 before its log grows.
func TestIndexVersion1Upgrade(t *testing.T) {
	m := openTest(t)
	f := folder(t, m, "INBOX")
	deliver(t, m, "INBOX", "Subject: a\n\nbody\n")
	snap := mustSync(t, f)
	msg := snap.Messages[0]
	v1 := "tern-index 1 V" + itoa(int(snap.UIDValidity)) + " N2 M" + itoa(int(snap.HighestModSeq)) + " G7 C1 F2\n" +
		itoa(int(msg.UID)) + " " + itoa(int(msg.ModSeq)) + " " + itoa(int(msg.Size)) + " " +
		itoa(int(msg.InternalDate.UnixNano())) + " " + msg.Key + " :2,\n.\n"
	if err := os.WriteFile(filepath.Join(f.Dir(), indexName), []byte(v1), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(f.Dir(), logName))
	forgetState(f.Dir())
	got := mustSync(t, f)
	if got.UIDValidity != snap.UIDValidity || len(got.Messages) != 1 || got.Messages[0].UID != msg.UID {
		t.Fatalf("version 1 index not read: %+v", got)
	}
	if !got.Messages[0].SaveDate().Equal(msg.InternalDate) {
		t.Errorf("save date %v, want the internal date %v", got.Messages[0].SaveDate(), msg.InternalDate)
	}
	if _, _, err := f.SetFlags([]uint32{msg.UID}, FlagsAdd, []string{`\Seen`}, 0); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(filepath.Join(f.Dir(), indexName))
	if !strings.HasPrefix(string(data), "tern-index 2 ") {
		t.Fatalf("index not rewritten in format 2: %q", data)
	}
	lg, _ := os.ReadFile(filepath.Join(f.Dir(), logName))
	if !strings.HasPrefix(string(lg), "tern-index-log 2 ") {
		t.Fatalf("log not in format 2: %q", lg)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// RFC 8474 4.1: MAILBOXID survives RENAME; a mailbox deleted and created
// again gets a new one.
func TestMailboxID(t *testing.T) {
	m := openTest(t)
	if err := m.Create("Work"); err != nil {
		t.Fatal(err)
	}
	id1, err := folder(t, m, "Work").MailboxID()
	if err != nil || !ValidObjectID(id1) {
		t.Fatalf("MailboxID %q, %v", id1, err)
	}
	if again, _ := folder(t, m, "Work").MailboxID(); again != id1 {
		t.Fatalf("MAILBOXID changed from %q to %q", id1, again)
	}
	inbox, _ := folder(t, m, "INBOX").MailboxID()
	if inbox == id1 || !ValidObjectID(inbox) {
		t.Fatalf("INBOX MAILBOXID %q", inbox)
	}
	if err := m.Rename("Work", "Jobs"); err != nil {
		t.Fatal(err)
	}
	if got, _ := folder(t, m, "Jobs").MailboxID(); got != id1 {
		t.Fatalf("after RENAME MAILBOXID %q, want %q", got, id1)
	}
	if err := m.Delete("Jobs"); err != nil {
		t.Fatal(err)
	}
	if err := m.Create("Jobs"); err != nil {
		t.Fatal(err)
	}
	if got, _ := folder(t, m, "Jobs").MailboxID(); got == id1 {
		t.Fatalf("re-created mailbox kept MAILBOXID %q", got)
	}
}

// Sessions and processes creating a MAILBOXID at once all get the first
// one written.
func TestMailboxIDConcurrent(t *testing.T) {
	m := openTest(t)
	if err := m.Create("Race"); err != nil {
		t.Fatal(err)
	}
	ids := make(chan string, 8)
	for i := 0; i < cap(ids); i++ {
		go func() {
			f, err := m.Folder("Race")
			var id string
			if err == nil {
				id, err = f.MailboxID()
			}
			if err != nil {
				t.Error(err)
			}
			ids <- id
		}()
	}
	first := <-ids
	for i := 1; i < cap(ids); i++ {
		if id := <-ids; id != first {
			t.Fatalf("MAILBOXIDs %q and %q", first, id)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(m.Root(), ".Race", "tern-mailboxid.tmp.*")); len(left) > 0 {
		t.Errorf("temporary files left: %q", left)
	}
}
