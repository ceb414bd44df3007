package maildir

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// The expunge history (RFC 7162 3.2.5.2): expunges by this process and by
// another program (a file removed by hand) are known with their modseq,
// to a fresh process reading the log, and after the log is compacted
// into the index.
func TestVanishedSince(t *testing.T) {
	m := openTest(t)
	for i := 0; i < 5; i++ {
		deliver(t, m, "INBOX", "Subject: x\r\n\r\nx\r\n")
	}
	f := folder(t, m, "INBOX")
	s0 := mustSync(t, f)
	if err := f.Expunge([]uint32{2}); err != nil {
		t.Fatal(err)
	}
	s1 := mustSync(t, f)
	// Another program removes UID 4's file.
	i, _ := s1.ByUID(4)
	matches, _ := filepath.Glob(filepath.Join(m.Root(), "cur", s1.Messages[i].Key+"*"))
	if len(matches) != 1 {
		t.Fatalf("file of UID 4: %v", matches)
	}
	if err := os.Remove(matches[0]); err != nil {
		t.Fatal(err)
	}
	forgetState(f.Dir())
	f = folder(t, m, "INBOX")
	s2 := mustSync(t, f)
	check := func(s *Snapshot) {
		t.Helper()
		if got, ok := s.VanishedSince(s0.HighestModSeq); !ok || !reflect.DeepEqual(got, []uint32{2, 4}) {
			t.Fatalf("VanishedSince(%d) = %v, %v; want [2 4]", s0.HighestModSeq, got, ok)
		}
		if got, ok := s.VanishedSince(s1.HighestModSeq); !ok || !reflect.DeepEqual(got, []uint32{4}) {
			t.Fatalf("VanishedSince(%d) = %v, %v; want [4]", s1.HighestModSeq, got, ok)
		}
		if got, ok := s.VanishedSince(s.HighestModSeq); !ok || got != nil {
			t.Fatalf("VanishedSince(highest) = %v, %v", got, ok)
		}
	}
	check(s2)
	forgetState(f.Dir())
	f = folder(t, m, "INBOX")
	check(mustSync(t, f))
	f.st.mu.Lock()
	err := f.st.compact()
	f.st.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(m.Root(), indexName))
	if err != nil || !strings.Contains(string(data), "\n.\nK ") {
		t.Fatalf("index has no expunge history: %q %v", data, err)
	}
	forgetState(f.Dir())
	check(mustSync(t, folder(t, m, "INBOX")))
}

// An index without the history (written before it existed) knows nothing
// of its past expunges; the history is bounded, and what it drops raises
// the floor.
func TestVanishedHistoryBounds(t *testing.T) {
	x, err := parseIndex([]byte("tern-index 1 V1 N9 M7 G1 C0\n.\n"))
	if err != nil {
		t.Fatal(err)
	}
	if x.expungeFloor != 7 {
		t.Fatalf("floor of an old index = %d, want 7", x.expungeFloor)
	}
	s := &Snapshot{ExpungeFloor: x.expungeFloor}
	if _, ok := s.VanishedSince(6); ok {
		t.Fatal("history claims to reach below its floor")
	}
	x = &index{uidValidity: 1, uidNext: 1, highestModSeq: 1}
	uids := make([]uint32, maxExpungedUIDs/2+1)
	for i := range uids {
		uids[i] = uint32(i + 1)
	}
	x.noteExpunge(10, uids)
	x.noteExpunge(11, []uint32{200000})
	for i := range uids {
		uids[i] += 100000
	}
	x.noteExpunge(12, uids)
	if x.expungeFloor != 10 || len(x.expunged) != 2 || x.expungedUIDs != len(uids)+1 {
		t.Fatalf("after trimming: floor %d, %d records, %d UIDs", x.expungeFloor, len(x.expunged), x.expungedUIDs)
	}
	x.highestModSeq = 12
	y, err := parseIndex(x.marshal())
	if err != nil || !reflect.DeepEqual(y.expunged, x.expunged) || y.expungeFloor != 10 {
		t.Fatalf("round trip: %v", err)
	}
	// A smaller limit than the writer's trims what is read, never refuses.
	defer func(n int) { maxExpungedUIDs = n }(maxExpungedUIDs)
	SetExpungeHistory(len(uids))
	y, err = parseIndex(x.marshal())
	if err != nil || len(y.expunged) != 1 || y.expungeFloor != 11 {
		t.Fatalf("read under a smaller limit: %v, %d records, floor %d", err, len(y.expunged), y.expungeFloor)
	}
}
