package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"tern/common/authguard"
	"tern/common/config"
	"tern/common/serve"
	"tern/common/tlsconf"
)

// msEnv is lmtpd with ManageSieve on a TCP listener.
type msEnv struct {
	*testEnv
	addr string // ManageSieve host:port
	srv  *msServer
}

// startManageSieve starts lmtpd and its ManageSieve service on host:0, with
// a self-signed certificate for "localhost".
func startManageSieve(t testing.TB, host string, edit func(*configT)) *msEnv {
	t.Helper()
	e := startServer(t, func(c *configT) {
		c.TLS.Cert = filepath.Join(c.StateDir, "..", "tls", "cert.pem")
		c.TLS.Key = filepath.Join(c.StateDir, "..", "tls", "key.pem")
		c.TLS.Generate = true
		c.ManageSieve.Listen = []string{net.JoinHostPort(host, "0")}
		c.Login.Delay = 0
		if edit != nil {
			edit(c)
		}
	})
	tc, err := tlsconf.Load(e.cfg.TLS, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	guard, err := authguard.Open(e.cfg.StateDir, e.cfg.Login)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ms := newMSServer(e.cfg, e.srv.agent.users, tc, guard, log)
	l, err := net.Listen("tcp", e.cfg.ManageSieve.Listen[0])
	if err != nil {
		t.Fatal(err)
	}
	go ms.conns.ServeListener(&serve.Listener{Listener: l, Kind: "managesieve"})
	t.Cleanup(func() { ms.shutdown(time.Second); ms.close() })
	return &msEnv{testEnv: e, addr: l.Addr().String(), srv: ms}
}

// caFile is the PEM file a client trusts.
func (e *msEnv) caFile() string { return e.cfg.TLS.Cert }

func (e *msEnv) tlsClient(t testing.TB) *tls.Config {
	t.Helper()
	pem, err := os.ReadFile(e.caFile())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return &tls.Config{RootCAs: pool, ServerName: "localhost"}
}

// msClient is a line-level ManageSieve client.
type msClient struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
}

func dialMS(t testing.TB, addr string) (*msClient, []string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	m := &msClient{t: t, conn: c, r: bufio.NewReader(c)}
	lines, last := m.response()
	if last != "OK" {
		t.Fatalf("greeting ends %q", last)
	}
	return m, lines
}

// response reads lines up to the final OK/NO/BYE, expanding literals
// inline, and returns the lines before it and the final one.
func (m *msClient) response() ([]string, string) {
	m.t.Helper()
	var lines []string
	for {
		l, err := m.r.ReadString('\n')
		if err != nil {
			m.t.Fatalf("read response: %v (so far %q)", err, lines)
		}
		if !strings.HasSuffix(l, "\r\n") {
			m.t.Fatalf("line without CRLF: %q", l)
		}
		l = strings.TrimSuffix(l, "\r\n")
		if strings.HasSuffix(l, "}") && strings.Contains(l, "{") {
			i := strings.LastIndex(l, "{")
			n, err := strconv.Atoi(l[i+1 : len(l)-1])
			if err == nil {
				b := make([]byte, n)
				if _, err := io.ReadFull(m.r, b); err != nil {
					m.t.Fatal(err)
				}
				rest, _ := m.r.ReadString('\n')
				l = l[:i] + strconv.Quote(string(b)) + strings.TrimSuffix(rest, "\r\n")
			}
		}
		for _, k := range []string{"OK", "NO", "BYE"} {
			if l == k || strings.HasPrefix(l, k+" ") {
				return lines, l
			}
		}
		lines = append(lines, l)
	}
}

func (m *msClient) send(s string) {
	m.t.Helper()
	if _, err := io.WriteString(m.conn, s); err != nil {
		m.t.Fatal(err)
	}
}

func (m *msClient) cmd(line string) ([]string, string) {
	m.t.Helper()
	m.send(line + "\r\n")
	return m.response()
}

func (m *msClient) ok(line string) []string {
	m.t.Helper()
	lines, last := m.cmd(line)
	if !strings.HasPrefix(last, "OK") {
		m.t.Fatalf("%.60q: %q", line, last)
	}
	return lines
}

func (m *msClient) login(user, pass string) {
	m.t.Helper()
	m.ok(`AUTHENTICATE "PLAIN" "` + base64.StdEncoding.EncodeToString([]byte("\x00"+user+"\x00"+pass)) + `"`)
}

func (m *msClient) starttls(e *msEnv) []string {
	m.t.Helper()
	m.ok("STARTTLS")
	tc := tls.Client(m.conn, e.tlsClient(m.t))
	if err := tc.Handshake(); err != nil {
		m.t.Fatal(err)
	}
	m.conn, m.r = tc, bufio.NewReader(tc)
	lines, last := m.response()
	if last != "OK" {
		m.t.Fatalf("capabilities after STARTTLS end %q", last)
	}
	return lines
}

func literal(s string) string { return fmt.Sprintf("{%d+}\r\n%s", len(s), s) }

func hasLine(lines []string, want string) bool {
	for _, l := range lines {
		if l == want {
			return true
		}
	}
	return false
}

const filingScript = "require [\"fileinto\", \"copy\", \"mailbox\"];\r\nif header :contains \"Subject\" \"invoice\" {\r\n  fileinto :copy :create \"Bills\";\r\n}\r\n"

// TestManageSieveCommands drives every command on the raw protocol:
// quotas, names, the active script's rules, UNAUTHENTICATE, NOOP.
func TestManageSieveCommands(t *testing.T) {
	e := startManageSieve(t, "127.0.0.1", func(c *configT) {
		c.ManageSieve.MaxScripts = 2
		c.LMTPD.SieveMaxSize = 200
	})
	m, caps := dialMS(t, e.addr)
	for _, want := range []string{`"IMPLEMENTATION" "tern"`, `"SASL" "PLAIN LOGIN"`, `"STARTTLS"`, `"VERSION" "1.0"`, `"UNAUTHENTICATE"`} {
		if !hasLine(caps, want) {
			t.Errorf("greeting lacks %s: %q", want, caps)
		}
	}
	if _, last := m.cmd(`LISTSCRIPTS`); !strings.HasPrefix(last, "NO") {
		t.Errorf("LISTSCRIPTS before login: %q", last)
	}
	m.login("demo", "demo")
	if caps := m.ok("CAPABILITY"); !hasLine(caps, `"OWNER" "demo@example.test"`) {
		t.Errorf("CAPABILITY after login: %q", caps)
	}
	if _, last := m.cmd("NOOP \"x1\""); last != `OK (TAG "x1") "done"` {
		t.Errorf("NOOP: %q", last)
	}
	m.ok(`HAVESPACE "a" 100`)
	if _, last := m.cmd(`HAVESPACE "a" 201`); !strings.HasPrefix(last, "NO (QUOTA/MAXSIZE)") {
		t.Errorf("HAVESPACE over size: %q", last)
	}
	m.ok(`PUTSCRIPT "a" ` + literal("keep;\r\n"))
	m.ok(`PUTSCRIPT "b" "keep;"`)
	if _, last := m.cmd(`PUTSCRIPT "c" "keep;"`); !strings.HasPrefix(last, "NO (QUOTA/MAXSCRIPTS)") {
		t.Errorf("third script: %q", last)
	}
	// Replacing an existing script is not a new one.
	m.ok(`PUTSCRIPT "b" "discard;"`)
	if _, last := m.cmd(`PUTSCRIPT "a" ` + literal(strings.Repeat("#", 201))); !strings.HasPrefix(last, "NO (QUOTA/MAXSIZE)") {
		t.Errorf("big script: %q", last)
	}
	for _, bad := range []string{`"../x"`, `".lock"`, `""`, `"a/b"`, "\"a\tb\""} {
		if _, last := m.cmd(`PUTSCRIPT ` + bad + ` "keep;"`); !strings.HasPrefix(last, "NO") {
			t.Errorf("PUTSCRIPT %s: %q", bad, last)
		}
	}
	m.ok(`SETACTIVE "a"`)
	if lines := m.ok("LISTSCRIPTS"); strings.Join(lines, "|") != `"a" ACTIVE|"b"` {
		t.Errorf("LISTSCRIPTS: %q", lines)
	}
	if _, last := m.cmd(`DELETESCRIPT "a"`); !strings.HasPrefix(last, "NO (ACTIVE)") {
		t.Errorf("DELETESCRIPT active: %q", last)
	}
	if _, last := m.cmd(`RENAMESCRIPT "a" "b"`); !strings.HasPrefix(last, "NO (ALREADYEXISTS)") {
		t.Errorf("RENAMESCRIPT onto existing: %q", last)
	}
	m.ok(`RENAMESCRIPT "a" "c"`)
	if lines := m.ok("LISTSCRIPTS"); strings.Join(lines, "|") != `"b"|"c" ACTIVE` {
		t.Errorf("LISTSCRIPTS after rename: %q", lines)
	}
	if lines := m.ok(`GETSCRIPT "c"`); len(lines) != 1 || lines[0] != strconv.Quote("keep;\r\n") {
		t.Errorf("GETSCRIPT: %q", lines)
	}
	if _, last := m.cmd(`GETSCRIPT "a"`); !strings.HasPrefix(last, "NO (NONEXISTENT)") {
		t.Errorf("GETSCRIPT of old name: %q", last)
	}
	if _, last := m.cmd(`SETACTIVE "zz"`); !strings.HasPrefix(last, "NO (NONEXISTENT)") {
		t.Errorf("SETACTIVE missing: %q", last)
	}
	if _, last := m.cmd(`CHECKSCRIPT "if true {"`); !strings.Contains(last, "line 1") {
		t.Errorf("CHECKSCRIPT broken: %q", last)
	}
	m.ok(`CHECKSCRIPT "keep;"`)
	m.ok(`SETACTIVE ""`)
	m.ok(`DELETESCRIPT "c"`)
	if _, err := os.Lstat(filepath.Join(e.dir, "vmail/example.test/demo/sieve/active.sieve")); !os.IsNotExist(err) {
		t.Errorf("active.sieve after SETACTIVE \"\": %v", err)
	}
	m.ok("UNAUTHENTICATE")
	if _, last := m.cmd(`LISTSCRIPTS`); !strings.HasPrefix(last, "NO") {
		t.Errorf("LISTSCRIPTS after UNAUTHENTICATE: %q", last)
	}
	m.ok("LOGOUT")
}

// TestManageSieveLimits: long lines, huge literals and repeated errors
// get answers and end the session without reading without bound.
func TestManageSieveLimits(t *testing.T) {
	e := startManageSieve(t, "127.0.0.1", func(c *configT) {
		c.ManageSieve.MaxLineLength = 1024
		c.ManageSieve.MaxErrors = 3
		c.LMTPD.SieveMaxSize = 100
	})
	m, _ := dialMS(t, e.addr)
	if _, last := m.cmd("NOOP \"" + strings.Repeat("x", 2000) + "\""); !strings.HasPrefix(last, "NO") {
		t.Errorf("long line: %q", last)
	}
	m.login("demo", "demo")
	// A literal over the size but under four times it is skipped and
	// answered; the session goes on.
	if _, last := m.cmd(`PUTSCRIPT "a" ` + literal(strings.Repeat("#", 150))); !strings.HasPrefix(last, "NO (QUOTA/MAXSIZE)") {
		t.Errorf("big literal: %q", last)
	}
	m.ok("NOOP")
	// One announcing gigabytes ends the session at once.
	if _, last := m.cmd(`PUTSCRIPT "a" {4000000000+}`); !strings.HasPrefix(last, "BYE") {
		t.Errorf("huge literal: %q", last)
	}

	m, _ = dialMS(t, e.addr)
	m.cmd("FOO")
	m.cmd("BAR")
	if _, last := m.cmd("BAZ"); !strings.HasPrefix(last, "BYE") {
		t.Errorf("third bad command: %q", last)
	}
}

// TestManageSieveLoginFailures: the connection closes after [login]
// max_failures, and the address is slowed by the shared brake.
func TestManageSieveLoginFailures(t *testing.T) {
	e := startManageSieve(t, "127.0.0.1", nil)
	m, _ := dialMS(t, e.addr)
	for i := 1; i <= 3; i++ {
		_, last := m.cmd(`AUTHENTICATE "PLAIN" "` + base64.StdEncoding.EncodeToString([]byte("\x00demo\x00wrong")) + `"`)
		if i < 3 && last != `NO "authentication failed"` || i == 3 && !strings.HasPrefix(last, "BYE") {
			t.Errorf("failure %d: %q", i, last)
		}
	}
	n, err := e.srv.guard.Failure("127.0.0.1", "")
	if err != nil || n != 4 {
		t.Errorf("authguard failures after 3 failed logins and this one: %d, %v", n, err)
	}
}

// TestManageSieveLOGIN: the LOGIN mechanism with its challenges.
func TestManageSieveLOGIN(t *testing.T) {
	e := startManageSieve(t, "127.0.0.1", nil)
	m, _ := dialMS(t, e.addr)
	m.send("AUTHENTICATE \"LOGIN\"\r\n")
	for _, answer := range []string{"alice", "alice"} {
		l, _ := m.r.ReadString('\n')
		if !strings.HasPrefix(l, `"`) {
			t.Fatalf("challenge %q", l)
		}
		m.send(`"` + base64.StdEncoding.EncodeToString([]byte(answer)) + "\"\r\n")
	}
	if _, last := m.response(); last != `OK "logged in"` {
		t.Errorf("LOGIN: %q", last)
	}
}

// TestManageSievePlaintextNeedsTLS: away from loopback no mechanism is
// offered and AUTHENTICATE gets ENCRYPT-NEEDED until STARTTLS.
func TestManageSievePlaintextNeedsTLS(t *testing.T) {
	ip := nonLoopbackIP(t)
	e := startManageSieve(t, ip, nil)
	m, caps := dialMS(t, e.addr)
	if !hasLine(caps, `"SASL" ""`) {
		t.Errorf("SASL without TLS: %q", caps)
	}
	if _, last := m.cmd(`AUTHENTICATE "PLAIN" "` + base64.StdEncoding.EncodeToString([]byte("\x00demo\x00demo")) + `"`); !strings.HasPrefix(last, "NO (ENCRYPT-NEEDED)") {
		t.Errorf("AUTHENTICATE without TLS: %q", last)
	}
	caps = m.starttls(e)
	if !hasLine(caps, `"SASL" "PLAIN LOGIN"`) || hasLine(caps, `"STARTTLS"`) {
		t.Errorf("capabilities after STARTTLS: %q", caps)
	}
	m.login("demo", "demo")
	m.ok(`PUTSCRIPT "x" "keep;"`)
}

// TestManageSieveSTARTTLSDiscardsPipelined: nothing sent before the
// handshake is run inside TLS.
func TestManageSieveSTARTTLSDiscardsPipelined(t *testing.T) {
	e := startManageSieve(t, "127.0.0.1", nil)
	m, _ := dialMS(t, e.addr)
	m.send("STARTTLS\r\nAUTHENTICATE \"PLAIN\" \"" + base64.StdEncoding.EncodeToString([]byte("\x00demo\x00demo")) + "\"\r\n")
	if _, last := m.response(); !strings.HasPrefix(last, "OK") {
		t.Fatalf("STARTTLS: %q", last)
	}
	tc := tls.Client(m.conn, e.tlsClient(t))
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	m.conn, m.r = tc, bufio.NewReader(tc)
	m.response()
	if _, last := m.cmd("LISTSCRIPTS"); !strings.HasPrefix(last, "NO") {
		t.Errorf("pipelined AUTHENTICATE ran inside TLS: %q", last)
	}
}

// TestSieveStoreAdoptsRegularFile: an admin's active.sieve becomes the
// script "main", still active.
func TestSieveStoreAdoptsRegularFile(t *testing.T) {
	e := startManageSieve(t, "127.0.0.1", nil)
	e.writeSieve(t, "demo@example.test", "discard;\n")
	m, _ := dialMS(t, e.addr)
	m.login("demo", "demo")
	if lines := m.ok("LISTSCRIPTS"); strings.Join(lines, "|") != `"main" ACTIVE` {
		t.Errorf("LISTSCRIPTS: %q", lines)
	}
	if lines := m.ok(`GETSCRIPT "main"`); len(lines) != 1 || lines[0] != strconv.Quote("discard;\n") {
		t.Errorf("GETSCRIPT main: %q", lines)
	}
}

// nonLoopbackIP finds an address of this machine that is not loopback, or
// skips the test.
func nonLoopbackIP(t *testing.T) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Skipf("no interface addresses: %v", err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			l, err := net.Listen("tcp", net.JoinHostPort(n.IP.String(), "0"))
			if err != nil {
				continue
			}
			l.Close()
			return n.IP.String()
		}
	}
	t.Skip("this machine has no non-loopback IPv4 address to test from")
	return ""
}

// FuzzManageSieveCommand: the command reader never panics, never returns
// more than its limits allow, and takes what it returned from the input.
func FuzzManageSieveCommand(f *testing.F) {
	for _, s := range []string{
		"CAPABILITY\r\n",
		"PUTSCRIPT \"a\" {5+}\r\nkeep;\r\n",
		"PUTSCRIPT \"a\" {5}\r\nkeep;\r\n",
		"HAVESPACE \"a\" 4294967295\r\n",
		"NOOP \"a\\\"b\\\\\"\r\n",
		"AUTHENTICATE \"PLAIN\" {3+}\r\nabc\r\n",
		"X {99999999999}\r\n",
		"\r\n",
		"NOOP \"\x00\"\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bufio.NewReader(strings.NewReader(string(data)))
		for i := 0; i < 10; i++ {
			_, args, err := readCommand(r, 1024, 100)
			if err != nil {
				return
			}
			total := 0
			for _, a := range args {
				total += len(a.s)
			}
			if total > len(data) || total > 1024+100 {
				t.Fatalf("args of %d bytes from %d bytes of input", total, len(data))
			}
		}
	})
}

// TestManageSieveTimeoutsAndConnections: a client silent past [login]
// timeout before login, or managesieve.idle_timeout after, gets BYE; a
// connection over managesieve.max_connections gets BYE (TRYLATER).
func TestManageSieveTimeoutsAndConnections(t *testing.T) {
	e := startManageSieve(t, "127.0.0.1", func(c *configT) {
		c.Login.Timeout = configDuration(300 * time.Millisecond)
		c.ManageSieve.IdleTimeout = configDuration(600 * time.Millisecond)
		c.ManageSieve.MaxConnections = 2
	})
	m1, _ := dialMS(t, e.addr)
	m2, _ := dialMS(t, e.addr)
	m2.login("demo", "demo")
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if l, _ := bufio.NewReader(c).ReadString('\n'); !strings.HasPrefix(l, "BYE (TRYLATER)") {
		t.Errorf("third connection: %q", l)
	}
	start := time.Now()
	if _, last := m1.response(); last != `BYE "idle for too long"` || time.Since(start) > 3*time.Second {
		t.Errorf("before login: %q after %v", last, time.Since(start))
	}
	if _, last := m2.response(); last != `BYE "idle for too long"` {
		t.Errorf("after login: %q", last)
	}
	if time.Since(start) < 400*time.Millisecond {
		t.Errorf("the logged-in session was cut after %v, before idle_timeout", time.Since(start))
	}
}

func configDuration(d time.Duration) config.Duration { return config.Duration(d) }

// TestManageSieveShutdownBye: at shutdown a session waiting for its
// client is told BYE (TRYLATER) (RFC 5804 1.3), in plaintext and after
// STARTTLS, logged in or not.
func TestManageSieveShutdownBye(t *testing.T) {
	e := startManageSieve(t, "127.0.0.1", nil)
	plain, _ := dialMS(t, e.addr)
	secure, _ := dialMS(t, e.addr)
	secure.starttls(e)
	secure.login("demo", "demo")
	go e.srv.shutdown(2 * time.Second)
	for name, m := range map[string]*msClient{"plain": plain, "starttls": secure} {
		if _, last := m.response(); last != `BYE (TRYLATER) "server shutting down"` {
			t.Errorf("%s: %q", name, last)
		}
	}
}

// TestManageSieveShutdownInAuthenticate: a session waiting for the
// client's SASL response is told BYE (TRYLATER) at shutdown too.
func TestManageSieveShutdownInAuthenticate(t *testing.T) {
	e := startManageSieve(t, "127.0.0.1", nil)
	m, _ := dialMS(t, e.addr)
	m.send(`AUTHENTICATE "PLAIN"` + "\r\n")
	if l, err := m.r.ReadString('\n'); err != nil || !strings.HasPrefix(l, `""`) && !strings.HasPrefix(l, "{0}") {
		t.Fatalf("AUTHENTICATE: %q, %v", l, err)
	}
	go e.srv.shutdown(2 * time.Second)
	if _, last := m.response(); last != `BYE (TRYLATER) "server shutting down"` {
		t.Errorf("at shutdown: %q", last)
	}
}
