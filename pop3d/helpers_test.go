package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"tern/common/auth"
	"tern/common/config"
	"tern/common/maildir"
	"tern/common/tlsconf"
)

// testEnv is a temporary installation: a users file, a Maildir tree and a
// self-signed certificate. Several servers can be started on it in turn
// (restarts).
type testEnv struct {
	dir  string
	cfg  *config.Config
	opts options
	logs *lockedBuffer
}

func newEnv(t testing.TB) *testEnv {
	t.Helper()
	dir := t.TempDir()
	users := "demo@example.test:{PLAIN}demo\nalice@example.test:{PLAIN}alice\n"
	if err := os.WriteFile(filepath.Join(dir, "users"), []byte(users), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Hostname = "mail.example.test"
	cfg.Domains = []string{"example.test"}
	cfg.Users = filepath.Join(dir, "users")
	cfg.Maildir = filepath.Join(dir, "vmail", "%d", "%n", "Maildir")
	cfg.TLS = config.TLS{Cert: filepath.Join(dir, "tls", "cert.pem"), Key: filepath.Join(dir, "tls", "key.pem"), Generate: true}
	env := &testEnv{dir: dir, cfg: &cfg, opts: optionsFrom(&cfg, 2*time.Second), logs: &lockedBuffer{}}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log:\n%s", env.logs.String())
		}
	})
	return env
}

// root is the Maildir of a user.
func (e *testEnv) root(t testing.TB, address string) string {
	t.Helper()
	r, err := config.Expand(e.cfg.Maildir, address)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// testServer is a running pop3d on 127.0.0.1:0, plain and implicit TLS.
type testServer struct {
	addr, tlsAddr string
	srv           *server
	stop          func()
}

func (e *testEnv) start(t testing.TB) *testServer {
	t.Helper()
	return e.startOn(t, "127.0.0.1:0")
}

func (e *testEnv) startOn(t testing.TB, plainAddr string) *testServer {
	t.Helper()
	log := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	users, err := auth.Open(e.cfg.Users, e.cfg.Domains[0], log)
	if err != nil {
		t.Fatal(err)
	}
	tlsConfig, err := tlsconf.Load(e.cfg.TLS, e.cfg.Hostname)
	if err != nil {
		t.Fatal(err)
	}
	pl, err := net.Listen("tcp", plainAddr)
	if err != nil {
		t.Fatal(err)
	}
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := newServer(e.cfg, users, tlsConfig, e.opts, log)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.run(ctx, []listener{{pl, false}, {tl, true}}) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("server: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("server did not stop within 10s")
			}
		})
	}
	t.Cleanup(stop)
	return &testServer{addr: pl.Addr().String(), tlsAddr: tl.Addr().String(), srv: srv, stop: stop}
}

// lockedBuffer collects the server log for failed tests.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testMessage is message number i of a test mailbox: LF line ends, as
// Maildirs hold them, with the lines that need byte-stuffing, an empty
// line in the body, and sizes that vary.
func testMessage(i int) []byte {
	var b bytes.Buffer
	// Return-Path first, as a delivery agent writes it (getmail rewrites
	// that header in place, and would otherwise add one).
	fmt.Fprintf(&b, "Return-Path: <sender%d@example.org>\n", i)
	fmt.Fprintf(&b, "From: sender%d@example.org\nTo: demo@example.test\nSubject: test message %d\n", i, i)
	fmt.Fprintf(&b, "Message-ID: <%d.test@example.org>\nDate: Mon, 2 Jan 2006 15:04:05 +0000\n\n", i)
	fmt.Fprintf(&b, "Body of message %d.\n.\n..two dots\n.leading dot\n\nafter an empty line\n", i)
	for j := 0; j < i%37; j++ {
		fmt.Fprintf(&b, "line %d of message %d: %s\n", j, i, strings.Repeat("x", (i*j)%200))
	}
	b.WriteString("last line\n")
	return b.Bytes()
}

// deliver puts n test messages into the empty INBOX of address through the
// store, as lmtpd does, and returns them in message-number order.
func (e *testEnv) deliver(t testing.TB, address string, n int) [][]byte {
	t.Helper()
	root := e.root(t, address)
	if _, err := maildir.Open(root); err != nil {
		t.Fatal(err)
	}
	byKey := make(map[string][]byte, n)
	for i := 0; i < n; i++ {
		m := testMessage(i + 1)
		key, _, err := maildir.Deliver(root, bytes.NewReader(m), nil)
		if err != nil {
			t.Fatal(err)
		}
		byKey[key] = m
	}
	// The store numbers new messages when it first sees them, not
	// necessarily in delivery order: return them in UID order, which is
	// the order of POP3 message numbers.
	msgs := make([][]byte, 0, n)
	for _, m := range e.inbox(t, address).Messages {
		msgs = append(msgs, byKey[m.Key])
	}
	if len(msgs) != n {
		t.Fatalf("INBOX has %d messages after %d deliveries", len(msgs), n)
	}
	return msgs
}

// inbox returns the INBOX snapshot of address, as the store sees it now.
func (e *testEnv) inbox(t testing.TB, address string) *maildir.Snapshot {
	t.Helper()
	mb, err := maildir.Open(e.root(t, address))
	if err != nil {
		t.Fatal(err)
	}
	f, err := mb.Folder("INBOX")
	if err != nil {
		t.Fatal(err)
	}
	snap, err := f.Sync()
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

// crlf is what a message looks like on the wire, before byte-stuffing.
func crlf(msg []byte) []byte {
	return bytes.ReplaceAll(msg, []byte("\n"), []byte("\r\n"))
}

// popClient is a bare POP3 client over a real socket, for the exact bytes
// of error paths that client libraries hide.
type popClient struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
}

func dialPOP(t testing.TB, addr string) *popClient {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return greeted(t, c)
}

// greeted is a client on c once the greeting is read.
func greeted(t testing.TB, c net.Conn) *popClient {
	t.Helper()
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	p := &popClient{t: t, conn: c, r: bufio.NewReader(c)}
	if g := p.line(); !strings.HasPrefix(g, "+OK") {
		t.Fatalf("greeting: %q", g)
	}
	return p
}

// dialPOPS connects to the implicit-TLS listener and reads the greeting.
func dialPOPS(t *testing.T, env *testEnv, ts *testServer) *popClient {
	t.Helper()
	c, err := tls.Dial("tcp", ts.tlsAddr, env.tlsClientConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	return greeted(t, c)
}

// line reads one line and returns it without CRLF ("" at EOF).
func (p *popClient) line() string {
	p.t.Helper()
	l, err := p.r.ReadString('\n')
	if err != nil {
		if err == io.EOF && l == "" {
			return ""
		}
		p.t.Fatalf("read: %v (got %q)", err, l)
	}
	if !strings.HasSuffix(l, "\r\n") {
		p.t.Fatalf("line without CRLF: %q", l)
	}
	return strings.TrimSuffix(l, "\r\n")
}

func (p *popClient) send(s string) {
	p.t.Helper()
	if _, err := io.WriteString(p.conn, s); err != nil {
		p.t.Fatal(err)
	}
}

// cmd sends one command line and returns the status line.
func (p *popClient) cmd(line string) string {
	p.t.Helper()
	p.send(line + "\r\n")
	return p.line()
}

// ok sends a command and fails the test unless the reply is +OK.
func (p *popClient) ok(line string) string {
	p.t.Helper()
	r := p.cmd(line)
	if !strings.HasPrefix(r, "+OK") {
		p.t.Fatalf("%s: %q", line, r)
	}
	return r
}

// body reads a multi-line body, undoing byte-stuffing; each line keeps
// its CRLF, so the result is the exact bytes sent.
func (p *popClient) body() []byte {
	p.t.Helper()
	var b bytes.Buffer
	for {
		l, err := p.r.ReadString('\n')
		if err != nil {
			p.t.Fatalf("read body: %v", err)
		}
		if l == ".\r\n" {
			return b.Bytes()
		}
		b.WriteString(strings.TrimPrefix(l, "."))
	}
}

func (p *popClient) lines() []string {
	p.t.Helper()
	s := strings.TrimSuffix(string(p.body()), "\r\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\r\n")
}

func (p *popClient) login(user, pass string) {
	p.t.Helper()
	p.ok("USER " + user)
	p.ok("PASS " + pass)
}

// closed reports whether the server has closed the connection.
func (p *popClient) closed() bool {
	p.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := p.r.ReadByte()
	return err == io.EOF
}

// certPool trusts the test certificate.
func (e *testEnv) certPool(t testing.TB) *x509.CertPool {
	t.Helper()
	pem, err := os.ReadFile(e.cfg.TLS.Cert)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return pool
}

func (e *testEnv) tlsClientConfig(t testing.TB) *tls.Config {
	return &tls.Config{RootCAs: e.certPool(t), ServerName: "localhost"}
}

// need skips the test when a Debian tool is missing; CI installs them.
func need(t testing.TB, tool, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		t.Skipf("%s not installed (apt-get install -y %s)", tool, pkg)
	}
	return p
}

// uidls lists UIDL of a fresh session as a map from UIDL to message number.
func uidlList(t testing.TB, addr string) []string {
	t.Helper()
	p := dialPOP(t, addr)
	p.login("demo", "demo")
	p.ok("UIDL")
	var ids []string
	for _, l := range p.lines() {
		_, id, ok := strings.Cut(l, " ")
		if !ok {
			t.Fatalf("UIDL line %q", l)
		}
		ids = append(ids, id)
	}
	p.ok("QUIT")
	return ids
}

// writeUsers replaces the users file.
func writeUsers(t testing.TB, e *testEnv, content string) {
	t.Helper()
	if err := os.WriteFile(e.cfg.Users, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
