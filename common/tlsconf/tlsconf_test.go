package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"os"
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

// TestGeneratedCertCoversLoopbackAddresses: the demo tells people to
// connect to 127.0.0.1, and clients such as msmtp and offlineimap verify
// the address against the certificate's IP names. A real handshake on
// loopback, verified against the generated certificate, for each name a
// demo user may type.
func TestGeneratedCertCoversLoopbackAddresses(t *testing.T) {
	dir := t.TempDir()
	c := config.TLS{Cert: filepath.Join(dir, "c.pem"), Key: filepath.Join(dir, "k.pem"), Generate: true}
	tc, err := Load(c, "mail.example.test")
	if err != nil {
		t.Fatal(err)
	}
	pemBytes, err := os.ReadFile(c.Cert)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pemBytes) {
		t.Fatal("generated certificate does not parse")
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", tc)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				conn.(*tls.Conn).Handshake()
				conn.Close()
			}()
		}
	}()
	for _, name := range []string{"127.0.0.1", "::1", "localhost", "mail.example.test"} {
		conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: roots, ServerName: name})
		if err != nil {
			t.Errorf("verify as %q: %v", name, err)
			continue
		}
		conn.Close()
	}
	// And a name it must not cover, so the check above can fail.
	if conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: roots, ServerName: "10.0.0.1"}); err == nil {
		conn.Close()
		t.Error("certificate verified for 10.0.0.1")
	}
}
