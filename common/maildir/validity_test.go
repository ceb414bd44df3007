package maildir

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestExpungeAfterIndexRecreated: a session read UIDs 3-5 (the first two
// messages were expunged before), then the index was lost and another
// process gave the folder a new index, numbering the messages 1-5 again,
// two new ones included. Removing by the session's UIDs would delete the
// two new messages nobody has seen (as a POP3 QUIT after DELE of every
// message did). ExpungeIn removes nothing and says why.
func TestExpungeAfterIndexRecreated(t *testing.T) {
	m := openTest(t)
	deliver(t, m, "INBOX", "Subject: x1\r\n\r\n.\r\n")
	deliver(t, m, "INBOX", "Subject: x2\r\n\r\n.\r\n")
	in := folder(t, m, "INBOX")
	if err := in.Expunge(uidsOf(mustSync(t, in))); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"a", "b", "c"} {
		deliver(t, m, "INBOX", "Subject: "+s+"\r\n\r\n.\r\n")
	}
	seen := mustSync(t, in)
	if got := uidsOf(seen); len(got) != 3 || got[0] != 3 {
		t.Fatalf("UIDs %v, want 3 4 5", got)
	}
	// The index is lost; two messages arrive; another process builds a
	// new index.
	for _, n := range []string{indexName, logName} {
		if err := os.Remove(filepath.Join(m.Root(), n)); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	deliver(t, m, "INBOX", "Subject: d\r\n\r\n.\r\n")
	deliver(t, m, "INBOX", "Subject: e\r\n\r\n.\r\n")
	other := reopen(t, m.Root())
	now := mustSync(t, folder(t, other, "INBOX"))
	if now.UIDValidity == seen.UIDValidity || len(now.Messages) != 5 {
		t.Fatalf("new index: validity %d (was %d), %d messages", now.UIDValidity, seen.UIDValidity, len(now.Messages))
	}

	err := in.ExpungeIn(seen.UIDValidity, uidsOf(seen))
	if !errors.Is(err, ErrUIDValidity) {
		t.Fatalf("ExpungeIn after the index was recreated: %v, want ErrUIDValidity", err)
	}
	after := mustSync(t, folder(t, reopen(t, m.Root()), "INBOX"))
	if len(after.Messages) != 5 {
		t.Fatalf("%d messages left, want all 5: UIDs read under UIDVALIDITY %d removed messages of %d",
			len(after.Messages), seen.UIDValidity, now.UIDValidity)
	}
	// Under the validity in force, the UIDs are good again.
	if err := in.ExpungeIn(after.UIDValidity, []uint32{after.Messages[0].UID}); err != nil {
		t.Fatal(err)
	}
}

func reopen(t testing.TB, root string) *Mailbox {
	t.Helper()
	m, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestExpungeKeysOnlyTheFileRead: ExpungeKeys removes a UID only while it
// names the file the caller read. Given a key that is not the UID's file
// now (the caller's view and the index disagree), it removes nothing, so
// a removal can never delete a message the client did not ask to remove.
func TestExpungeKeysOnlyTheFileRead(t *testing.T) {
	m := openTest(t)
	deliver(t, m, "INBOX", "Subject: a\r\n\r\n.\r\n")
	deliver(t, m, "INBOX", "Subject: b\r\n\r\n.\r\n")
	in := folder(t, m, "INBOX")
	snap := mustSync(t, in)
	if len(snap.Messages) != 2 {
		t.Fatalf("%d messages, want 2", len(snap.Messages))
	}
	a, b := snap.Messages[0], snap.Messages[1]
	// UID a paired with b's key: the index says a is another file.
	if err := in.ExpungeKeys(snap.UIDValidity, []uint32{a.UID}, []string{b.Key}); err != nil {
		t.Fatal(err)
	}
	after := mustSync(t, folder(t, reopen(t, m.Root()), "INBOX"))
	if len(after.Messages) != 2 {
		t.Fatalf("%d messages left, want 2: UID %d was removed though the key given was another file's", len(after.Messages), a.UID)
	}
	if err := in.ExpungeKeys(snap.UIDValidity, []uint32{a.UID}, []string{a.Key}); err != nil {
		t.Fatal(err)
	}
	after = mustSync(t, folder(t, reopen(t, m.Root()), "INBOX"))
	if len(after.Messages) != 1 || after.Messages[0].Key != b.Key {
		t.Fatalf("after ExpungeKeys of UID %d with its own key: %d messages, want only %s", a.UID, len(after.Messages), b.Key)
	}
}
