package maildir

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// hostileNames are folder names a client may send (after modified UTF-7
// decoding by imapd, or raw with UTF8=ACCEPT).
var hostileNames = []string{
	"", ".", "..", "...", "../", "../outside", "../../etc/passwd", "/", "/etc", "/tmp/x",
	"a/b", "a/../..", `..\..`, `\`, `a\b`, "\x00", "a\x00b", "INBOX/../..", "INBOX/..", "INBOX.",
	".hidden", "trailing.", "a..b", ".a.b", "tmp", "new", "cur", "TMP", "Cur", "x.tmp",
	"x.new.y", "cur.x", "evil", "evil.x", "evil2", "evil2.sub", "Planted", "\r\n", "a\rb", "a\nb",
	"\t", "\x7f", "\x1b[31mred", "a\u0085b", "\u2028", "%", "*", "a%b", "a*", strings.Repeat("a", 300),
	strings.Repeat("ü", 120), strings.Repeat("a.", 200) + "a", "\xff\xfe", "\xc0\xae\xc0\xae", "\xed\xa0\x80",
	"．．", "．．／etc", "&AC4ALgAv-", "~", "~root", "$HOME", "`id`", " ", "  ..  ", "..\u200b",
	"\u202e..", "..tern-deleted.x", "Sent..", "inbox/", "dovecot-uidlist", "tern-index", "maildirfolder",
}

// Acceptance: at least 60 hostile folder names create or read nothing
// outside the user's Maildir (checked with canary files), and symlinks
// planted in the tree are not followed.
func TestNameSafety(t *testing.T) {
	if len(hostileNames) < 60 {
		t.Fatalf("only %d hostile names", len(hostileNames))
	}
	base := t.TempDir()
	outside := filepath.Join(base, "outside")
	os.MkdirAll(filepath.Join(outside, "dir", "cur"), 0o700)
	os.MkdirAll(filepath.Join(outside, "dir", "new"), 0o700)
	os.MkdirAll(filepath.Join(outside, "dir", "tmp"), 0o700)
	for _, p := range []string{"canary", "dir/canary", "dir/cur/1.canary.host:2,S"} {
		if err := os.WriteFile(filepath.Join(outside, p), []byte("canary "+p), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	root := filepath.Join(base, "Maildir")
	m, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	// Planted symlinks: folders pointing outside, and a real folder whose
	// cur/ points outside.
	os.Symlink("../outside/dir", filepath.Join(root, ".evil"))
	os.Symlink(filepath.Join(outside, "dir"), filepath.Join(root, ".evil2"))
	os.Mkdir(filepath.Join(root, ".Planted"), 0o700)
	os.Symlink(filepath.Join(outside, "dir", "cur"), filepath.Join(root, ".Planted", "cur"))
	os.Mkdir(filepath.Join(root, ".Planted", "new"), 0o700)
	os.Mkdir(filepath.Join(root, ".Planted", "tmp"), 0o700)
	if err := m.Create("Work"); err != nil {
		t.Fatal(err)
	}
	before := treeState(t, base, root)

	accepted := 0
	for _, raw := range hostileNames {
		names := []string{raw}
		if d, err := DecodeMUTF7(raw); err == nil && d != raw {
			names = append(names, d)
		}
		for _, name := range names {
			errs := map[string]error{}
			errs["Create"] = m.Create(name)
			f, ferr := m.Folder(name)
			errs["Folder"] = ferr
			if ferr == nil {
				_, errs["Append"] = f.Append(strings.NewReader("x"), nil, time.Time{})
				_, errs["Sync"] = f.Sync()
			}
			_, _, errs["Deliver"] = m.Deliver(name, strings.NewReader("y"), nil)
			errs["Subscribe"] = m.Subscribe(name)
			errs["RenameTo"] = m.Rename("Work", name)
			if errs["RenameTo"] == nil {
				errs["RenameBack"] = m.Rename(name, "Work")
			}
			errs["RenameFrom"] = m.Rename(name, "Other")
			if errs["RenameFrom"] == nil {
				m.Rename("Other", name)
			}
			errs["Delete"] = m.Delete(name)
			if ferr == nil {
				accepted++
				// An accepted name lives directly under root.
				if dir := f.Dir(); dir != root && filepath.Dir(dir) != root {
					t.Errorf("name %q maps to %q, outside %q", name, dir, root)
				}
			}
			for op, err := range errs {
				if err != nil && !errors.Is(err, ErrInvalidName) && !errors.Is(err, ErrNotFound) &&
					!errors.Is(err, ErrExists) && !errors.Is(err, ErrHasChildren) {
					t.Errorf("%s(%q): unexpected error %v", op, name, err)
				}
			}
			for _, op := range []string{"Folder", "Deliver"} {
				if errs[op] == nil && (strings.HasPrefix(name, "evil") || name == "Planted") {
					t.Errorf("%s(%q) followed a planted symlink", op, name)
				}
			}
		}
	}
	after := treeState(t, base, root)
	if !reflect.DeepEqual(before, after) {
		for p, s := range after {
			if before[p] != s {
				t.Errorf("outside the Maildir: %s changed or appeared: %s", p, s)
			}
		}
		for p := range before {
			if _, ok := after[p]; !ok {
				t.Errorf("outside the Maildir: %s disappeared", p)
			}
		}
	}
	// List shows neither the symlinked folders nor undecodable names.
	list, _ := m.List()
	for _, fi := range list {
		if strings.HasPrefix(fi.Name, "evil") {
			t.Errorf("List shows planted symlink %q", fi.Name)
		}
	}
	t.Logf("%d hostile names, %d accepted as harmless folder names", len(hostileNames), accepted)
}

// treeState records every path outside root under base with its content.
func treeState(t *testing.T, base, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if p == root {
			return filepath.SkipDir
		}
		fi, _ := d.Info()
		s := fi.Mode().String()
		if fi.Mode().IsRegular() {
			data, _ := os.ReadFile(p)
			s += " " + string(data)
		}
		out[p] = s + " " + fi.ModTime().String()
		return nil
	})
	return out
}

func TestValidateName(t *testing.T) {
	for _, ok := range []string{"INBOX", "inbox", "Sent", "Archive.2024", "Ünïcødé", "a b", "&", "Tëst.Sub.Deep", "．．"} {
		if err := ValidateName(ok); err != nil {
			t.Errorf("ValidateName(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "..", "a/b", "a..b", ".a", "a.", "tmp", "x.cur", "a\x00", "\xff", "*", "%", strings.Repeat("x", 256)} {
		if err := ValidateName(bad); !errors.Is(err, ErrInvalidName) {
			t.Errorf("ValidateName(%q) = %v, want ErrInvalidName", bad, err)
		}
	}
}

func TestMUTF7(t *testing.T) {
	for _, c := range []struct{ utf8, mutf7 string }{
		{"INBOX", "INBOX"},
		{"&", "&-"},
		{"Ünï", "&ANw-n&AO8-"},
		{"日本語", "&ZeVnLIqe-"},
		{"~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"},
		{"😀", "&2D3eAA-"},
		{"a&b", "a&-b"},
	} {
		if got := EncodeMUTF7(c.utf8); got != c.mutf7 {
			t.Errorf("EncodeMUTF7(%q) = %q, want %q", c.utf8, got, c.mutf7)
		}
		if got, err := DecodeMUTF7(c.mutf7); err != nil || got != c.utf8 {
			t.Errorf("DecodeMUTF7(%q) = %q, %v", c.mutf7, got, err)
		}
	}
	for _, bad := range []string{"&", "&AGE-", "&ZeVnLIqe", "&Ze-&Vn-", "&2D0-", "é", "&ZeVnLIq-", "\x00", "&ANw-&AO8-"} {
		if got, err := DecodeMUTF7(bad); err == nil {
			t.Errorf("DecodeMUTF7(%q) = %q, want an error", bad, got)
		}
	}
}
