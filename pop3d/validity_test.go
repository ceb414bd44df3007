package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"tern/common/maildir"
)

// TestQuitAfterIndexRecreated: the index is lost during a session whose
// first two messages were expunged before it began, and another process
// numbers the folder anew (two new messages included). QUIT after DELE of
// every message must not remove by the old UIDs, which now name other
// messages (the two new ones among them): it removes nothing and says so
// (RFC 1939 6).
func TestQuitAfterIndexRecreated(t *testing.T) {
	e := newEnv(t)
	srv := e.start(t)
	e.deliver(t, "demo@example.test", 2)
	root := e.root(t, "demo@example.test")
	mb, err := maildir.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	in, err := mb.Folder("INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Expunge([]uint32{1, 2}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, _, err := maildir.Deliver(root, bytes.NewReader(testMessage(10+i)), nil); err != nil {
			t.Fatal(err)
		}
	}
	p := dialPOP(t, srv.addr)
	p.login("demo", "demo")
	if got := p.ok("STAT"); !strings.HasPrefix(got, "+OK 3 ") {
		t.Fatalf("STAT = %q", got)
	}
	for _, n := range []string{"tern-index", "tern-index.log"} {
		os.Remove(filepath.Join(root, n))
	}
	for i := 0; i < 2; i++ {
		if _, _, err := maildir.Deliver(root, bytes.NewReader(testMessage(20+i)), nil); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(e.inbox(t, "demo@example.test").Messages); n != 5 {
		t.Fatalf("%d messages after the new index, want 5", n)
	}
	// Message 1 of the session is UID 3, which the new index gave to
	// another message: RETR must not send that one as message 1.
	if got := p.cmd("RETR 1"); !strings.HasPrefix(got, "-ERR") {
		body := p.body()
		if !bytes.Equal(body, crlf(testMessage(10))) {
			t.Errorf("RETR 1 after the index was recreated sent another message:\n%s", body)
		}
	}
	for _, n := range []string{"1", "2", "3"} {
		p.ok("DELE " + n)
	}
	if got := p.cmd("QUIT"); !strings.HasPrefix(got, "-ERR [SYS/TEMP] some deleted messages not removed") {
		t.Errorf("QUIT = %q, want -ERR: the UIDs of the session are not the folder's any more", got)
	}
	if n := len(e.inbox(t, "demo@example.test").Messages); n != 5 {
		t.Fatalf("%d messages left after QUIT, want 5: messages removed by UIDs of a lost index", n)
	}
}
