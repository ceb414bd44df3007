package maildir

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// oddNames are files another program may drop into new/ whose names the
// store cannot keep as they are: the longest names a file system allows
// (":2," no longer fits), and names with more than one colon.
func oddNames() map[string]string {
	long := func(n int) string { return "1700000000.M1P1." + strings.Repeat("h", n-len("1700000000.M1P1.")) }
	return map[string]string{
		long(253):                 "Subject: 253\n\nname of 253 bytes\n",
		long(254):                 "Subject: 254\n\nname of 254 bytes\n",
		long(255):                 "Subject: 255\n\nname of 255 bytes\n",
		long(250) + ":2,S":        "Subject: 250+info\n\nlong name with flags\n",
		"1700000001.M2P2.h:2,S:x": "Subject: colons\n\ntwo colons\n",
		"1700000002.M3P3.h:a:b":   "Subject: colons2\n\nthree parts\n",
	}
}

// TestOddNamesInNew: every such file is taken in (under a shorter unique
// name where it must be), with its content, and one sync is enough.
func TestOddNamesInNew(t *testing.T) {
	m := openTest(t)
	want := map[string]bool{}
	for name, body := range oddNames() {
		if err := os.WriteFile(filepath.Join(m.Root(), "new", name), []byte(body), 0o600); err != nil {
			t.Fatalf("write %d-byte name: %v", len(name), err)
		}
		want[body] = true
	}
	f := folder(t, m, "INBOX")
	s := mustSync(t, f)
	checkSnapshot(t, s)
	if len(s.Messages) != len(want) {
		t.Fatalf("%d messages, want %d", len(s.Messages), len(want))
	}
	for _, msg := range s.Messages {
		got := readMsg(t, f, msg.UID)
		if !want[got] {
			t.Errorf("UID %d reads %q", msg.UID, got)
		}
		delete(want, got)
		if n, err := f.WireSize(msg.UID, msg.Key); err != nil || n != int64(len(got)+strings.Count(got, "\n")) {
			t.Errorf("UID %d: wire size %d %v", msg.UID, n, err)
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(m.Root(), "new")); len(ents) != 0 {
		t.Errorf("new/ still holds %d files", len(ents))
	}
	// Flags can still be set: the names in cur/ take a longer info.
	if _, _, err := f.SetFlags([]uint32{s.Messages[0].UID, s.Messages[2].UID}, FlagsAdd, []string{`\Seen`, `\Flagged`, `\Answered`, "kw1"}, 0); err != nil {
		t.Fatalf("set flags: %v", err)
	}
	s2 := mustSync(t, f)
	if len(s2.Messages) != len(s.Messages) || s2.UIDValidity != s.UIDValidity {
		t.Fatalf("second sync: %d messages", len(s2.Messages))
	}
}
