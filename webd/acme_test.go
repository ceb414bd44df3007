package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"tern/common/config"
	"tern/common/tlsconf"
)

// fakeClock is the manager's clock, moved by the test.
type fakeClock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

// set moves the clock so that it reads t now.
func (c *fakeClock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset = time.Until(t)
}

// lockedBuffer collects log lines from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func port(addr string) string { _, p, _ := net.SplitHostPort(addr); return p }

// pebble is Debian's pebble ACME test server on loopback, validating
// http-01 for real against httpPort, with names resolved to 127.0.0.1 by
// pebble-challtestsrv's DNS.
type pebble struct {
	dir     string // https://127.0.0.1:port/dir
	mgmt    string // https://127.0.0.1:port
	caFile  string // the CA of pebble's own HTTPS
	cmd     *exec.Cmd
	roots   *x509.CertPool
	stopped bool
}

// startPebble starts pebble issuing certificates valid for lifetime,
// validating http-01 on httpPort and tls-alpn-01 on tlsPort.
func startPebble(t *testing.T, httpPort, tlsPort string, lifetime time.Duration) *pebble {
	t.Helper()
	pb, err := exec.LookPath("pebble")
	if err != nil {
		t.Skip("pebble not installed (apt-get install -y pebble)")
	}
	chall, err := exec.LookPath("pebble-challtestsrv")
	if err != nil {
		t.Skip("pebble-challtestsrv not installed (apt-get install -y pebble)")
	}
	dir := t.TempDir()
	// pebble's own HTTPS certificate, for 127.0.0.1.
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pebble test"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, IsCA: true, BasicConstraintsValid: true,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	certPath, keyPath := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)

	listen, mgmt, dns, challMgmt := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	conf := fmt.Sprintf(`{"pebble": {"listenAddress": %q, "managementListenAddress": %q,
  "certificate": %q, "privateKey": %q, "httpPort": %s, "tlsPort": %s,
  "ocspResponderURL": "", "externalAccountBindingRequired": false,
  "certificateValidityPeriod": %d}}`,
		listen, mgmt, certPath, keyPath, httpPort, tlsPort, int(lifetime/time.Second))
	confPath := filepath.Join(dir, "pebble.json")
	os.WriteFile(confPath, []byte(conf), 0o644)

	cs := exec.Command(chall, "-dns01", dns, "-http01", "", "-https01", "", "-tlsalpn01", "",
		"-management", challMgmt, "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "")
	var csOut lockedBuffer
	cs.Stdout, cs.Stderr = &csOut, &csOut
	if err := cs.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Process.Kill(); cs.Wait() })

	p := &pebble{dir: "https://" + listen + "/dir", mgmt: "https://" + mgmt, caFile: certPath}
	p.cmd = exec.Command(pb, "-config", confPath, "-dnsserver", dns)
	// No random sleeps, no rejected nonces, and every order validated
	// afresh (no reused authorizations).
	p.cmd.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0")
	var out lockedBuffer
	p.cmd.Stdout, p.cmd.Stderr = &out, &out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("pebble:\n%s\nchalltestsrv:\n%s", out.String(), csOut.String())
		}
	})
	pool := x509.NewCertPool()
	pool.AddCert(mustParse(t, der))
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	for i := 0; ; i++ {
		resp, err := hc.Get(p.dir)
		if err == nil {
			resp.Body.Close()
			break
		}
		if i > 100 {
			t.Fatalf("pebble did not start: %v\n%s", err, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The roots of the certificates pebble issues.
	resp, err := hc.Get(p.mgmt + "/roots/0")
	if err != nil {
		t.Fatal(err)
	}
	rootPEM, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	p.roots = x509.NewCertPool()
	if !p.roots.AppendCertsFromPEM(rootPEM) {
		t.Fatalf("pebble root: %q", rootPEM)
	}
	return p
}

func (p *pebble) stop() {
	if !p.stopped {
		p.stopped = true
		p.cmd.Process.Kill()
		p.cmd.Wait()
	}
}

func mustParse(t testing.TB, der []byte) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// buildDaemons builds tern programs (default smtpd, imapd and pop3d) for
// this test.
func buildDaemons(t *testing.T, names ...string) string {
	t.Helper()
	if len(names) == 0 {
		names = []string{"smtpd", "imapd", "pop3d"}
	}
	dir := t.TempDir()
	args := []string{"build", "-o", dir + "/"}
	for _, n := range names {
		args = append(args, "tern/"+n)
	}
	cmd := exec.Command("go", args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return dir
}

// servedCert is the leaf certificate a TLS client of addr sees, verified
// against the CA's roots for name.
func servedCert(addr, name string, roots *x509.CertPool) (*x509.Certificate, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 3 * time.Second}, "tcp", addr,
		&tls.Config{ServerName: name, RootCAs: roots})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0], nil
}

// waitServed waits until every address serves the certificate with serial.
func waitServed(t *testing.T, addrs map[string]string, name string, roots *x509.CertPool, serial *big.Int) {
	t.Helper()
	for what, addr := range addrs {
		var last error
		ok := false
		for i := 0; i < 100 && !ok; i++ {
			leaf, err := servedCert(addr, name, roots)
			if err == nil && leaf.SerialNumber.Cmp(serial) == 0 {
				ok = true
				break
			}
			if err == nil {
				err = fmt.Errorf("serial %x", leaf.SerialNumber)
			}
			last = err
			time.Sleep(50 * time.Millisecond)
		}
		if !ok {
			t.Fatalf("%s (%s) does not serve certificate %x: %v", what, addr, serial, last)
		}
	}
}

func readLeaf(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil
	}
	return mustParse(t, block.Bytes)
}

// TestACMEWithPebble is the acceptance run against a real ACME server on
// loopback: at first start the certificate is issued (http-01 validated by
// pebble against webd's handler); smtpd (465), imapd (993) and pop3d (995),
// started before it existed, serve it without a restart; when the clock
// reaches the renewal time it is renewed, and they serve the new one; with
// pebble down the old one keeps serving and each failed attempt is one
// log line.
func TestACMEWithPebble(t *testing.T) {
	httpAddr := freeAddr(t)
	pb := startPebble(t, port(httpAddr), port(freeAddr(t)), 9*time.Second)
	bin := buildDaemons(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "users"), []byte("demo@example.test:{PLAIN}demo\n"), 0o600)
	smtps, imaps, pop3s := freeAddr(t), freeAddr(t), freeAddr(t)
	cfgPath := filepath.Join(dir, "tern.toml")
	os.WriteFile(cfgPath, []byte(fmt.Sprintf(`hostname = "mail.example.test"
domains = ["example.test"]
users = %q
maildir = %q
state_dir = %q
[tls]
acme = { directory = %q, email = "postmaster@example.test", names = ["mail.example.test", "mta-sts.example.test"], ca = %q, retry_min = "300ms", retry_max = "1s" }
[smtpd]
mx = []
submission = []
submissions = [%q]
local_submit = ""
lmtp = "unix:%s/lmtp.sock"
[imapd]
listen = []
tls_listen = [%q]
[pop3d]
listen = []
tls_listen = [%q]
[webd]
listen = [%q]
tls_listen = []
`, filepath.Join(dir, "users"), filepath.Join(dir, "vmail/%d/%n"), filepath.Join(dir, "state"),
		pb.dir, pb.caFile, smtps, dir, imaps, pop3s, httpAddr)), 0o644)
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}

	// The daemons start before any certificate exists: they serve a
	// placeholder and must switch by themselves.
	for _, d := range []string{"smtpd", "imapd", "pop3d"} {
		cmd := exec.Command(filepath.Join(bin, d), "-config", cfgPath)
		var out lockedBuffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cmd.Process.Signal(os.Interrupt)
			cmd.Wait()
			if t.Failed() {
				t.Logf("%s:\n%s", d, out.String())
			}
		})
	}

	// webd: its handler on the http-01 port, its certificate manager with
	// a clock the test moves.
	var logs lockedBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("webd:\n%s", logs.String())
		}
	})
	h := &handler{cfg: cfg, log: log, challenges: &challenges{}}
	srv := newHTTPServer(cfg, h, log)
	l, err := net.Listen("tcp", httpAddr)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	if _, err := tlsconf.Load(cfg.TLS, cfg.Hostname); err != nil {
		t.Fatalf("tlsconf before the first certificate: %v", err)
	}
	m, err := newCertManager(cfg, h.challenges, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	certPath := filepath.Join(cfg.ACMEDir(), certFile)
	var first *x509.Certificate
	for i := 0; i < 300 && first == nil; i++ {
		first = readLeaf(t, certPath)
		time.Sleep(50 * time.Millisecond)
	}
	if first == nil {
		t.Fatal("no certificate issued at first start")
	}
	if strings.Join(first.DNSNames, ",") != "mail.example.test,mta-sts.example.test" {
		t.Errorf("names %q", first.DNSNames)
	}
	for _, f := range []string{certFile, keyFile, accountKeyFile} {
		if _, err := os.Stat(filepath.Join(cfg.ACMEDir(), f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	addrs := map[string]string{"smtpd 465": smtps, "imapd 993": imaps, "pop3d 995": pop3s}
	start := time.Now()
	waitServed(t, addrs, "mail.example.test", pb.roots, first.SerialNumber)
	t.Logf("first certificate %x (not after %s) served by all three in %v", first.SerialNumber, first.NotAfter.Format(time.DateOnly), time.Since(start))

	// Renewal: pebble's certificates live a few seconds, so renewal comes
	// after two thirds of that life (renew_before is longer than a third).
	var second *x509.Certificate
	for i := 0; i < 300; i++ {
		if c := readLeaf(t, certPath); c != nil && c.SerialNumber.Cmp(first.SerialNumber) != 0 {
			second = c
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if second == nil {
		t.Fatal("not renewed")
	}
	renewedAt := time.Now()
	// Pebble's dates are whole seconds.
	if life := first.NotAfter.Sub(first.NotBefore); second.NotBefore.Before(first.NotBefore.Add(life*2/3-time.Second)) || !second.NotBefore.Before(first.NotAfter) {
		t.Errorf("renewed at %v, want between two thirds of the life (%v) and expiry (%v)", second.NotBefore, first.NotBefore.Add(life*2/3), first.NotAfter)
	}
	waitServed(t, addrs, "mail.example.test", pb.roots, second.SerialNumber)
	t.Logf("renewed certificate %x served by all three %v after the renewal, without a restart", second.SerialNumber, time.Since(renewedAt))
	if n := strings.Count(logs.String(), "event=acme_issued"); n != 2 {
		t.Errorf("%d acme_issued lines, want 2", n)
	}

	// The CA is down: the old certificate keeps serving; each attempt is
	// logged once, with backoff between attempts.
	pb.stop()
	life := second.NotAfter.Sub(second.NotBefore)
	time.Sleep(time.Until(second.NotBefore.Add(life*2/3)) + 2500*time.Millisecond)
	failed := strings.Count(logs.String(), "event=acme_failed")
	orders := strings.Count(logs.String(), "event=acme_order")
	if failed < 2 || orders != 2+failed {
		t.Errorf("%d failure lines for %d attempts (orders %d), want one per attempt and at least 2", failed, orders-2, orders)
	}
	for i := 1; i <= failed; i++ {
		if c := strings.Count(logs.String(), fmt.Sprintf("attempt=%d ", i)); c != 1 {
			t.Errorf("attempt %d logged %d times", i, c)
		}
	}
	t.Logf("pebble down: %d attempts in 2.5s, one line each", failed)
	// (The few-second certificate may have expired by now: compare it
	// without checking its dates.)
	for what, addr := range addrs {
		c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Errorf("%s with the CA down: %v", what, err)
			continue
		}
		if got := c.ConnectionState().PeerCertificates[0].SerialNumber; got.Cmp(second.SerialNumber) != 0 {
			t.Errorf("%s with the CA down serves %x, want %x", what, got, second.SerialNumber)
		}
		c.Close()
	}
}

// TestRenewalSchedule: a 90-day certificate is due 30 days before expiry
// (renew_before), a short-lived one after two thirds of its life, and one
// that lacks a configured name at once; the clock is moved, not waited for.
func TestRenewalSchedule(t *testing.T) {
	cfg := testConfig(t)
	cfg.TLS.ACME = config.ACME{Directory: "https://ca.invalid/dir", Names: []string{"mail.example.test"},
		RenewBefore: config.Duration(30 * 24 * time.Hour), RetryMin: config.Duration(time.Second), RetryMax: config.Duration(time.Hour)}
	m, err := newCertManager(cfg, &challenges{}, slog.New(slog.NewTextHandler(testWriter{t}, nil)))
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{}
	m.now = clock.now
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	issue := func(life time.Duration, names ...string) time.Time {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		nb := time.Now().Truncate(time.Second)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: names[0]},
			DNSNames: names, NotBefore: nb, NotAfter: nb.Add(life)}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.writePair(key, [][]byte{der}); err != nil {
			t.Fatal(err)
		}
		return nb
	}
	check := func(at time.Time, want bool) {
		t.Helper()
		clock.set(at)
		if due, _, why := m.due(); due != want {
			t.Errorf("at %v: due %v (%s), want %v", at, due, why, want)
		}
	}
	nb := issue(90*24*time.Hour, "mail.example.test")
	check(nb.Add(59*24*time.Hour), false)
	check(nb.Add(61*24*time.Hour), true)
	nb = issue(9*time.Second, "mail.example.test")
	check(nb.Add(5*time.Second), false)
	check(nb.Add(7*time.Second), true)
	nb = issue(90*24*time.Hour, "other.example.test")
	check(nb, true)
	// A self-signed one (the placeholder of a demo) is replaced at once.
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	self := &x509.Certificate{SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "mail.example.test"},
		DNSNames: []string{"mail.example.test"}, NotBefore: time.Now(), NotAfter: time.Now().Add(90 * 24 * time.Hour), BasicConstraintsValid: true}
	der, _ := x509.CreateCertificate(rand.Reader, self, self, &key.PublicKey, key)
	if err := m.writePair(key, [][]byte{der}); err != nil {
		t.Fatal(err)
	}
	check(time.Now(), true)
	os.Remove(filepath.Join(cfg.ACMEDir(), certFile))
	check(time.Now(), true)
}

// TestACMETLSALPN: with no plain HTTP listener, webd proves control by
// tls-alpn-01 (RFC 8737) on its TLS listener, where pebble validates it,
// while ordinary HTTPS clients there still get the usual certificate.
func TestACMETLSALPN(t *testing.T) {
	tlsAddr := freeAddr(t)
	pb := startPebble(t, port(freeAddr(t)), port(tlsAddr), time.Hour)
	cfg := testConfig(t)
	cfg.Hostname = "mail.example.test"
	cfg.WebD.Listen = nil
	cfg.TLS.ACME = config.ACME{Directory: pb.dir, CA: pb.caFile, Names: []string{"mail.example.test"},
		RenewBefore: config.Duration(time.Minute), RetryMin: config.Duration(300 * time.Millisecond), RetryMax: config.Duration(time.Second)}
	cfg.TLS.Cert = filepath.Join(cfg.ACMEDir(), certFile)
	cfg.TLS.Key = filepath.Join(cfg.ACMEDir(), keyFile)
	cfg.TLS.Generate = false
	var logs lockedBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("webd:\n%s", logs.String())
		}
	})
	h := &handler{cfg: cfg, log: log, challenges: &challenges{}}
	tc, err := tlsconf.Load(cfg.TLS, cfg.Hostname)
	if err != nil {
		t.Fatal(err)
	}
	tc.GetConfigForClient = h.challenges.tlsConfigFor(tc)
	l, err := net.Listen("tcp", tlsAddr)
	if err != nil {
		t.Fatal(err)
	}
	srv := newHTTPServer(cfg, h, log)
	go srv.Serve(tls.NewListener(l, tc))
	t.Cleanup(func() { srv.Close() })
	m, err := newCertManager(cfg, h.challenges, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	var leaf *x509.Certificate
	for i := 0; i < 300 && leaf == nil; i++ {
		leaf = readLeaf(t, filepath.Join(cfg.ACMEDir(), certFile))
		time.Sleep(50 * time.Millisecond)
	}
	if leaf == nil {
		t.Fatal("no certificate by tls-alpn-01")
	}
	if !strings.Contains(logs.String(), "type=tls-alpn-01") || strings.Contains(logs.String(), "event=acme_challenge") {
		t.Errorf("challenge type not tls-alpn-01")
	}
	// An ordinary client of the same listener gets the issued certificate.
	waitServed(t, map[string]string{"webd 443": tlsAddr}, "mail.example.test", pb.roots, leaf.SerialNumber)
	// An acme-tls/1 handshake for a name with no pending challenge fails.
	if c, err := tls.Dial("tcp", tlsAddr, &tls.Config{ServerName: "mail.example.test", NextProtos: []string{"acme-tls/1"}, InsecureSkipVerify: true}); err == nil {
		c.Close()
		t.Errorf("acme-tls/1 handshake without a pending challenge succeeded")
	}
}
