package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"tern/common/dkim"
)

// TestDKIMKeygen: `mailq -dkim-keygen` writes a private key smtpd can
// load and prints the zone line of its public half; it never replaces a
// key and refuses a domain that is not local.
func TestDKIMKeygen(t *testing.T) {
	e := newEnv(t)
	keyDir := filepath.Join(e.dir, "dkim")
	f, err := os.OpenFile(e.config, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("[dkim]\nselector = \"mail2026\"\nkey = \"" + filepath.Join(keyDir, "%d.pem") + "\"\n")
	f.Close()

	for _, alg := range []string{"ed25519", "rsa"} {
		path := filepath.Join(keyDir, "example.test.pem")
		os.Remove(path)
		r := e.mailq("-dkim-keygen", "example.test", "-dkim-alg", alg)
		if r.code != 0 {
			t.Fatalf("%s: exit %d: %s", alg, r.code, r.stderr)
		}
		key, err := dkim.LoadKey(path)
		if err != nil {
			t.Fatalf("%s: the key written does not load: %v", alg, err)
		}
		st, _ := os.Stat(path)
		if st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: key mode %v", alg, st.Mode())
		}
		rec, _ := dkim.TXTRecord(key)
		if !strings.Contains(r.stdout, "mail2026._domainkey.example.test. IN TXT ( \"") {
			t.Fatalf("%s: no zone line:\n%s", alg, r.stdout)
		}
		// The quoted strings of the zone line, joined, are the record.
		var joined strings.Builder
		zone := r.stdout[strings.Index(r.stdout, "mail2026._domainkey"):]
		parts := strings.Split(zone[strings.Index(zone, "(")+1:], "\"")
		for i := 1; i < len(parts); i += 2 {
			joined.WriteString(parts[i])
		}
		if joined.String() != rec {
			t.Fatalf("%s: printed record %q, key's record %q", alg, joined.String(), rec)
		}
	}
	if r := e.mailq("-dkim-keygen", "example.test"); r.code == 0 || !strings.Contains(r.stderr, "exists") {
		t.Fatalf("an existing key was replaced: %d %s", r.code, r.stderr)
	}
	if r := e.mailq("-dkim-keygen", "elsewhere.test"); r.code != exUsage {
		t.Fatalf("a non-local domain: exit %d %s", r.code, r.stderr)
	}
	if r := e.mailq("-dkim-keygen", "example.test", "-dkim-alg", "dsa"); r.code != exUsage {
		t.Fatalf("a bad algorithm: exit %d %s", r.code, r.stderr)
	}
}
