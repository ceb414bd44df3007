package main

import (
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

// Sessions that select the same folder share its UID list; one that learns
// of a new message takes its own copy without changing what the other
// knows, and the list is dropped when the last session lets go of it.
func TestSharedUIDList(t *testing.T) {
	e := startServer(t)
	e.deliver(t, "INBOX", testMessage("one", "1\r\n"))
	c1 := e.login(t, nil)
	c2 := e.login(t, nil)
	selectInbox(t, c1)
	selectInbox(t, c2)
	e.srv.uidShare.mu.Lock()
	refs := 0
	for _, sh := range e.srv.uidShare.m {
		refs += sh.refs
	}
	e.srv.uidShare.mu.Unlock()
	if refs != 2 {
		t.Fatalf("shared UID lists hold %d references, want 2", refs)
	}

	e.deliver(t, "INBOX", testMessage("two", "2\r\n"))
	if err := c1.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	msgs, err := c1.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true}).Collect()
	if err != nil || len(msgs) != 2 {
		t.Fatalf("session 1 FETCH 1:*: %d messages, %v", len(msgs), err)
	}
	// Session 2 has not been told of message 2 before this FETCH.
	msgs, err = c2.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true}).Collect()
	if err != nil || len(msgs) != 1 || msgs[0].UID != 1 {
		t.Fatalf("session 2 FETCH 1:*: %+v, %v", msgs, err)
	}
	msgs, err = c2.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true}).Collect()
	if err != nil || len(msgs) != 2 || msgs[1].UID != 2 {
		t.Fatalf("session 2 FETCH 1:* after the update: %+v, %v", msgs, err)
	}

	if err := c1.Unselect().Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c2.Logout().Wait(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		e.srv.uidShare.mu.Lock()
		n := len(e.srv.uidShare.m)
		e.srv.uidShare.mu.Unlock()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d shared UID lists left after every session let go", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
