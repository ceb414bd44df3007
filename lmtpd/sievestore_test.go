package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSieveStoreCrashStates: what a crash can leave between the steps of
// sievestore.go's writes is read correctly and repaired by the next
// command: a stale temporary script, a stale temporary link, a rename
// interrupted after the link (both names, the active one the new), and an
// active link whose script is gone.
func TestSieveStoreCrashStates(t *testing.T) {
	dir := t.TempDir()
	tmpl := filepath.Join(dir, "%d/%n/sieve/active.sieve")
	st, err := openSieveStore(tmpl, "demo@example.test", 1000, 5)
	if err != nil {
		t.Fatal(err)
	}
	names := func() string {
		t.Helper()
		all, err := st.list()
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, s := range all {
			n := s.name
			if s.active {
				n += "*"
			}
			out = append(out, n)
		}
		return strings.Join(out, ",")
	}
	// A crash inside PUTSCRIPT, before the rename.
	os.WriteFile(filepath.Join(st.dir, "a.sieve.tmp"), []byte("kee"), 0o600)
	if got := names(); got != "" {
		t.Errorf("a torn temporary script is listed: %q", got)
	}
	if err := st.put("a", []byte("keep;")); err != nil {
		t.Fatal(err)
	}
	// A crash inside SETACTIVE, before the rename of the link.
	os.Symlink("scripts/zz.sieve", filepath.Join(filepath.Dir(st.active), ".active.tmp"))
	if got := names(); got != "a" {
		t.Errorf("after a stale link: %q", got)
	}
	if err := st.activate("a"); err != nil {
		t.Fatal(err)
	}
	if got := names(); got != "a*" {
		t.Errorf("after SETACTIVE: %q", got)
	}
	// A crash inside RENAMESCRIPT of the active script, after the link
	// moved and before the old name was removed: both names, the new one
	// active; the old one can be deleted.
	os.Link(st.path("a"), st.path("b"))
	if err := st.setActive("b"); err != nil {
		t.Fatal(err)
	}
	if got := names(); got != "a,b*" {
		t.Errorf("after an interrupted rename: %q", got)
	}
	if err := st.remove("a"); err != nil {
		t.Errorf("delete the old name: %v", err)
	}
	// The active script removed behind the store's back (by an admin):
	// lmtpd finds no script, the user sees none active and can set one.
	os.Remove(st.path("b"))
	if got := names(); got != "" {
		t.Errorf("after the active script vanished: %q", got)
	}
	if _, err := os.Stat(st.active); !os.IsNotExist(err) {
		t.Errorf("the dangling link opens: %v", err)
	}
	if err := st.put("c", []byte("keep;")); err != nil {
		t.Fatal(err)
	}
	if err := st.activate("c"); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(st.active); err != nil || string(b) != "keep;" {
		t.Errorf("active.sieve reads %q, %v", b, err)
	}
}
