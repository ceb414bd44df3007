package main

import (
	"os"
	"path/filepath"
	"testing"

	"tern/test/peer"
)

// addDovecotFolder makes the Maildir++ folder name (".name" beside the
// INBOX) of a Dovecot instance, holding one message file with the given
// content, owned by Dovecot's user.
func addDovecotFolder(t *testing.T, d *peer.Dovecot, name, file string, content []byte) {
	t.Helper()
	dir := filepath.Join(d.Maildir, "."+name)
	for _, sub := range []string{"", "cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			t.Fatal(err)
		}
		os.Chown(filepath.Join(dir, sub), d.UID, d.GID)
	}
	p := filepath.Join(dir, "cur", file)
	if err := os.WriteFile(p, content, 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chown(p, d.UID, d.GID)
}
