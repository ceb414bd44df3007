package main

import (
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"tern/common/auth"
	"tern/common/config"
	"tern/common/maildir"
	"tern/common/tlsconf"
)

// testEnv is a real imapd on 127.0.0.1:0 with a temporary Maildir tree and
// users file.
type testEnv struct {
	dir     string
	cfg     *config.Config
	srv     *server
	addr    string // plain listener
	tlsAddr string // implicit-TLS listener
}

const testUsers = "demo@example.test:{PLAIN}demo\nalice@example.test:{PLAIN}alice\n"

func startServer(t testing.TB, mutate ...func(*config.Config)) *testEnv {
	t.Helper()
	return startServerTLS(t, nil, mutate...)
}

// startServerTLS is startServer with tune applied to the server's TLS
// settings before its listeners start.
func startServerTLS(t testing.TB, tune func(*tls.Config), mutate ...func(*config.Config)) *testEnv {
	t.Helper()
	dir := t.TempDir()
	users := filepath.Join(dir, "users")
	if err := os.WriteFile(users, []byte(testUsers), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Hostname = "mail.example.test"
	cfg.Domains = []string{"example.test"}
	cfg.Users = users
	cfg.Maildir = filepath.Join(dir, "vmail", "%d", "%n", "Maildir")
	cfg.StateDir = filepath.Join(dir, "state")
	cfg.TLS = config.TLS{Cert: filepath.Join(dir, "cert.pem"), Key: filepath.Join(dir, "key.pem"), Generate: true}
	for _, m := range mutate {
		m(&cfg)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	db, err := auth.Open(cfg.Users, cfg.Domains[0], log)
	if err != nil {
		t.Fatal(err)
	}
	tc, err := tlsconf.Load(cfg.TLS, cfg.Hostname)
	if err != nil {
		t.Fatal(err)
	}
	if tune != nil {
		tune(tc)
	}
	srv := newServer(&cfg, log, db, tc)
	plain, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	secure, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.serve(plain, false)
	go srv.serve(secure, true)
	t.Cleanup(func() {
		plain.Close()
		secure.Close()
		srv.shutdown(time.Second)
	})
	return &testEnv{dir: dir, cfg: &cfg, srv: srv, addr: plain.Addr().String(), tlsAddr: secure.Addr().String()}
}

// dial connects an imapclient without logging in.
func (e *testEnv) dial(t testing.TB, h *imapclient.UnilateralDataHandler) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(e.addr, &imapclient.Options{UnilateralDataHandler: h})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.WaitGreeting(); err != nil {
		t.Fatal(err)
	}
	return c
}

// login connects and logs in as demo.
func (e *testEnv) login(t testing.TB, h *imapclient.UnilateralDataHandler) *imapclient.Client {
	t.Helper()
	c := e.dial(t, h)
	if err := c.Login("demo", "demo").Wait(); err != nil {
		t.Fatalf("login: %v", err)
	}
	return c
}

// mailbox opens demo's store directly, as another process would.
func (e *testEnv) mailbox(t testing.TB) *maildir.Mailbox {
	t.Helper()
	root, err := config.Expand(e.cfg.Maildir, "demo@example.test")
	if err != nil {
		t.Fatal(err)
	}
	m, err := maildir.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// deliver puts a message into one of demo's folders as lmtpd would.
func (e *testEnv) deliver(t testing.TB, folder, msg string) {
	t.Helper()
	if _, _, err := e.mailbox(t).Deliver(folder, strings.NewReader(msg), nil); err != nil {
		t.Fatal(err)
	}
}

func testMessage(subject, body string) string {
	return "From: Alice <alice@example.test>\r\n" +
		"To: demo@example.test\r\n" +
		"Subject: " + subject + "\r\n" +
		"Date: Mon, 02 Jan 2006 15:04:05 +0000\r\n" +
		"Message-ID: <" + strings.ReplaceAll(subject, " ", "-") + "@example.test>\r\n" +
		"\r\n" + body
}

// wantIMAPError asserts that err is an IMAP reply of the given type.
func wantIMAPError(t testing.TB, err error, typ imap.StatusResponseType, what string) *imap.Error {
	t.Helper()
	ie, ok := err.(*imap.Error)
	if !ok {
		t.Fatalf("%s: want %s reply, got %v", what, typ, err)
	}
	if ie.Type != typ {
		t.Fatalf("%s: want %s, got %s %s", what, typ, ie.Type, ie.Text)
	}
	return ie
}

func selectInbox(t testing.TB, c *imapclient.Client) *imap.SelectData {
	t.Helper()
	d, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatalf("select: %v", err)
	}
	return d
}
