package maildir

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Staged messages are nobody's until Publish moves them in together, with
// consecutive UIDs, their flags and dates; Discard leaves nothing behind.
func TestStagePublish(t *testing.T) {
	m := openTest(t)
	f := folder(t, m, "INBOX")
	date := time.Date(2021, 3, 5, 9, 0, 0, 0, time.UTC)
	var staged []*Staged
	for i, flags := range [][]string{{`\Seen`}, nil, {"$Work", "a-very-own-keyword"}} {
		st, err := f.Stage(strings.NewReader("Subject: "+string(rune('a'+i))+"\r\n\r\nbody\r\n"), flags, date)
		if err != nil {
			t.Fatal(err)
		}
		if st.WireSize() != int64(len("Subject: a\r\n\r\nbody\r\n")) {
			t.Fatalf("wire size %d", st.WireSize())
		}
		staged = append(staged, st)
	}
	dropped, err := f.Stage(strings.NewReader("Subject: dropped\r\n\r\n"), nil, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	dropped.Discard()
	if s := mustSync(t, f); len(s.Messages) != 0 {
		t.Fatalf("%d messages before Publish", len(s.Messages))
	}
	uids, err := f.Publish(staged)
	if err != nil {
		t.Fatal(err)
	}
	if len(uids) != 3 || uids[0] != 1 || uids[2] != 3 {
		t.Fatalf("uids %v", uids)
	}
	s := mustSync(t, f)
	if len(s.Messages) != 3 || !s.Messages[0].HasFlag(`\Seen`) || !s.Messages[2].HasFlag("a-very-own-keyword") ||
		!s.Messages[1].InternalDate.Equal(date) {
		t.Fatalf("snapshot %+v", s.Messages)
	}
	if got := readMsg(t, f, 2); got != "Subject: b\n\nbody\n" {
		t.Fatalf("message 2 %q", got)
	}
	if left, _ := os.ReadDir(filepath.Join(f.Dir(), "tmp")); len(left) != 0 {
		t.Fatalf("tmp/ holds %d files", len(left))
	}
	if _, err := f.Publish(staged); err == nil {
		t.Fatal("published twice")
	}
	for _, st := range staged {
		st.Discard() // a no-op once published
	}
	if s := mustSync(t, f); len(s.Messages) != 3 {
		t.Fatalf("%d messages after Discard", len(s.Messages))
	}
}
