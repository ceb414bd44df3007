package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"tern/common/config"
	"tern/common/daemon"
	"tern/common/tlsconf"
)

// testEnv is a running smtpd with its own state directory, users file and
// an LMTP server (go-smtp in LMTP mode) that writes each delivered copy
// into a real file under dir/mail/<recipient>/.
type testEnv struct {
	t      testing.TB
	dir    string
	cfg    *config.Config
	srv    *server
	cancel context.CancelFunc
	done   chan error

	stopOnce sync.Once
	stopped  chan struct{}
}

func writeFile(t testing.TB, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// newTestConfig writes users and aliases and returns a config on loopback
// ports chosen by the kernel.
func newTestConfig(t testing.TB, extra string) *config.Config {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "users"),
		"demo@example.test:{PLAIN}demo\nalice@example.test:{PLAIN}alice\n")
	writeFile(t, filepath.Join(dir, "aliases"), "postmaster: demo\nsales: alice\n")
	toml := fmt.Sprintf(`
hostname = "mail.example.test"
domains = ["example.test"]
users = %q
aliases = %q
maildir = %q
state_dir = %q
[log]
level = "debug"
[tls]
cert = %q
key = %q
generate = true
[smtpd]
mx = ["127.0.0.1:0"]
submission = ["127.0.0.1:0"]
submissions = ["127.0.0.1:0"]
lmtp = %q
local_submit = %q
local_retry = "1s"
retry_min = "1s"
retry_max = "2s"
`, filepath.Join(dir, "users"), filepath.Join(dir, "aliases"), filepath.Join(dir, "vmail/%d/%n"),
		filepath.Join(dir, "state"), filepath.Join(dir, "tls/cert.pem"), filepath.Join(dir, "tls/key.pem"),
		"unix:"+filepath.Join(dir, "lmtp.sock"), "unix:"+filepath.Join(dir, "submit.sock")) + extra
	cfg, err := config.Parse("test.toml", []byte(toml))
	if err != nil {
		t.Fatal(err)
	}
	// SPF, DKIM and DMARC need DNS; the tests that check them turn them
	// on with their own DNS server (auth_test.go).
	cfg.SMTPD.InboundAuth = false
	return cfg
}

func startSMTPD(t testing.TB, cfg *config.Config) *testEnv {
	t.Helper()
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if _, bench := t.(*testing.B); bench {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	tlsCfg, err := tlsconf.Load(cfg.TLS, cfg.Hostname)
	if err != nil {
		t.Fatal(err)
	}
	s, err := newServer(cfg, log, tlsCfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &testEnv{t: t, cfg: cfg, srv: s, cancel: cancel, done: make(chan error, 1), stopped: make(chan struct{})}
	e.dir = filepath.Dir(cfg.StateDir)
	go func() { e.done <- s.serve(ctx, daemon.ShutdownGrace) }()
	t.Cleanup(e.stop)
	return e
}

func (e *testEnv) stop() {
	e.stopOnce.Do(func() {
		defer close(e.stopped)
		e.cancel()
		select {
		case <-e.done:
		case <-time.After(10 * time.Second):
			e.t.Error("smtpd did not stop within 10s")
		}
	})
	<-e.stopped
}

func (e *testEnv) addr(k kind) string { return e.srv.addrs(k)[0] }

// testWriter sends logs to t.Log, which keeps them out of passing runs.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// lmtpSink is a real LMTP server on a unix socket that stores every copy
// it accepts as a file, fsynced, before answering 250 for it.
type lmtpSink struct {
	dir   string
	srv   *smtp.Server
	conns atomic.Int32 // sessions started (one per connection, at LHLO)
	open  atomic.Int32 // sessions not yet ended (QUIT or a closed connection)
	mu    sync.Mutex
	fail  map[string]*smtp.SMTPError // per-recipient canned failures
}

func startLMTP(t testing.TB, cfg *config.Config) *lmtpSink {
	t.Helper()
	path := strings.TrimPrefix(cfg.SMTPD.LMTP, "unix:")
	k := &lmtpSink{dir: filepath.Join(filepath.Dir(path), "mail"), fail: map[string]*smtp.SMTPError{}}
	k.srv = smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		k.conns.Add(1)
		k.open.Add(1)
		return &lmtpSession{k: k}, nil
	}))
	k.srv.LMTP = true
	k.srv.Domain = "lmtp.test"
	k.srv.EnableSMTPUTF8 = true // as lmtpd
	os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	go k.srv.Serve(l)
	t.Cleanup(func() { k.srv.Close() })
	return k
}

func (k *lmtpSink) stop() { k.srv.Close() }

// messages returns the copies delivered to addr.
func (k *lmtpSink) messages(addr string) []string {
	ents, _ := os.ReadDir(filepath.Join(k.dir, addr))
	var out []string
	for _, de := range ents {
		b, _ := os.ReadFile(filepath.Join(k.dir, addr, de.Name()))
		out = append(out, string(b))
	}
	return out
}

type lmtpSession struct {
	k     *lmtpSink
	from  string
	utf8  bool
	rcpts []string
}

// errNeedsUTF8 is lmtpd's refusal (common/smtpserver) of a non-ASCII
// address in a transaction opened without SMTPUTF8 (RFC 6531 3.4).
var errNeedsUTF8 = &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 6, 7}, Message: "Non-ASCII address needs SMTPUTF8"}

func nonASCII(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return r >= 0x80 }) >= 0
}

func (s *lmtpSession) Reset()        { s.rcpts = nil }
func (s *lmtpSession) Logout() error { s.k.open.Add(-1); return nil }
func (s *lmtpSession) Mail(f string, o *smtp.MailOptions) error {
	s.utf8 = o != nil && o.UTF8
	if nonASCII(f) && !s.utf8 {
		return errNeedsUTF8
	}
	s.from = f
	return nil
}
func (s *lmtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if nonASCII(to) && !s.utf8 {
		return errNeedsUTF8
	}
	s.rcpts = append(s.rcpts, to)
	return nil
}
func (s *lmtpSession) Data(r io.Reader) error { return fmt.Errorf("LMTPData only") }
func (s *lmtpSession) LMTPData(r io.Reader, st smtp.StatusCollector) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	for _, to := range s.rcpts {
		s.k.mu.Lock()
		f := s.k.fail[to]
		s.k.mu.Unlock()
		if f != nil {
			st.SetStatus(to, f)
			continue
		}
		// Written beside the recipient's directory and renamed into it,
		// so that a test never reads a copy half written.
		dir := filepath.Join(s.k.dir, to)
		os.MkdirAll(dir, 0o755)
		fh, err := os.CreateTemp(s.k.dir, ".tmp-msg")
		if err == nil {
			fh.Write(data)
			err = fh.Sync()
			fh.Close()
			if err == nil {
				err = os.Rename(fh.Name(), filepath.Join(dir, filepath.Base(fh.Name())))
			}
		}
		st.SetStatus(to, err)
	}
	return nil
}

// rawConn is a hand-driven SMTP connection for byte-exact tests.
type rawConn struct {
	t testing.TB
	c net.Conn
	r *bufio.Reader
}

func dialRaw(t testing.TB, addr string) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(20 * time.Second))
	t.Cleanup(func() { c.Close() })
	rc := &rawConn{t: t, c: c, r: bufio.NewReader(c)}
	rc.expect("220")
	return rc
}

// reply reads one whole (possibly multi-line) reply.
func (rc *rawConn) reply() string {
	rc.t.Helper()
	var all []string
	for {
		line, err := rc.r.ReadString('\n')
		if err != nil {
			all = append(all, "EOF:"+line)
			return strings.Join(all, "\n")
		}
		all = append(all, strings.TrimRight(line, "\r\n"))
		if len(line) < 4 || line[3] != '-' {
			return strings.Join(all, "\n")
		}
	}
}

func (rc *rawConn) expect(prefix string) string {
	rc.t.Helper()
	r := rc.reply()
	last := r[strings.LastIndex(r, "\n")+1:]
	if !strings.HasPrefix(last, prefix) {
		rc.t.Fatalf("want reply %s, got %q", prefix, r)
	}
	return r
}

func (rc *rawConn) send(s string) {
	rc.t.Helper()
	if _, err := io.WriteString(rc.c, s); err != nil {
		rc.t.Fatal(err)
	}
}

func (rc *rawConn) cmd(line, want string) string {
	rc.t.Helper()
	rc.send(line + "\r\n")
	return rc.expect(want)
}

// clientTLS is the TLS configuration test clients use against the
// self-signed certificate.
var clientTLS = &tls.Config{InsecureSkipVerify: true}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func newReader(c net.Conn) *bufio.Reader { return bufio.NewReader(c) }

func serverTLS(t testing.TB) *tls.Config {
	t.Helper()
	dir := t.TempDir()
	c, err := tlsconf.Load(config.TLS{Cert: filepath.Join(dir, "c.pem"), Key: filepath.Join(dir, "k.pem"), Generate: true}, "mx.remote.test")
	if err != nil {
		t.Fatal(err)
	}
	return c
}
