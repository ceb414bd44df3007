package maildir

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestOpenCreatesSpecialFolders(t *testing.T) {
	m := openTest(t)
	list, err := m.List()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, fi := range list {
		got = append(got, fi.Name+"="+fi.SpecialUse)
	}
	want := []string{"INBOX=", `Archive=\Archive`, `Drafts=\Drafts`, `Junk=\Junk`, `Sent=\Sent`, `Trash=\Trash`}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("List = %v, want %v", got, want)
	}
	for _, d := range []string{"cur", "new", "tmp", ".Sent/cur", ".Sent/maildirfolder"} {
		if _, err := os.Lstat(filepath.Join(m.Root(), d)); err != nil {
			t.Errorf("missing %s: %v", d, err)
		}
	}
	fi, _ := os.Stat(filepath.Join(m.Root(), "cur"))
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("cur mode %v, want 0700", fi.Mode().Perm())
	}
}

func TestDeliverSyncOpen(t *testing.T) {
	m := openTest(t)
	k1 := deliver(t, m, "INBOX", "Subject: one\r\n\r\nbody one\r\n")
	k2 := deliver(t, m, "INBOX", "Subject: two\r\n\r\nbody two\r\n", `\Seen`, "$Label1")
	if _, err := os.Lstat(filepath.Join(m.Root(), "new", k1)); err != nil {
		t.Fatalf("delivered message not in new/: %v", err)
	}
	in := folder(t, m, "INBOX")
	s := mustSync(t, in)
	checkSnapshot(t, s)
	if len(s.Messages) != 2 || s.Messages[0].Key != k1 || s.Messages[1].Key != k2 {
		t.Fatalf("snapshot %+v", s.Messages)
	}
	if s.Messages[0].UID != 1 || s.Messages[1].UID != 2 || s.UIDNext != 3 {
		t.Fatalf("UIDs %v next %d", uidsOf(s), s.UIDNext)
	}
	if !reflect.DeepEqual(s.Messages[1].Flags, []string{"$Label1", `\Seen`}) {
		t.Fatalf("flags %v", s.Messages[1].Flags)
	}
	// Stored with LF line ends; the wire size is that of what was sent.
	if s.Messages[0].Size != int64(len("Subject: one\n\nbody one\n")) {
		t.Fatalf("size %d", s.Messages[0].Size)
	}
	if w, ok := s.Messages[0].WireSize(); !ok || w != int64(len("Subject: one\r\n\r\nbody one\r\n")) {
		t.Fatalf("wire size %d %v", w, ok)
	}
	// new/ was emptied into cur/.
	if ents, _ := os.ReadDir(filepath.Join(m.Root(), "new")); len(ents) != 0 {
		t.Fatalf("new/ not empty after sync: %d", len(ents))
	}
	if got := readMsg(t, in, 2); !strings.Contains(got, "body two") {
		t.Fatalf("Open(2) = %q", got)
	}
	if _, err := in.Open(99); !errors.Is(err, ErrNoMessage) {
		t.Fatalf("Open(99) err = %v, want ErrNoMessage", err)
	}
	// A second sync with nothing changed returns the same snapshot.
	if s2 := mustSync(t, in); !reflect.DeepEqual(uidsOf(s2), uidsOf(s)) || s2.UIDValidity != s.UIDValidity {
		t.Fatalf("resync changed: %v", uidsOf(s2))
	}
}

func TestAppendSetFlagsExpunge(t *testing.T) {
	m := openTest(t)
	f := folder(t, m, "Drafts")
	date := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	uid, err := f.Append(strings.NewReader("Subject: draft\r\n\r\nx\r\n"), []string{`\draft`, "work"}, date)
	if err != nil {
		t.Fatal(err)
	}
	if uid != 1 {
		t.Fatalf("uid %d", uid)
	}
	s := mustSync(t, f)
	msg := s.Messages[0]
	if !msg.InternalDate.Equal(date) {
		t.Fatalf("date %v", msg.InternalDate)
	}
	if !reflect.DeepEqual(msg.Flags, []string{`\Draft`, "work"}) {
		t.Fatalf("flags %v", msg.Flags)
	}
	ms0 := msg.ModSeq
	changed, failed, err := f.SetFlags([]uint32{1}, FlagsAdd, []string{`\Seen`, `\Flagged`}, 0)
	if err != nil || len(failed) != 0 || len(changed) != 1 {
		t.Fatalf("SetFlags: %v %v %v", changed, failed, err)
	}
	if !reflect.DeepEqual(changed[0].Flags, []string{`\Draft`, `\Flagged`, `\Seen`, "work"}) || changed[0].ModSeq <= ms0 {
		t.Fatalf("after add: %+v", changed[0])
	}
	// The file name carries the letters sorted: D F S and keyword a.
	ents, _ := os.ReadDir(filepath.Join(f.Dir(), "cur"))
	if len(ents) != 1 || !strings.HasSuffix(ents[0].Name(), ":2,DFSa") {
		t.Fatalf("cur/ = %v", ents)
	}
	// CONDSTORE: an older UNCHANGEDSINCE fails.
	_, failed, err = f.SetFlags([]uint32{1}, FlagsRemove, []string{`\Seen`}, ms0)
	if err != nil || !reflect.DeepEqual(failed, []uint32{1}) {
		t.Fatalf("UNCHANGEDSINCE: failed %v err %v", failed, err)
	}
	changed, _, err = f.SetFlags([]uint32{1}, FlagsSet, []string{"work"}, changed[0].ModSeq)
	if err != nil || len(changed) != 1 || !reflect.DeepEqual(changed[0].Flags, []string{"work"}) {
		t.Fatalf("set: %v %v", changed, err)
	}
	// Setting the same flags changes nothing and keeps the modseq.
	same, _, _ := f.SetFlags([]uint32{1}, FlagsSet, []string{"work"}, 0)
	if len(same) != 0 {
		t.Fatalf("no-op SetFlags reported changes: %v", same)
	}
	if _, _, err := f.SetFlags([]uint32{1}, FlagsAdd, []string{"bad flag"}, 0); !errors.Is(err, ErrInvalidFlag) {
		t.Fatalf("bad keyword: %v", err)
	}
	before := mustSync(t, f).HighestModSeq
	if err := f.Expunge([]uint32{1}); err != nil {
		t.Fatal(err)
	}
	s = mustSync(t, f)
	if len(s.Messages) != 0 || s.HighestModSeq <= before || s.UIDNext != 2 {
		t.Fatalf("after expunge: %+v", s)
	}
	uid, _ = f.Append(strings.NewReader("again"), nil, time.Time{})
	if uid != 2 {
		t.Fatalf("UID reused: %d", uid)
	}
}

func TestCopyMove(t *testing.T) {
	m := openTest(t)
	in := folder(t, m, "INBOX")
	arch := folder(t, m, "Archive")
	for i := 0; i < 3; i++ {
		deliver(t, m, "INBOX", "message "+string(rune('a'+i)), `\Seen`, "kw"+string(rune('a'+i)))
	}
	// Give Archive a different keyword table, so letters must be mapped.
	if _, err := arch.Append(strings.NewReader("x"), []string{"other"}, time.Time{}); err != nil {
		t.Fatal(err)
	}
	mustSync(t, in)
	src, dst, err := in.Copy([]uint32{3, 1, 7}, arch)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(src, []uint32{1, 3}) || !reflect.DeepEqual(dst, []uint32{2, 3}) {
		t.Fatalf("COPYUID %v %v", src, dst)
	}
	s := mustSync(t, arch)
	if got := s.Messages[1].Flags; !reflect.DeepEqual(got, []string{`\Seen`, "kwa"}) {
		t.Fatalf("copied flags %v", got)
	}
	if got := readMsg(t, arch, 3); got != "message c" {
		t.Fatalf("copied body %q", got)
	}
	src, dst, err = in.Move([]uint32{2}, arch)
	if err != nil || !reflect.DeepEqual(src, []uint32{2}) || !reflect.DeepEqual(dst, []uint32{4}) {
		t.Fatalf("Move: %v %v %v", src, dst, err)
	}
	if s := mustSync(t, in); !reflect.DeepEqual(uidsOf(s), []uint32{1, 3}) {
		t.Fatalf("INBOX after move %v", uidsOf(s))
	}
	s = mustSync(t, arch)
	if got := s.Messages[3].Flags; !reflect.DeepEqual(got, []string{`\Seen`, "kwb"}) {
		t.Fatalf("moved flags %v", got)
	}
	// Move within one folder.
	src, dst, err = arch.Move([]uint32{1}, arch)
	if err != nil || len(dst) != 1 || dst[0] != 5 {
		t.Fatalf("self move: %v %v %v", src, dst, err)
	}
	if s := mustSync(t, arch); !reflect.DeepEqual(uidsOf(s), []uint32{2, 3, 4, 5}) {
		t.Fatalf("after self move %v", uidsOf(s))
	}
}

func TestFolderManagement(t *testing.T) {
	m := openTest(t)
	if err := m.Create("Work.2024.Q1"); err != nil {
		t.Fatal(err)
	}
	if err := m.Create("Work"); !errors.Is(err, ErrExists) {
		t.Fatalf("Create existing parent: %v", err)
	}
	if err := m.Create("Ünïcødé & Co"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(m.Root(), ".&ANw-n&AO8-c&APg-d&AOk- &- Co")); err != nil {
		t.Fatalf("mUTF-7 directory missing: %v", err)
	}
	list, _ := m.List()
	has := map[string]bool{}
	for _, fi := range list {
		has[fi.Name] = fi.HasChildren
	}
	if !has["Work"] || !has["Work.2024"] || has["Work.2024.Q1"] {
		t.Fatalf("HasChildren wrong: %v", has)
	}
	if _, ok := has["Ünïcødé & Co"]; !ok {
		t.Fatalf("unicode folder not listed: %v", has)
	}
	if err := m.Delete("Work"); !errors.Is(err, ErrHasChildren) {
		t.Fatalf("Delete with children: %v", err)
	}
	if err := m.Delete("INBOX"); !errors.Is(err, ErrInvalidName) {
		t.Fatalf("Delete INBOX: %v", err)
	}
	if err := m.Delete("Nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Delete missing: %v", err)
	}
	deliver(t, m, "Work.2024", "hello")
	if err := m.Rename("Work", "Old.Work"); err != nil {
		t.Fatal(err)
	}
	f := folder(t, m, "Old.Work.2024")
	if s := mustSync(t, f); len(s.Messages) != 1 {
		t.Fatalf("renamed child lost its message")
	}
	if _, err := m.Folder("Work.2024"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("old name still there: %v", err)
	}
	if err := m.Rename("Old", "Old.Sub"); !errors.Is(err, ErrInvalidName) {
		t.Fatalf("rename into itself: %v", err)
	}
	if err := m.Rename("Old", "Sent"); !errors.Is(err, ErrExists) {
		t.Fatalf("rename onto existing: %v", err)
	}
	if err := m.Delete("Old.Work.2024.Q1"); err != nil {
		t.Fatal(err)
	}
	// RFC 3501 6.3.5: renaming INBOX moves its messages.
	deliver(t, m, "INBOX", "inbox message")
	if err := m.Rename("inbox", "Saved"); err != nil {
		t.Fatal(err)
	}
	if s := mustSync(t, folder(t, m, "INBOX")); len(s.Messages) != 0 {
		t.Fatalf("INBOX not empty after rename")
	}
	if s := mustSync(t, folder(t, m, "Saved")); len(s.Messages) != 1 {
		t.Fatalf("Saved has %d messages", len(s.Messages))
	}
	// Subscriptions.
	for _, n := range []string{"Sent", "Work", "inbox"} {
		if err := m.Subscribe(n); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Unsubscribe("Work"); err != nil {
		t.Fatal(err)
	}
	subs, err := m.Subscriptions()
	// Open subscribed the default folders (Sent among them) it created.
	if err != nil || !reflect.DeepEqual(subs, []string{"Archive", "Drafts", "INBOX", "Junk", "Sent", "Trash"}) {
		t.Fatalf("subscriptions %v %v", subs, err)
	}
}

func TestTryLockAndUsage(t *testing.T) {
	m := openTest(t)
	rel, err := m.TryLock("pop3")
	if err != nil {
		t.Fatal(err)
	}
	m2, _ := Open(m.Root())
	if _, err := m2.TryLock("pop3"); !errors.Is(err, ErrLocked) {
		t.Fatalf("second TryLock: %v", err)
	}
	rel()
	rel2, err := m2.TryLock("pop3")
	if err != nil {
		t.Fatalf("TryLock after release: %v", err)
	}
	rel2()
	if _, err := m.TryLock("../x"); !errors.Is(err, ErrInvalidName) {
		t.Fatalf("bad lock name: %v", err)
	}
	deliver(t, m, "INBOX", "12345")
	deliver(t, m, "Sent", "1234567890")
	// A file dropped without S= is stat'ed.
	if err := os.WriteFile(filepath.Join(m.Root(), ".Junk", "new", "123.outside.host"), []byte("abc"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, n, err := m.Usage()
	if err != nil || b != 18 || n != 3 {
		t.Fatalf("Usage = %d, %d, %v", b, n, err)
	}
}

func TestWatch(t *testing.T) {
	m := openTest(t)
	f := folder(t, m, "INBOX")
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := f.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ch2, _ := folder(t, m, "INBOX").Watch(ctx)
	deliver(t, m, "INBOX", "wake up")
	for _, c := range []<-chan struct{}{ch, ch2} {
		select {
		case <-c:
		case <-time.After(2 * time.Second):
			t.Fatal("no notification within 2s")
		}
	}
	cancel()
	deadline := time.After(2 * time.Second)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatal("channel not closed after cancel")
		}
	}
}

// RFC 3501 2.3.1.1: a mailbox deleted and created again under the same name
// gets a new UIDVALIDITY, even within the same second and from another
// process.
func TestRecreatedFolderNewUIDValidity(t *testing.T) {
	m := openTest(t)
	m.Create("X")
	f := folder(t, m, "X")
	deliver(t, m, "X", "a")
	v1 := mustSync(t, f).UIDValidity
	if err := m.Delete("X"); err != nil {
		t.Fatal(err)
	}
	forgetState(f.Dir())
	lastValidity.Store(0) // as another process would start
	m.Create("X")
	v2 := mustSync(t, folder(t, m, "X")).UIDValidity
	if v2 <= v1 {
		t.Fatalf("recreated folder has UIDVALIDITY %d, old one %d", v2, v1)
	}
}

// Changes made by another process reach a watcher within 2 s, with inotify
// and with the polling fallback.
func TestWatchOtherProcess(t *testing.T) {
	for _, polling := range []bool{false, true} {
		t.Run(map[bool]string{false: "inotify", true: "polling"}[polling], func(t *testing.T) {
			forcePolling = polling
			oldInterval := PollInterval
			PollInterval = 200 * time.Millisecond
			defer func() { forcePolling, PollInterval = false, oldInterval }()
			m := openTest(t)
			f := folder(t, m, "INBOX")
			mustSync(t, f)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			ch, err := f.Watch(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if out, err := helperCmd(t, "deliver", "ROOT="+m.Root(), "N=1").Output(); err != nil {
				t.Fatalf("deliver from another process: %v %s", err, out)
			}
			select {
			case <-ch:
			case <-time.After(2 * time.Second):
				t.Fatal("change by another process not signalled within 2s")
			}
			if s := mustSync(t, f); len(s.Messages) != 1 {
				t.Fatalf("%d messages after notification", len(s.Messages))
			}
		})
	}
}
