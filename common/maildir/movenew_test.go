package maildir

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSyncMovesNewOutsideLock: a sync moves new/ to cur/ before it waits
// for the index lock, so that another process holding the lock is not
// held up by the renames; the UIDs come only once the lock is free.
func TestSyncMovesNewOutsideLock(t *testing.T) {
	m := openTest(t)
	f := folder(t, m, "INBOX")
	mustSync(t, f)
	for i := 0; i < 5; i++ {
		deliver(t, m, "INBOX", fmt.Sprintf("Subject: %d\r\n\r\nx\r\n", i))
	}
	lk, err := lockFile(filepath.Join(f.Dir(), indexLockName), false)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan *Snapshot)
	go func() {
		s, err := f.Sync()
		if err != nil {
			t.Error(err)
		}
		done <- s
	}()
	deadline := time.Now().Add(5 * time.Second)
	for {
		names, err := listMessages(filepath.Join(f.Dir(), "new"))
		if err != nil {
			t.Fatal(err)
		}
		cur, _ := listMessages(filepath.Join(f.Dir(), "cur"))
		if len(names) == 0 && len(cur) == 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("while the index lock is held: %d files in new/, %d in cur/; want 0 and 5", len(names), len(cur))
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case <-done:
		t.Fatal("Sync returned while the index lock was held")
	case <-time.After(100 * time.Millisecond):
	}
	lk.Close()
	s := <-done
	if got := uidsOf(s); fmt.Sprint(got) != "[1 2 3 4 5]" {
		t.Fatalf("UIDs after the lock was freed: %v", got)
	}
	checkSnapshot(t, s)
}

// TestSyncCapsMovesUnderLock: what a sync finds in new/ once it holds the
// lock is moved at most maxLockedMoves at a time; the rest waits for the
// next sync, which the folder is marked for, and UIDs still follow
// arrival.
func TestSyncCapsMovesUnderLock(t *testing.T) {
	m := openTest(t)
	f := folder(t, m, "INBOX")
	mustSync(t, f)
	n := maxLockedMoves + 10
	for i := 0; i < n; i++ {
		deliver(t, m, "INBOX", fmt.Sprintf("Subject: %d\r\n\r\nx\r\n", i))
	}
	st := f.st
	st.mu.Lock()
	release, err := st.lockIndex()
	if err != nil {
		t.Fatal(err)
	}
	err = st.syncStale(nil) // under the lock, without the move before it
	release()
	dirty, got := st.dirty, len(st.snap.Messages)
	st.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if got != maxLockedMoves || !dirty {
		t.Fatalf("one sync under the lock gave UIDs to %d messages (dirty %v), want %d and a rescan due", got, dirty, maxLockedMoves)
	}
	s := mustSync(t, f)
	checkSnapshot(t, s)
	if len(s.Messages) != n || s.UIDNext != uint32(n+1) {
		t.Fatalf("after the next sync: %d messages, UIDNEXT %d; want %d, %d", len(s.Messages), s.UIDNext, n, n+1)
	}
	for i, msg := range s.Messages {
		if body := readMsg(t, f, msg.UID); !strings.HasPrefix(body, fmt.Sprintf("Subject: %d\n", i)) {
			t.Fatalf("UID %d holds %q, want subject %d (UIDs in arrival order)", msg.UID, body, i)
		}
	}
}

// TestSyncHalfMovedLink: a move by link and unlink (file systems without
// RENAME_NOREPLACE) cut between the two leaves one file under both names;
// the next sync keeps it once.
func TestSyncHalfMovedLink(t *testing.T) {
	m := openTest(t)
	f := folder(t, m, "INBOX")
	key := deliver(t, m, "INBOX", "Subject: once\r\n\r\nx\r\n")
	if err := os.Link(filepath.Join(f.Dir(), "new", key), filepath.Join(f.Dir(), "cur", key+":2,")); err != nil {
		t.Fatal(err)
	}
	s := mustSync(t, f)
	checkSnapshot(t, s)
	if len(s.Messages) != 1 || s.Messages[0].Key != key {
		t.Fatalf("after a half-done move: %+v, want the one message under its key", s.Messages)
	}
	if names, _ := listMessages(filepath.Join(f.Dir(), "new")); len(names) != 0 {
		t.Fatalf("new/ still holds %v", names)
	}
	if names, _ := listMessages(filepath.Join(f.Dir(), "cur")); len(names) != 1 {
		t.Fatalf("cur/ holds %v, want one name", names)
	}
}

// TestSharedPollBounded: on shared storage a Poll moves at most
// maxPollMoves files from new/ per call, the oldest first, and the next
// polls take the rest, with UIDs in arrival order; a Sync takes all.
func TestSharedPollBounded(t *testing.T) {
	defer SetShared(SharedAuto, DefaultSharedPoll)
	SetShared(SharedOn, 0)
	m := openTest(t)
	f := folder(t, m, "INBOX")
	mustSync(t, f)
	n := 2*maxPollMoves + 5
	for i := 0; i < n; i++ {
		deliver(t, m, "INBOX", fmt.Sprintf("Subject: %d\r\n\r\nx\r\n", i))
	}
	var seen []int
	for try := 0; ; try++ {
		s, err := f.Poll()
		if err != nil {
			t.Fatal(err)
		}
		checkSnapshot(t, s)
		seen = append(seen, len(s.Messages))
		if len(s.Messages) == n {
			break
		}
		if try > 5 {
			t.Fatalf("polls saw %v messages, want %d in the end", seen, n)
		}
	}
	if fmt.Sprint(seen) != fmt.Sprint([]int{maxPollMoves, 2 * maxPollMoves, n}) {
		t.Fatalf("polls saw %v messages, want %d per poll", seen, maxPollMoves)
	}
	s := mustSync(t, f)
	for i, msg := range s.Messages {
		if body := readMsg(t, f, msg.UID); !strings.HasPrefix(body, fmt.Sprintf("Subject: %d\n", i)) {
			t.Fatalf("UID %d holds %q, want subject %d (UIDs in arrival order)", msg.UID, body, i)
		}
	}

	// A Sync moves everything at once.
	for i := 0; i < maxPollMoves+3; i++ {
		deliver(t, m, "INBOX", "Subject: more\r\n\r\nx\r\n")
	}
	if s := mustSync(t, f); len(s.Messages) != n+maxPollMoves+3 {
		t.Fatalf("Sync saw %d messages, want %d", len(s.Messages), n+maxPollMoves+3)
	}
}
