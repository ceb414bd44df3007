package maildir

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// openTest opens a fresh Mailbox in a temporary directory.
func openTest(t testing.TB) *Mailbox {
	t.Helper()
	m, err := Open(filepath.Join(t.TempDir(), "Maildir"))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return m
}

func folder(t testing.TB, m *Mailbox, name string) *Folder {
	t.Helper()
	f, err := m.Folder(name)
	if err != nil {
		t.Fatalf("Folder(%q): %v", name, err)
	}
	return f
}

func deliver(t testing.TB, m *Mailbox, name, body string, flags ...string) string {
	t.Helper()
	key, _, err := m.Deliver(name, strings.NewReader(body), flags)
	if err != nil {
		t.Fatalf("Deliver(%q): %v", name, err)
	}
	return key
}

func mustSync(t testing.TB, f *Folder) *Snapshot {
	t.Helper()
	s, err := f.Sync()
	if err != nil {
		t.Fatalf("Sync %s: %v", f.Name(), err)
	}
	return s
}

func readMsg(t testing.TB, f *Folder, uid uint32) string {
	t.Helper()
	fh, err := f.Open(uid)
	if err != nil {
		t.Fatalf("Open(%d): %v", uid, err)
	}
	defer fh.Close()
	b := new(strings.Builder)
	if _, err := fmt.Fprint(b, mustReadAll(t, fh)); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func mustReadAll(t testing.TB, f *os.File) string {
	t.Helper()
	data, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatalf("read %s: %v", f.Name(), err)
	}
	return string(data)
}

func uidsOf(s *Snapshot) []uint32 {
	out := make([]uint32, len(s.Messages))
	for i, m := range s.Messages {
		out[i] = m.UID
	}
	return out
}

// checkSnapshot verifies the invariants every snapshot must hold.
func checkSnapshot(t testing.TB, s *Snapshot) {
	t.Helper()
	keys := map[string]bool{}
	for i, m := range s.Messages {
		if i > 0 && m.UID <= s.Messages[i-1].UID {
			t.Fatalf("UIDs not ascending at %d: %d after %d", i, m.UID, s.Messages[i-1].UID)
		}
		if m.UID >= s.UIDNext {
			t.Fatalf("UID %d >= UIDNEXT %d", m.UID, s.UIDNext)
		}
		if m.ModSeq > s.HighestModSeq {
			t.Fatalf("modseq %d > highest %d", m.ModSeq, s.HighestModSeq)
		}
		if keys[m.Key] {
			t.Fatalf("key %q twice", m.Key)
		}
		keys[m.Key] = true
	}
}
