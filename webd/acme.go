package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/sys/unix"

	"tern/common/config"
	"tern/common/maillog"
	"tern/common/safeio"
)

// The certificate manager: webd is the one process that obtains and renews
// the certificate of [tls] acme (RFC 8555), with golang.org/x/crypto/acme.
// Files, in state_dir/acme (mode 0750; files 0640, so that the daemons in
// webd's group read them):
//
//	account.key    the ACME account's key (ECDSA P-256, PKCS#8 PEM), made once
//	privkey.pem    the certificate's key
//	fullchain.pem  the certificate and its chain
//	.lock          flock(2) held while the pair is replaced
//
// A new pair is written key first, then certificate, each to a temporary
// file that is fsynced and renamed. common/tlsconf, in every daemon,
// re-reads the pair when the files change and keeps the previous one
// while the two do not match, so a reader sees the old pair or the new
// one. A crash between the two renames leaves a key the certificate does
// not match; the next check finds the certificate no good for the key and
// obtains a new one.

const (
	accountKeyFile = "account.key"
	certFile       = "fullchain.pem"
	keyFile        = "privkey.pem"
	// minRenewCheck keeps a certificate that is already due from making the
	// loop spin when the clock and the certificate disagree.
	minRenewCheck = time.Second
)

// certManager keeps the ACME certificate valid.
type certManager struct {
	cfg        config.ACME
	dir        string
	log        *slog.Logger
	challenges *challenges
	// now is the clock; tests move it.
	now func() time.Time
	// httpClient reaches the CA; its roots are [tls] acme ca when set.
	httpClient *http.Client

	// useHTTP01 picks http-01 (webd.listen set) over tls-alpn-01
	// (webd.tls_listen only).
	useHTTP01 bool

	failures int
}

func newCertManager(cfg *config.Config, ch *challenges, log *slog.Logger) (*certManager, error) {
	m := &certManager{cfg: cfg.TLS.ACME, dir: cfg.ACMEDir(), log: log.With("acme", cfg.TLS.ACME.Directory),
		challenges: ch, now: time.Now, httpClient: http.DefaultClient, useHTTP01: len(cfg.WebD.Listen) > 0}
	if m.cfg.CA != "" {
		pemData, err := os.ReadFile(m.cfg.CA)
		if err != nil {
			return nil, fmt.Errorf("acme ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemData) {
			return nil, fmt.Errorf("acme ca %s: no certificate in it", m.cfg.CA)
		}
		m.httpClient = &http.Client{Timeout: time.Minute,
			Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	}
	if err := os.MkdirAll(m.dir, 0o750); err != nil {
		return nil, fmt.Errorf("acme dir: %w", err)
	}
	return m, nil
}

// run keeps the certificate valid until ctx ends: it checks at once, then
// when the certificate is due, or after a failure with backoff.
func (m *certManager) run(ctx context.Context) {
	for {
		wait := m.step(ctx)
		// Sleep in short slices so that a test's moved clock is noticed; a
		// real clock sleeps the same in total.
		deadline := m.now().Add(wait)
		for m.now().Before(deadline) {
			select {
			case <-ctx.Done():
				return
			case <-time.After(min(deadline.Sub(m.now()), time.Second)):
			}
		}
	}
}

// step obtains a certificate when the current one is missing or due, and
// returns how long to wait before the next step.
func (m *certManager) step(ctx context.Context) time.Duration {
	due, renewAt, why := m.due()
	if !due {
		return max(renewAt.Sub(m.now()), minRenewCheck)
	}
	maillog.ACMEOrder(m.log, m.cfg.Names, why)
	actx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	leaf, err := m.obtain(actx)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return 0
		}
		m.failures++
		wait := min(m.cfg.RetryMin.D()<<min(m.failures-1, 30), m.cfg.RetryMax.D())
		// RFC 8555 6.6: a rate-limited client waits as long as the CA says.
		if ra, ok := acme.RateLimit(err); ok && ra > wait {
			wait = ra
		}
		// One line per failed attempt: the old certificate keeps serving.
		maillog.ACMEFailed(m.log, m.failures, wait, err.Error())
		return wait
	}
	m.failures = 0
	maillog.ACMEIssued(m.log, leaf.DNSNames, leaf.SerialNumber.Text(16), leaf.NotAfter)
	_, renewAt, _ = m.due()
	return max(renewAt.Sub(m.now()), minRenewCheck)
}

// due reports whether the certificate must be obtained now, and if not,
// when it will be due.
func (m *certManager) due() (bool, time.Time, string) {
	pair, err := tls.LoadX509KeyPair(filepath.Join(m.dir, certFile), filepath.Join(m.dir, keyFile))
	if err != nil {
		return true, time.Time{}, "no usable certificate"
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return true, time.Time{}, "certificate does not parse"
	}
	// A self-signed certificate (the demo's, an old placeholder) is
	// replaced by one from the CA.
	if bytes.Equal(leaf.RawIssuer, leaf.RawSubject) && leaf.CheckSignature(leaf.SignatureAlgorithm, leaf.RawTBSCertificate, leaf.Signature) == nil {
		return true, time.Time{}, "self-signed certificate"
	}
	for _, n := range m.cfg.Names {
		if !slices.Contains(leaf.DNSNames, n) {
			return true, time.Time{}, "certificate lacks " + n
		}
	}
	life := leaf.NotAfter.Sub(leaf.NotBefore)
	renewAt := leaf.NotAfter.Add(-min(m.cfg.RenewBefore.D(), life/3))
	if !m.now().Before(renewAt) {
		return true, renewAt, "renewal due"
	}
	return false, renewAt, ""
}

// obtain runs one order (RFC 8555 7.4): account, authorizations by
// http-01, finalization with a new key, download; then writes the pair.
func (m *certManager) obtain(ctx context.Context) (*x509.Certificate, error) {
	key, err := m.accountKey()
	if err != nil {
		return nil, err
	}
	client := &acme.Client{Key: key, DirectoryURL: m.cfg.Directory, HTTPClient: m.httpClient, UserAgent: "tern-webd"}
	acct := &acme.Account{}
	if m.cfg.Email != "" {
		acct.Contact = []string{"mailto:" + m.cfg.Email}
	}
	if _, err := client.Register(ctx, acct, acme.AcceptTOS); err != nil && !errors.Is(err, acme.ErrAccountAlreadyExists) {
		return nil, fmt.Errorf("register account: %w", err)
	}
	order, err := client.AuthorizeOrder(ctx, acme.DomainIDs(m.cfg.Names...))
	if err != nil {
		return nil, fmt.Errorf("new order: %w", err)
	}
	for _, u := range order.AuthzURLs {
		if err := m.authorize(ctx, client, u); err != nil {
			return nil, err
		}
	}
	if order, err = client.WaitOrder(ctx, order.URI); err != nil {
		return nil, fmt.Errorf("order: %w", err)
	}
	certKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: m.cfg.Names[0]}, DNSNames: m.cfg.Names}, certKey)
	if err != nil {
		return nil, fmt.Errorf("csr: %w", err)
	}
	chain, _, err := client.CreateOrderCert(ctx, order.FinalizeURL, csr, true)
	if err != nil {
		return nil, fmt.Errorf("finalize: %w", err)
	}
	leaf, err := x509.ParseCertificate(chain[0])
	if err != nil {
		return nil, fmt.Errorf("issued certificate: %w", err)
	}
	if err := m.writePair(certKey, chain); err != nil {
		return nil, err
	}
	return leaf, nil
}

// authorize proves control of one name by http-01 (RFC 8555 8.3), the key
// authorization served by webd's handler while the CA validates, or,
// when webd has only TLS listeners, by tls-alpn-01 (RFC 8737), a
// challenge certificate presented to the CA's acme-tls/1 handshake.
func (m *certManager) authorize(ctx context.Context, client *acme.Client, url string) error {
	z, err := client.GetAuthorization(ctx, url)
	if err != nil {
		return fmt.Errorf("authorization: %w", err)
	}
	if z.Status == acme.StatusValid {
		return nil
	}
	want := "http-01"
	if !m.useHTTP01 {
		want = "tls-alpn-01"
	}
	var chal *acme.Challenge
	for _, c := range z.Challenges {
		if c.Type == want {
			chal = c
		}
	}
	if chal == nil {
		return fmt.Errorf("%s: the CA offers no %s challenge", z.Identifier.Value, want)
	}
	if m.useHTTP01 {
		keyAuth, err := client.HTTP01ChallengeResponse(chal.Token)
		if err != nil {
			return err
		}
		m.challenges.set(chal.Token, keyAuth)
		defer m.challenges.remove(chal.Token)
	} else {
		cert, err := client.TLSALPN01ChallengeCert(chal.Token, z.Identifier.Value)
		if err != nil {
			return err
		}
		host := strings.ToLower(z.Identifier.Value)
		m.challenges.setALPN(host, &cert)
		defer m.challenges.removeALPN(host)
	}
	m.log.Debug("acme challenge", "name", z.Identifier.Value, "type", want)
	if _, err := client.Accept(ctx, chal); err != nil {
		return fmt.Errorf("%s: accept challenge: %w", z.Identifier.Value, err)
	}
	if _, err := client.WaitAuthorization(ctx, z.URI); err != nil {
		return fmt.Errorf("%s: %w", z.Identifier.Value, err)
	}
	return nil
}

// accountKey loads the account key, making it on first use.
func (m *certManager) accountKey() (crypto.Signer, error) {
	path := filepath.Join(m.dir, accountKeyFile)
	data, err := os.ReadFile(path)
	if err == nil {
		block, _ := pem.Decode(data)
		if block == nil {
			return nil, fmt.Errorf("%s: no PEM block", path)
		}
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("%s: not a signing key", path)
		}
		return s, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("account key: %w", err)
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	if err := writeSecret(m.dir, accountKeyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return nil, err
	}
	m.log.Info("made ACME account key", "path", path)
	return k, nil
}

// writePair replaces the key and certificate, under the lock, key first.
func (m *certManager) writePair(key *ecdsa.PrivateKey, chain [][]byte) error {
	lock, err := os.OpenFile(filepath.Join(m.dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := writeSecret(m.dir, keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o640); err != nil {
		return err
	}
	var certs []byte
	for _, c := range chain {
		certs = append(certs, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c})...)
	}
	return writeSecret(m.dir, certFile, certs, 0o640)
}

// writeSecret writes dir/name crash-safely with mode (set before the
// rename, so never wider for a moment).
func writeSecret(dir, name string, data []byte, mode os.FileMode) error {
	return safeio.WriteFile(filepath.Join(dir, name), data, mode)
}
