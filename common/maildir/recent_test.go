package maildir

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// helperClaim claims the recent messages of INBOX in a process of its
// own, as another imapd's SELECT would, and prints their UIDs.
func helperClaim() error {
	f, err := helperInbox()
	if err != nil {
		return err
	}
	_, uids, err := f.ClaimRecent()
	if err != nil {
		return err
	}
	for _, u := range uids {
		fmt.Println(u)
	}
	return nil
}

// compactNow rewrites f's index whole, as a compaction does.
func compactNow(t *testing.T, f *Folder) {
	t.Helper()
	st := f.st
	st.mu.Lock()
	defer st.mu.Unlock()
	release, err := st.lockIndex()
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	if err := st.compact(); err != nil {
		t.Fatal(err)
	}
}

func parseUIDLines(t *testing.T, out []byte) []uint32 {
	t.Helper()
	var uids []uint32
	for _, l := range strings.Fields(string(out)) {
		var u uint32
		if _, err := fmt.Sscan(l, &u); err != nil {
			t.Fatalf("helper output %q", out)
		}
		uids = append(uids, u)
	}
	return uids
}

// TestClaimRecent: RFC 3501 2.3.2: a message is recent in exactly one
// session. The first claim takes every message, the next none; new mail
// is recent again, and STATUS RECENT (NumRecent) counts what is unclaimed.
func TestClaimRecent(t *testing.T) {
	m := openTest(t)
	for i := 0; i < 3; i++ {
		deliver(t, m, "INBOX", fmt.Sprintf("Subject: %d\r\n\r\nx\r\n", i))
	}
	f := folder(t, m, "INBOX")
	if n := mustSync(t, f).NumRecent(); n != 3 {
		t.Fatalf("NumRecent before any claim = %d, want 3", n)
	}
	s, uids, err := f.ClaimRecent()
	if err != nil || !slices.Equal(uids, []uint32{1, 2, 3}) {
		t.Fatalf("first claim = %v, %v; want [1 2 3]", uids, err)
	}
	if s.NumRecent() != 0 || s.FirstRecent != 4 {
		t.Errorf("after claim: NumRecent %d FirstRecent %d", s.NumRecent(), s.FirstRecent)
	}
	if _, uids, err := f.ClaimRecent(); err != nil || len(uids) != 0 {
		t.Fatalf("second claim = %v, %v; want none", uids, err)
	}
	deliver(t, m, "INBOX", "Subject: 4\r\n\r\nx\r\n")
	if n := mustSync(t, f).NumRecent(); n != 1 {
		t.Errorf("NumRecent after new mail = %d, want 1", n)
	}
	if _, uids, err := f.ClaimRecent(); err != nil || !slices.Equal(uids, []uint32{4}) {
		t.Fatalf("claim of new mail = %v, %v; want [4]", uids, err)
	}

	// The mark survives a fresh process reading index and log.
	forgetState(f.Dir())
	f2 := folder(t, m, "INBOX")
	if n := mustSync(t, f2).NumRecent(); n != 0 {
		t.Errorf("NumRecent in a fresh process = %d, want 0", n)
	}
	// And a compaction (the whole index rewritten) keeps it.
	compactNow(t, f2)
	forgetState(f.Dir())
	if n := mustSync(t, folder(t, m, "INBOX")).NumRecent(); n != 0 {
		t.Errorf("NumRecent after compaction = %d, want 0", n)
	}
	data, _ := os.ReadFile(filepath.Join(f.Dir(), indexName))
	if !strings.Contains(strings.SplitN(string(data), "\n", 2)[0], " F5") {
		t.Errorf("index header lacks F5: %q", strings.SplitN(string(data), "\n", 2)[0])
	}
}

// TestClaimRecentOtherProcess: messages claimed by another process (another
// imapd) are not recent here, and racing claimers never share a UID.
func TestClaimRecentOtherProcess(t *testing.T) {
	root := filepath.Join(t.TempDir(), "Maildir")
	m, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	f := folder(t, m, "INBOX")
	deliver(t, m, "INBOX", "Subject: a\r\n\r\nx\r\n")
	if _, uids, err := f.ClaimRecent(); err != nil || len(uids) != 1 {
		t.Fatalf("claim = %v, %v", uids, err)
	}
	deliver(t, m, "INBOX", "Subject: b\r\n\r\nx\r\n")
	deliver(t, m, "INBOX", "Subject: c\r\n\r\nx\r\n")
	out, err := helperCmd(t, "claim", "ROOT="+root).Output()
	if err != nil {
		t.Fatalf("helper: %v", err)
	}
	if got := parseUIDLines(t, out); !slices.Equal(got, []uint32{2, 3}) {
		t.Fatalf("other process claimed %v, want [2 3]", got)
	}
	s, uids, err := f.ClaimRecent()
	if err != nil || len(uids) != 0 || s.NumRecent() != 0 {
		t.Fatalf("after the other process's claim: %v, %v, NumRecent %d", uids, err, s.NumRecent())
	}

	// Four processes race for 20 new messages: each UID goes to exactly
	// one of them (or to this process, claiming last).
	for i := 0; i < 20; i++ {
		deliver(t, m, "INBOX", fmt.Sprintf("Subject: %d\r\n\r\nx\r\n", i))
	}
	var (
		mu  sync.Mutex
		all []uint32
		wg  sync.WaitGroup
	)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := helperCmd(t, "claim", "ROOT="+root).Output()
			if err != nil {
				t.Errorf("helper: %v", err)
				return
			}
			mu.Lock()
			all = append(all, parseUIDLines(t, out)...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	_, mine, err := f.ClaimRecent()
	if err != nil {
		t.Fatal(err)
	}
	all = append(all, mine...)
	slices.Sort(all)
	want := make([]uint32, 20)
	for i := range want {
		want[i] = uint32(4 + i)
	}
	if !slices.Equal(all, want) {
		t.Fatalf("claimed UIDs %v, want each of 4..23 exactly once", all)
	}
}

// TestRecentOldIndex: an index written before the F field is read, with
// nothing recent; mail arriving after it is recent.
func TestRecentOldIndex(t *testing.T) {
	m := openTest(t)
	deliver(t, m, "INBOX", "Subject: a\r\n\r\nx\r\n")
	f := folder(t, m, "INBOX")
	mustSync(t, f)
	st := f.st
	compactNow(t, f)
	p := filepath.Join(f.Dir(), indexName)
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	hdr, rest, _ := strings.Cut(string(data), "\n")
	old := hdr[:strings.LastIndex(hdr, " F")]
	if err := os.WriteFile(p, []byte(old+"\n"+rest), 0o600); err != nil {
		t.Fatal(err)
	}
	forgetState(f.Dir())
	f = folder(t, m, "INBOX")
	s := mustSync(t, f)
	if len(s.Messages) != 1 || s.UIDValidity != st.idx.uidValidity {
		t.Fatalf("old index not read: %d messages, UIDVALIDITY %d", len(s.Messages), s.UIDValidity)
	}
	if s.NumRecent() != 0 {
		t.Errorf("NumRecent of an old index = %d, want 0", s.NumRecent())
	}
	deliver(t, m, "INBOX", "Subject: b\r\n\r\nx\r\n")
	// A claim takes what has a UID: the Sync gives the new message one.
	mustSync(t, f)
	if _, uids, err := f.ClaimRecent(); err != nil || !slices.Equal(uids, []uint32{2}) {
		t.Fatalf("claim after old index = %v, %v; want [2]", uids, err)
	}
}

// TestDefaultFoldersSubscribed: the special-use folders Open creates are
// subscribed, once: an unsubscribe survives the next Open, and a folder
// Open creates again (the user deleted it) is subscribed again.
func TestDefaultFoldersSubscribed(t *testing.T) {
	root := filepath.Join(t.TempDir(), "Maildir")
	m, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	subs, err := m.Subscriptions()
	if err != nil || !slices.Equal(subs, []string{"Archive", "Drafts", "Junk", "Sent", "Trash"}) {
		t.Fatalf("subscriptions after first Open = %v, %v", subs, err)
	}
	if err := m.Unsubscribe("Junk"); err != nil {
		t.Fatal(err)
	}
	if err := m.Delete("Archive"); err != nil {
		t.Fatal(err)
	}
	if err := m.Unsubscribe("Archive"); err != nil {
		t.Fatal(err)
	}
	// Another process (lmtpd, pop3d) opens the tree.
	out, err := helperCmd(t, "claim", "ROOT="+root).Output()
	if err != nil {
		t.Fatalf("helper: %v %s", err, out)
	}
	m2, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	subs, err = m2.Subscriptions()
	if err != nil || !slices.Equal(subs, []string{"Archive", "Drafts", "Sent", "Trash"}) {
		t.Fatalf("subscriptions after unsubscribe and reopen = %v, %v (want Junk to stay unsubscribed, Archive recreated and subscribed)", subs, err)
	}
}
