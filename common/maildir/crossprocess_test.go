package maildir

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// helperChange expunges UID $EXPUNGE and flags UID $FLAG of INBOX, in a
// process of its own, as pop3d or another imapd would.
func helperChange() error {
	f, err := helperInbox()
	if err != nil {
		return err
	}
	if _, err := f.Sync(); err != nil {
		return err
	}
	exp, _ := strconv.Atoi(os.Getenv("EXPUNGE"))
	if err := f.Expunge([]uint32{uint32(exp)}); err != nil {
		return err
	}
	fl, _ := strconv.Atoi(os.Getenv("FLAG"))
	_, _, err = f.SetFlags([]uint32{uint32(fl)}, FlagsAdd, []string{`\Flagged`, "$Later"}, 0)
	return err
}

// helperInbox opens INBOX of the Maildir $ROOT in a helper process.
func helperInbox() (*Folder, error) {
	m, err := Open(os.Getenv("ROOT"))
	if err != nil {
		return nil, err
	}
	return m.Folder("INBOX")
}

// TestChangesByAnotherProcess: an expunge and a flag change made by
// another process appear in this process's next snapshot, although only
// the index (not a directory this process lists) tells of the flag change
// of a keyword without a letter, and the expunge leaves no file to list.
func TestChangesByAnotherProcess(t *testing.T) {
	root := t.TempDir()
	for i := 0; i < 3; i++ {
		if _, _, err := Deliver(root, strings.NewReader(fmt.Sprintf("Subject: %d\r\n\r\nx\r\n", i)), nil); err != nil {
			t.Fatal(err)
		}
	}
	m, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	f, err := m.Folder("INBOX")
	if err != nil {
		t.Fatal(err)
	}
	s, err := f.Sync()
	if err != nil || len(s.Messages) != 3 {
		t.Fatalf("before: %v %v", s, err)
	}
	cmd := helperCmd(t, "change", "ROOT="+root, "EXPUNGE=2", "FLAG=3")
	if out, err := cmd.Output(); err != nil {
		t.Fatalf("helper: %v %s", err, out)
	}
	s, err = f.Sync()
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Messages) != 2 || s.Messages[0].UID != 1 || s.Messages[1].UID != 3 {
		t.Fatalf("after another process's expunge: %+v", s.Messages)
	}
	if !s.Messages[1].HasFlag(`\Flagged`) || !s.Messages[1].HasFlag("$Later") {
		t.Errorf("flags set by another process not seen: %v", s.Messages[1].Flags)
	}
}
