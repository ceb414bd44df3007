package dkim

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	msgdkim "github.com/emersion/go-msgauth/dkim"
)

const testHeader = "From: Alice <alice@example.test>\r\nTo: bob@remote.test\r\nSubject: hello\r\nDate: Mon, 02 Jan 2006 15:04:05 +0000\r\nMessage-ID: <1@example.test>\r\n"
const testBody = "Hi Bob,\r\n\r\nsee you.\r\n"

// TestSignVerifies signs with each algorithm and verifies with
// go-msgauth's verifier against the record TXTRecord publishes.
func TestSignVerifies(t *testing.T) {
	for _, alg := range []string{"ed25519", "rsa"} {
		t.Run(alg, func(t *testing.T) {
			key, pemData, err := GenerateKey(alg)
			if err != nil {
				t.Fatal(err)
			}
			parsed, err := ParseKey(pemData)
			if err != nil {
				t.Fatalf("ParseKey of our own key: %v", err)
			}
			if !bytes.Equal(mustTXTBytes(t, parsed), mustTXTBytes(t, key)) {
				t.Fatal("parsed key differs from the generated one")
			}
			sig, err := Sign([]byte(testHeader), strings.NewReader(testBody), "example.test", "tern", parsed,
				[]string{"From", "To", "Subject", "Date", "Message-ID", "Cc"})
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(sig, "DKIM-Signature: ") || !strings.HasSuffix(sig, "\r\n") {
				t.Fatalf("signature field %q", sig)
			}
			wantA := map[string]string{"ed25519": "a=ed25519-sha256", "rsa": "a=rsa-sha256"}[alg]
			if !strings.Contains(sig, wantA) || !strings.Contains(sig, "c=relaxed/relaxed") {
				t.Fatalf("signature %q lacks %s or relaxed canonicalization", sig, wantA)
			}
			// From is over-signed; Cc, absent, is not listed.
			_, h, _ := strings.Cut(sig, " h=")
			h, _, _ = strings.Cut(h, ";")
			if h != "From:From:To:Subject:Date:Message-ID" {
				t.Fatalf("h= of %q: want From twice and no Cc", sig)
			}
			record := mustTXT(t, key)
			opts := &msgdkim.VerifyOptions{LookupTXT: func(name string) ([]string, error) {
				if name != "tern._domainkey.example.test" {
					t.Errorf("lookup of %q", name)
				}
				return []string{record}, nil
			}}
			msg := sig + testHeader + "\r\n" + testBody
			vs, err := msgdkim.VerifyWithOptions(strings.NewReader(msg), opts)
			if err != nil || len(vs) != 1 || vs[0].Err != nil || vs[0].Domain != "example.test" {
				t.Fatalf("verify: %v %+v", err, vs)
			}
			// A changed body no longer verifies.
			vs, _ = msgdkim.VerifyWithOptions(strings.NewReader(msg+"P.S.\r\n"), opts)
			if len(vs) != 1 || vs[0].Err == nil {
				t.Fatal("a changed body still verifies")
			}
			// Nor does an added From field.
			vs, _ = msgdkim.VerifyWithOptions(strings.NewReader("From: mallory@evil.test\r\n"+msg), opts)
			if len(vs) != 1 || vs[0].Err == nil {
				t.Fatal("an added From field still verifies")
			}
		})
	}
}

func mustTXT(t *testing.T, k crypto.Signer) string {
	t.Helper()
	s, err := TXTRecord(k)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustTXTBytes(t *testing.T, k crypto.Signer) []byte { return []byte(mustTXT(t, k)) }

func TestTXTRecord(t *testing.T) {
	ek, _, _ := GenerateKey("ed25519")
	rec := mustTXT(t, ek)
	if !strings.HasPrefix(rec, "v=DKIM1; k=ed25519; p=") || len(rec) != len("v=DKIM1; k=ed25519; p=")+44 {
		t.Fatalf("ed25519 record %q", rec)
	}
	rk, _, _ := GenerateKey("rsa")
	if rk.(*rsa.PrivateKey).N.BitLen() != RSABits {
		t.Fatal("RSA key size")
	}
	rec = mustTXT(t, rk)
	if !strings.HasPrefix(rec, "v=DKIM1; k=rsa; p=MIIB") {
		t.Fatalf("rsa record %q", rec)
	}
	zl := ZoneLines("tern", "example.test", rec)
	if !strings.HasPrefix(zl, "tern._domainkey.example.test. IN TXT ( \"") {
		t.Fatalf("zone line %q", zl)
	}
	for _, part := range strings.Split(zl, "\"")[1:] {
		if len(part) > 255 {
			t.Fatalf("character-string of %d bytes (RFC 1035 3.3.14: at most 255)", len(part))
		}
	}
	if strings.ReplaceAll(strings.Join(strings.Split(zl, "\"")[1:], ""), "\n\t", "") == "" {
		t.Fatal("empty zone line")
	}
	if _, _, err := GenerateKey("dsa"); !errors.Is(err, ErrBadKey) {
		t.Fatalf("GenerateKey(dsa): %v", err)
	}
}

// TestWriteAndLoadKey: the key file is private, never overwritten, and a
// missing one is ErrNoKey.
func TestWriteAndLoadKey(t *testing.T) {
	dir := t.TempDir()
	path := KeyPath(filepath.Join(dir, "%d.key"), "Example.TEST")
	if path != filepath.Join(dir, "example.test.key") {
		t.Fatalf("KeyPath = %q", path)
	}
	if _, err := LoadKey(path); !errors.Is(err, ErrNoKey) {
		t.Fatalf("LoadKey of a missing file: %v", err)
	}
	key, pemData, err := GenerateKey("ed25519")
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteKey(path, pemData); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v", st.Mode(), err)
	}
	got, err := LoadKey(path)
	if err != nil || !got.(ed25519.PrivateKey).Equal(key) {
		t.Fatalf("LoadKey: %v", err)
	}
	_, other, _ := GenerateKey("ed25519")
	if err := WriteKey(path, other); err == nil {
		t.Fatal("an existing key was overwritten")
	}
	left, _ := filepath.Glob(filepath.Join(dir, ".dkim-*"))
	if len(left) != 0 {
		t.Fatalf("temp files left: %v", left)
	}
	if err := os.WriteFile(path+".bad", []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKey(path + ".bad"); !errors.Is(err, ErrBadKey) {
		t.Fatalf("LoadKey of garbage: %v", err)
	}
}

// FuzzParseKey: key files are read from disk for every message; no input
// may crash the parser, and whatever it accepts can sign.
func FuzzParseKey(f *testing.F) {
	_, ed, _ := GenerateKey("ed25519")
	f.Add(ed)
	f.Add([]byte("-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n"))
	f.Add([]byte("-----BEGIN RSA PRIVATE KEY-----\n\n-----END RSA PRIVATE KEY-----\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := ParseKey(data)
		if err != nil {
			return
		}
		if _, err := TXTRecord(k); err != nil {
			t.Fatalf("accepted key has no record: %v", err)
		}
	})
}
