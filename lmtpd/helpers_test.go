package main

import (
	"bufio"
	"bytes"
	"io"
	"log/slog"
	"net"
	"net/textproto"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"tern/common/config"
	"tern/common/maildir"
)

// testUsers are the users of every test server; carol's quota is tiny.
const testUsers = `demo@example.test:{PLAIN}demo
alice@example.test:{PLAIN}alice
bob@example.test:{PLAIN}bob
dave@example.test:{PLAIN}dave
carol@example.test:{PLAIN}carol:::::: userdb_quota_rule=*:storage=100B
`

const testAliases = `team: bob, dave
postmaster: demo
`

// testEnv is a running lmtpd with its files in a temp dir.
type testEnv struct {
	dir    string
	cfg    *config.Config
	srv    *server
	unix   string // socket path
	tcp    string // 127.0.0.1:port
	served chan error
}

// startServer starts lmtpd on a unix socket and on 127.0.0.1:0. edit may
// change the configuration first.
func startServer(t testing.TB, edit func(*config.Config)) *testEnv {
	t.Helper()
	dir := t.TempDir()
	write(t, filepath.Join(dir, "users"), testUsers)
	write(t, filepath.Join(dir, "aliases"), testAliases)
	// Unix socket paths are short (108 bytes); t.TempDir may be longer.
	sockDir, err := os.MkdirTemp("", "lmtpd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	cfg := config.Default()
	cfg.Hostname = "mx.example.test"
	cfg.Domains = []string{"example.test"}
	cfg.Users = filepath.Join(dir, "users")
	cfg.Aliases = filepath.Join(dir, "aliases")
	cfg.Maildir = filepath.Join(dir, "vmail/%d/%n/Maildir")
	cfg.StateDir = filepath.Join(dir, "state")
	cfg.LMTPD.Sieve = filepath.Join(dir, "vmail/%d/%n/sieve/active.sieve")
	cfg.LMTPD.MaxMessageSize = 1 << 20
	cfg.LMTPD.Listen = []string{"unix:" + filepath.Join(sockDir, "lmtp.sock"), "127.0.0.1:0"}
	// No smtpd unless a test starts one: the default socket under
	// /run/tern may belong to a tern running on this machine.
	cfg.SMTPD.LocalSubmit = "unix:" + filepath.Join(sockDir, "submit.sock")
	if edit != nil {
		edit(&cfg)
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if _, bench := t.(*testing.B); bench {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	srv, err := newServerFromConfig(&cfg, log)
	if err != nil {
		t.Fatalf("newServerFromConfig: %v", err)
	}
	e := &testEnv{dir: dir, cfg: &cfg, srv: srv, served: make(chan error, 2)}
	ul, err := net.Listen("unix", filepath.Join(sockDir, "lmtp.sock"))
	if err != nil {
		t.Fatal(err)
	}
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.unix, e.tcp = ul.Addr().String(), tl.Addr().String()
	go func() { e.served <- srv.serve(ul) }()
	go func() { e.served <- srv.serve(tl) }()
	t.Cleanup(func() { srv.shutdown(time.Second) })
	return e
}

// testWriter sends server logs to the test log, shown on failure.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func write(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// maildirRoot is the Maildir of user.
func (e *testEnv) maildirRoot(user string) string {
	root, err := config.Expand(e.cfg.Maildir, user)
	if err != nil {
		panic(err)
	}
	return root
}

// messages returns the contents of the messages in a user's folder
// ("INBOX" or a folder name), from new/ and cur/, sorted.
func (e *testEnv) messages(t testing.TB, user, folder string) []string {
	t.Helper()
	dir := e.maildirRoot(user)
	if folder != "INBOX" {
		dir = filepath.Join(dir, "."+folder)
	}
	var out []string
	for _, sub := range []string{"new", "cur"} {
		ents, err := os.ReadDir(filepath.Join(dir, sub))
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, ent := range ents {
			b, err := os.ReadFile(filepath.Join(dir, sub, ent.Name()))
			if err != nil {
				t.Fatal(err)
			}
			// Stored with LF line ends, as every Maildir tool reads
			// them; given back in wire form (CRLF), as imapd and pop3d
			// serve it, with the size the file name records.
			if bytes.Contains(b, []byte("\r\n")) {
				t.Errorf("%s/%s is stored with CRLF: %q", sub, ent.Name(), b)
			}
			wire, err := io.ReadAll(maildir.NewWireReader(bytes.NewReader(b)))
			if err != nil {
				t.Fatal(err)
			}
			if w := ",W=" + strconv.Itoa(len(wire)); !strings.Contains(ent.Name(), w) {
				t.Errorf("%s/%s: name does not record the wire size (%s)", sub, ent.Name(), w)
			}
			out = append(out, string(wire))
		}
	}
	sort.Strings(out)
	return out
}

// writeSieve installs a user's active script.
func (e *testEnv) writeSieve(t testing.TB, user, script string) {
	t.Helper()
	p, err := config.Expand(e.cfg.LMTPD.Sieve, user)
	if err != nil {
		t.Fatal(err)
	}
	write(t, p, script)
}

// rawClient is a line-level LMTP client, for exact replies and pipelining.
type rawClient struct {
	t    testing.TB
	conn net.Conn
	r    *textproto.Reader
}

func dialRaw(t testing.TB, network, addr string) *rawClient {
	t.Helper()
	c, err := net.Dial(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	rc := &rawClient{t: t, conn: c, r: textproto.NewReader(bufio.NewReader(c))}
	rc.expect("220 ")
	return rc
}

func (c *rawClient) send(lines ...string) {
	c.t.Helper()
	if _, err := io.WriteString(c.conn, strings.Join(lines, "\r\n")+"\r\n"); err != nil {
		c.t.Fatal(err)
	}
}

// reply reads one (possibly multi-line) reply and returns its last line.
func (c *rawClient) reply() string {
	c.t.Helper()
	for {
		l, err := c.r.ReadLine()
		if err != nil {
			c.t.Fatalf("read reply: %v", err)
		}
		if len(l) < 4 || l[3] != '-' {
			return l
		}
	}
}

func (c *rawClient) expect(prefix string) string {
	c.t.Helper()
	l := c.reply()
	if !strings.HasPrefix(l, prefix) {
		c.t.Fatalf("reply %q, want %q…", l, prefix)
	}
	return l
}

// configT shortens the edit functions of startServer.
type configT = config.Config

// configSize shortens config.Size in tests.
type configSize = config.Size

func listNames(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}
