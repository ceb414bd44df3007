// Package tlsconf builds the TLS configuration every listener shares from
// the [tls] section of tern.toml.
//
// The certificate is re-read when its files change (checked at most once a
// second, at handshake time), so a renewed certificate reaches new
// connections without a restart and open sessions are left alone.
//
// With [tls] acme, webd writes the files; until it has obtained the first
// certificate, every daemon serves a self-signed one made in memory, and
// switches to the real one as soon as the files appear.
package tlsconf

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"tern/common/config"
	"tern/common/reload"
	"tern/common/safeio"
)

// Load returns a server TLS configuration: TLS 1.2 and 1.3 only, with the
// certificate of c. With c.Generate, a self-signed certificate for hostname
// is made first when the files do not exist.
func Load(c config.TLS, hostname string) (*tls.Config, error) {
	if c.Generate {
		if err := ensureSelfSigned(c.Cert, c.Key, hostname); err != nil {
			return nil, err
		}
	}
	s := &store{certFile: c.Cert, keyFile: c.Key}
	if _, err := s.get(); err != nil {
		if !c.ACME.Enabled() {
			return nil, err
		}
		if s.placeholder, err = selfSigned(hostname); err != nil {
			return nil, err
		}
	}
	reload.Register(s, (*store).reload)
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		// Go's default TLS 1.2 suites are already AEAD with forward secrecy
		// first; listing them pins that choice against future defaults.
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
			tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return s.get() },
	}, nil
}

// store holds the loaded certificate and reloads it when the files change.
type store struct {
	certFile, keyFile string

	// placeholder is served while the ACME certificate does not exist yet.
	placeholder *tls.Certificate

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   string
	checked time.Time
}

func (s *store) get() (*tls.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cert != nil && time.Since(s.checked) < time.Second {
		return s.cert, nil
	}
	s.checked = time.Now()
	stamp := fileStamp(s.certFile) + "|" + fileStamp(s.keyFile)
	if s.cert != nil && stamp == s.stamp {
		return s.cert, nil
	}
	cert, err := tls.LoadX509KeyPair(s.certFile, s.keyFile)
	if err != nil {
		if s.cert != nil {
			// A half-replaced pair (new cert, old key) must not break
			// service: keep the last good one and retry next time.
			return s.cert, nil
		}
		if s.placeholder != nil {
			return s.placeholder, nil
		}
		return nil, fmt.Errorf("load certificate %s: %w", s.certFile, err)
	}
	s.cert, s.stamp = &cert, stamp
	return s.cert, nil
}

// reload makes the next handshake re-check the files (SIGHUP).
func (s *store) reload() {
	s.mu.Lock()
	s.checked = time.Time{}
	s.mu.Unlock()
	s.get()
}

func fileStamp(path string) string {
	fi, err := os.Stat(path)
	if err != nil {
		return "-"
	}
	return fmt.Sprintf("%d/%d", fi.ModTime().UnixNano(), fi.Size())
}

// ensureSelfSigned makes a self-signed certificate at certFile/keyFile when
// they are missing. Several daemons start at once under `make run`, so the
// work is done under an exclusive lock and each file is written atomically.
func ensureSelfSigned(certFile, keyFile, hostname string) error {
	if err := os.MkdirAll(filepath.Dir(certFile), 0o755); err != nil {
		return fmt.Errorf("make certificate dir: %w", err)
	}
	lock, err := os.OpenFile(certFile+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("lock certificate: %w", err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return fmt.Errorf("lock certificate: %w", err)
	}
	defer unix.Flock(int(lock.Fd()), unix.LOCK_UN)
	if _, err := tls.LoadX509KeyPair(certFile, keyFile); err == nil {
		return nil
	}

	cert, err := selfSigned(hostname)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		return fmt.Errorf("marshal key: %w", err)
	}
	if err := writeFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return err
	}
	return writeFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o644)
}

// selfSigned makes a self-signed certificate for hostname and localhost.
func selfSigned(hostname string) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: hostname},
		DNSNames:     []string{hostname, "localhost"},
		// Clients told to connect to 127.0.0.1 or ::1 (the demo, a
		// test) check the address against the certificate's IP
		// names (RFC 6125 6.2.1 leaves IP identities to the SAN's
		// iPAddress); msmtp, mpop and offlineimap refuse without them.
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().AddDate(5, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("create certificate: %w", err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

func writeFile(path string, data []byte, mode os.FileMode) error {
	return safeio.WriteFile(path, data, mode)
}
