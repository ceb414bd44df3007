package tlsconf

import (
	"crypto/tls"
	"path/filepath"
	"sync"
	"testing"

	"tern/common/config"
)

func TestGenerateOnceUnderConcurrency(t *testing.T) {
	dir := t.TempDir()
	c := config.TLS{Cert: filepath.Join(dir, "tls", "c.pem"), Key: filepath.Join(dir, "tls", "k.pem"), Generate: true}
	// Four daemons start at once under `make run`; all must end up with the
	// same, matching pair.
	var wg sync.WaitGroup
	certs := make([][]byte, 4)
	for i := range certs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tc, err := Load(c, "mail.example.test")
			if err != nil {
				t.Error(err)
				return
			}
			cert, err := tc.GetCertificate(&tls.ClientHelloInfo{})
			if err != nil {
				t.Error(err)
				return
			}
			certs[i] = cert.Certificate[0]
		}()
	}
	wg.Wait()
	for i := 1; i < len(certs); i++ {
		if string(certs[i]) != string(certs[0]) {
			t.Fatal("daemons loaded different certificates")
		}
	}
}

func TestMissingCertIsAnError(t *testing.T) {
	dir := t.TempDir()
	_, err := Load(config.TLS{Cert: filepath.Join(dir, "c"), Key: filepath.Join(dir, "k")}, "x")
	if err == nil {
		t.Fatal("no error for missing certificate")
	}
}

func TestOnlyModernVersions(t *testing.T) {
	dir := t.TempDir()
	tc, err := Load(config.TLS{Cert: filepath.Join(dir, "c"), Key: filepath.Join(dir, "k"), Generate: true}, "x")
	if err != nil {
		t.Fatal(err)
	}
	if tc.MinVersion != tls.VersionTLS12 {
		t.Errorf("MinVersion = %x", tc.MinVersion)
	}
}
