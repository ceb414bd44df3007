package main

import (
	"slices"
	"strings"
	"testing"

	"tern/common/maildir"
)

// TestUIDLStable: RFC 1939 7, a message's unique-id is the same in every
// session: after a restart of the server and after its flags changed
// through the store (what imapd does), which renames its file.
func TestUIDLStable(t *testing.T) {
	env := newEnv(t)
	env.deliver(t, "demo@example.test", 20)
	ts := env.start(t)
	first := uidlList(t, ts.addr)
	if len(first) != 20 {
		t.Fatalf("UIDL lists %d messages", len(first))
	}
	seen := map[string]bool{}
	for _, id := range first {
		if !validUIDL(id) || seen[id] {
			t.Errorf("bad or duplicate unique-id %q", id)
		}
		seen[id] = true
	}

	ts.stop()
	ts = env.start(t)
	if again := uidlList(t, ts.addr); !slices.Equal(again, first) {
		t.Errorf("UIDL changed across a restart:\n%q\n%q", first, again)
	}

	mb, err := maildir.Open(env.root(t, "demo@example.test"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := mb.Folder("INBOX")
	if err != nil {
		t.Fatal(err)
	}
	snap, err := f.Sync()
	if err != nil {
		t.Fatal(err)
	}
	var uids []uint32
	for _, m := range snap.Messages {
		uids = append(uids, m.UID)
	}
	if _, _, err := f.SetFlags(uids, maildir.FlagsAdd, []string{`\Seen`, `\Flagged`, "$Label1"}, 0); err != nil {
		t.Fatal(err)
	}
	if again := uidlList(t, ts.addr); !slices.Equal(again, first) {
		t.Errorf("UIDL changed after a flag change:\n%q\n%q", first, again)
	}
}

func TestUIDLOf(t *testing.T) {
	for _, key := range []string{
		"1700000000.M1P2Q3R4.host,S=123",
		strings.Repeat("a", 70),
	} {
		if got := uidlOf(key); got != key {
			t.Errorf("uidlOf(%q) = %q, want the key itself", key, got)
		}
	}
	seen := map[string]bool{}
	for _, key := range []string{
		strings.Repeat("a", 71),
		"1700000000.M1P2.h\u00f6st,S=1",
		"key with space",
		"",
		"tab\there",
	} {
		got := uidlOf(key)
		if !validUIDL(got) || !strings.HasPrefix(got, "/") {
			t.Errorf("uidlOf(%q) = %q, not a mapped valid unique-id", key, got)
		}
		if uidlOf(key) != got {
			t.Errorf("uidlOf(%q) is not stable", key)
		}
		if seen[got] {
			t.Errorf("uidlOf(%q) = %q collides", key, got)
		}
		seen[got] = true
	}
}
