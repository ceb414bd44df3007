package maildir

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Changes by other programs (procmail, mutt, rsync) are reconciled at the
// next Sync: a message keeps its UID when its flags are changed by renaming.
func TestOutsideWriters(t *testing.T) {
	m := openTest(t)
	f := folder(t, m, "INBOX")
	cur := filepath.Join(m.Root(), "cur")
	k1 := deliver(t, m, "INBOX", "one")
	deliver(t, m, "INBOX", "two")
	s := mustSync(t, f)
	ms1 := s.Messages[0].ModSeq

	// mutt marks message 1 replied and seen, with a keyword letter that
	// has no dovecot-keywords line (ignored).
	if err := os.Rename(filepath.Join(cur, k1+":2,"), filepath.Join(cur, k1+":2,RSz")); err != nil {
		t.Fatal(err)
	}
	// procmail drops a file straight into cur/, without ,S=.
	if err := os.WriteFile(filepath.Join(cur, "1700000000.P1Q1.other:2,F"), []byte("dropped"), 0o600); err != nil {
		t.Fatal(err)
	}
	forgetState(f.Dir()) // as a fresh process would see it
	f = folder(t, m, "INBOX")
	s = mustSync(t, f)
	checkSnapshot(t, s)
	if got := uidsOf(s); !reflect.DeepEqual(got, []uint32{1, 2, 3}) {
		t.Fatalf("UIDs %v", got)
	}
	if m1 := s.Messages[0]; m1.Key != k1 || !reflect.DeepEqual(m1.Flags, []string{`\Answered`, `\Seen`}) || m1.ModSeq <= ms1 {
		t.Fatalf("renamed message: %+v", m1)
	}
	if m3 := s.Messages[2]; m3.Size != int64(len("dropped")) || !reflect.DeepEqual(m3.Flags, []string{`\Flagged`}) {
		t.Fatalf("dropped message: %+v", m3)
	}
	// Open copes with a rename after the snapshot.
	if err := os.Rename(filepath.Join(cur, k1+":2,RSz"), filepath.Join(cur, k1+":2,S")); err != nil {
		t.Fatal(err)
	}
	if got := readMsg(t, f, 1); got != "one" {
		t.Fatalf("Open after outside rename: %q", got)
	}
	// An outside delete is an expunge; the UID is not reused.
	names, _ := listMessages(cur)
	for _, n := range names {
		if strings.HasPrefix(n, "1700000000.P1Q1") {
			os.Remove(filepath.Join(cur, n))
		}
	}
	deliver(t, m, "INBOX", "four")
	s = mustSync(t, f)
	if got := uidsOf(s); !reflect.DeepEqual(got, []uint32{1, 2, 4}) {
		t.Fatalf("UIDs after outside delete %v", got)
	}
	// Symlinks and directories in cur/ are not messages.
	os.Symlink("/etc/passwd", filepath.Join(cur, "1700000001.link.host:2,"))
	os.Mkdir(filepath.Join(cur, "1700000002.dir.host"), 0o700)
	forgetState(f.Dir())
	f = folder(t, m, "INBOX")
	if s = mustSync(t, f); len(s.Messages) != 3 {
		t.Fatalf("symlink or dir taken as a message: %v", uidsOf(s))
	}
}

// A lost or unreadable index gives a new, greater UIDVALIDITY: never a UID
// silently pointing at another message.
func TestIndexLossChangesUIDValidity(t *testing.T) {
	m := openTest(t)
	f := folder(t, m, "INBOX")
	deliver(t, m, "INBOX", "a")
	s1 := mustSync(t, f)

	// Lost while this process had it loaded.
	os.Remove(filepath.Join(f.Dir(), indexName))
	s2 := mustSync(t, f)
	if s2.UIDValidity <= s1.UIDValidity {
		t.Fatalf("UIDVALIDITY %d after loss, was %d", s2.UIDValidity, s1.UIDValidity)
	}
	// Lost while no process had it: the lock file remembers.
	os.Remove(filepath.Join(f.Dir(), indexName))
	forgetState(f.Dir())
	f = folder(t, m, "INBOX")
	s3 := mustSync(t, f)
	if s3.UIDValidity <= s2.UIDValidity {
		t.Fatalf("UIDVALIDITY %d after cold loss, was %d", s3.UIDValidity, s2.UIDValidity)
	}
	// Corrupt (a truncated copy): kept aside, new UIDVALIDITY.
	p := filepath.Join(f.Dir(), indexName)
	data, _ := os.ReadFile(p)
	os.WriteFile(p, data[:len(data)-3], 0o600)
	forgetState(f.Dir())
	f = folder(t, m, "INBOX")
	s4 := mustSync(t, f)
	if s4.UIDValidity <= s3.UIDValidity || len(s4.Messages) != 1 {
		t.Fatalf("after corruption: %+v (was %d)", s4, s3.UIDValidity)
	}
	if _, err := os.Stat(p + ".corrupt"); err != nil {
		t.Fatalf("corrupt index not kept: %v", err)
	}
}

// Keywords beyond the 26 letters live in the index and survive outside
// renames of the file.
func TestKeywordsBeyondLetters(t *testing.T) {
	m := openTest(t)
	f := folder(t, m, "INBOX")
	var kws []string
	for i := 0; i < 30; i++ {
		kws = append(kws, fmt.Sprintf("kw%02d", i))
	}
	uid, err := f.Append(strings.NewReader("x"), kws, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	kwfile, _ := os.ReadFile(filepath.Join(f.Dir(), dovecotKeywords))
	if n := strings.Count(string(kwfile), "\n"); n != 26 {
		t.Fatalf("dovecot-keywords has %d lines", n)
	}
	s := mustSync(t, f)
	i, _ := s.ByUID(uid)
	if len(s.Messages[i].Flags) != 30 {
		t.Fatalf("flags %v", s.Messages[i].Flags)
	}
	// An outside program adds S; all 30 keywords stay.
	cur := filepath.Join(f.Dir(), "cur")
	names, _ := listMessages(cur)
	key, info := splitName(names[0])
	os.Rename(filepath.Join(cur, names[0]), filepath.Join(cur, key+":2,S"+info[3:]))
	forgetState(f.Dir())
	f = folder(t, m, "INBOX")
	s = mustSync(t, f)
	if got := s.Messages[0].Flags; len(got) != 31 || !s.Messages[0].HasFlag(`\seen`) {
		t.Fatalf("after outside rename: %v", got)
	}
}

// A first scan of many files written by another program (no S= size in
// their names) takes each one's size and internal date from the file:
// the files are stat'ed in parallel, and each answer must land on its own
// message.
func TestFirstScanStatsEachFile(t *testing.T) {
	m := openTest(t)
	f := folder(t, m, "INBOX")
	mustSync(t, f)
	const n = 700 // enough for several stat workers
	cur := filepath.Join(f.Dir(), "cur")
	base := time.Unix(1600000000, 0)
	for i := 0; i < n; i++ {
		p := filepath.Join(cur, fmt.Sprintf("%d.M%dP9.outside:2,", 1700000000+i, i))
		if err := os.WriteFile(p, []byte(strings.Repeat("x", i+1)), 0o600); err != nil {
			t.Fatal(err)
		}
		mt := base.Add(time.Duration(i) * time.Hour)
		if err := os.Chtimes(p, mt, mt); err != nil {
			t.Fatal(err)
		}
	}
	s := mustSync(t, f)
	if len(s.Messages) != n {
		t.Fatalf("%d messages, want %d", len(s.Messages), n)
	}
	for i, msg := range s.Messages {
		// UIDs follow the names' arrival times, which follow i.
		if msg.Size != int64(i+1) || !msg.InternalDate.Equal(base.Add(time.Duration(i)*time.Hour)) {
			t.Fatalf("message %d: size %d, date %v; want %d, %v", i, msg.Size, msg.InternalDate, i+1, base.Add(time.Duration(i)*time.Hour))
		}
	}
}
