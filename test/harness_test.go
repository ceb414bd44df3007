// Package e2e drives the built tern binaries end to end: real daemons on
// loopback ports, a real Maildir tree in a temporary directory, and real
// clients (Python's smtplib, imaplib and poplib, and raw sockets for the
// protocol edge cases).
package e2e

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binDir holds the binaries built once for the whole package.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tern-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	args := []string{"build", "-o", dir + "/"}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "tern/smtpd", "tern/lmtpd", "tern/imapd", "tern/pop3d", "tern/webd", "tern/mailq")
	cmd := exec.Command("go", args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the daemons:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// repoRoot is the top of the repository (tests run in test/).
func repoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

// freePort returns a loopback address nobody listens on right now.
func freePort(t testing.TB) string {
	t.Helper()
	return freePortOn(t, "127.0.0.1")
}

// freePortOn is freePort on another loopback address (127.0.0.2 …).
func freePortOn(t testing.TB, ip string) string {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// closedUDPPort returns a loopback UDP address nobody listens on.
func closedUDPPort(t testing.TB) string {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().String()
}

// Tern is one running set of daemons with its own config and directory.
type Tern struct {
	Dir    string
	Config string
	// Addresses of the listeners.
	MX, Submission, Submissions, IMAP, IMAPS, POP3, POP3S, LMTP, Submit string
	procs                                                               map[string]*exec.Cmd
	logs                                                                map[string]*bytes.Buffer

	// Metrics is each daemon's Prometheus endpoint ("host:port").
	Metrics map[string]string
}

// StartTern writes a config for a temporary directory with free loopback
// ports and starts the four daemons, waiting until each listens.
func StartTern(t testing.TB) *Tern {
	t.Helper()
	dir := t.TempDir()
	users, err := os.ReadFile(filepath.Join(repoRoot(t), "etc", "dev-users"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "users"), users, 0o600); err != nil {
		t.Fatal(err)
	}
	aliases := "postmaster: demo@example.test\nteam: demo, alice\n"
	if err := os.WriteFile(filepath.Join(dir, "aliases"), []byte(aliases), 0o600); err != nil {
		t.Fatal(err)
	}
	tn := &Tern{
		Dir:    dir,
		Config: filepath.Join(dir, "tern.toml"),
		LMTP:   "unix:" + filepath.Join(dir, "run", "lmtp.sock"),
		Submit: "unix:" + filepath.Join(dir, "run", "submit.sock"),
		procs:  map[string]*exec.Cmd{},
		logs:   map[string]*bytes.Buffer{},
	}
	t.Cleanup(func() {
		for d := range tn.procs {
			tn.Stop(t, d)
		}
		if t.Failed() {
			for d := range tn.logs {
				t.Logf("--- %s log:\n%s", d, tn.Log(d))
			}
		}
	})
	// freePort's port is free when it answers, not when the daemon binds
	// it: with the whole suite running, another test may take it in
	// between. A daemon that could not bind is started again on new
	// ports rather than failing the test.
	for attempt := 1; ; attempt++ {
		err := tn.startOnFreePorts(t)
		if err == nil {
			return tn
		}
		for d := range tn.procs {
			tn.Stop(t, d)
		}
		if attempt == 5 || !errors.Is(err, errPortTaken) {
			t.Fatal(err)
		}
		t.Logf("%v; again on new ports", err)
		tn.logs = map[string]*bytes.Buffer{}
	}
}

// errPortTaken: a daemon exited because one of its ports was in use.
var errPortTaken = errors.New("a port was taken before the daemon bound it")

// startOnFreePorts picks free loopback ports, writes the config and starts
// the four daemons, waiting until each listens.
func (tn *Tern) startOnFreePorts(t testing.TB) error {
	t.Helper()
	dir := tn.Dir
	tn.MX, tn.Submission, tn.Submissions = freePort(t), freePort(t), freePort(t)
	tn.IMAP, tn.IMAPS, tn.POP3, tn.POP3S = freePort(t), freePort(t), freePort(t), freePort(t)
	tn.Metrics = map[string]string{"smtpd": freePort(t), "lmtpd": freePort(t), "imapd": freePort(t), "pop3d": freePort(t)}
	cfg := fmt.Sprintf(`hostname = "mail.example.test"
domains = ["example.test"]
users = %[1]q
aliases = %[2]q
maildir = %[3]q
state_dir = %[4]q
# The LMTP socket and sendmail's socket are lmtp.sock and submit.sock here.
runtime_dir = %[10]q
[log]
level = "debug"
[tls]
cert = %[5]q
key = %[6]q
generate = true
[smtpd]
mx = [%[7]q]
submission = [%[8]q]
submissions = [%[9]q]
metrics = %[17]q
[lmtpd]
sieve = %[11]q
metrics = %[18]q
[imapd]
listen = [%[12]q]
tls_listen = [%[13]q]
metrics = %[19]q
[pop3d]
listen = [%[14]q]
tls_listen = [%[15]q]
metrics = %[20]q
[dns]
# A loopback port nobody answers on: lookups fail at once (this machine
# has no DNS), so SPF/DKIM/DMARC give temperror instead of waiting.
resolver = %[16]q
`, filepath.Join(dir, "users"), filepath.Join(dir, "aliases"),
		filepath.Join(dir, "vmail", "%d", "%n", "Maildir"), filepath.Join(dir, "spool"),
		filepath.Join(dir, "tls", "cert.pem"), filepath.Join(dir, "tls", "key.pem"),
		tn.MX, tn.Submission, tn.Submissions, filepath.Join(dir, "run"),
		filepath.Join(dir, "vmail", "%d", "%n", "sieve", "active.sieve"),
		tn.IMAP, tn.IMAPS, tn.POP3, tn.POP3S, closedUDPPort(t),
		tn.Metrics["smtpd"], tn.Metrics["lmtpd"], tn.Metrics["imapd"], tn.Metrics["pop3d"])
	if err := os.WriteFile(tn.Config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"lmtpd", "smtpd", "imapd", "pop3d"} {
		if err := tn.start(d); err != nil {
			return err
		}
	}
	return nil
}

// Start starts one daemon and waits for its listeners.
func (tn *Tern) Start(t testing.TB, daemon string) {
	t.Helper()
	if err := tn.start(daemon); err != nil {
		t.Fatal(err)
	}
}

func (tn *Tern) start(daemon string) error {
	cmd := exec.Command(filepath.Join(binDir, daemon), "-config", tn.Config)
	cmd.Dir = tn.Dir
	buf := tn.logs[daemon]
	if buf == nil {
		buf = &bytes.Buffer{}
		tn.logs[daemon] = buf
	}
	lb := &lockedBuffer{b: buf}
	cmd.Stdout, cmd.Stderr = lb, lb
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", daemon, err)
	}
	tn.procs[daemon] = cmd
	var addrs []string
	switch daemon {
	case "smtpd":
		addrs = []string{tn.MX, tn.Submission, tn.Submissions, tn.Submit}
	case "lmtpd":
		addrs = []string{tn.LMTP}
	case "imapd":
		addrs = []string{tn.IMAP, tn.IMAPS}
	case "pop3d":
		addrs = []string{tn.POP3, tn.POP3S}
	}
	for _, a := range addrs {
		portTaken := func() error {
			if strings.Contains(tn.Log(daemon), "address already in use") {
				return fmt.Errorf("%s: %w", daemon, errPortTaken)
			}
			return nil
		}
		if err := waitAddr(a, cmd, portTaken); err != nil {
			return err
		}
	}
	return nil
}

// Stop sends SIGTERM to a daemon and waits for it to exit.
func (tn *Tern) Stop(t testing.TB, daemon string) time.Duration {
	t.Helper()
	cmd := tn.procs[daemon]
	if cmd == nil {
		return 0
	}
	delete(tn.procs, daemon)
	start := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Errorf("%s did not stop within 15 s of SIGTERM", daemon)
	}
	return time.Since(start)
}

// Log returns what a daemon has logged so far.
func (tn *Tern) Log(daemon string) string {
	logMu.Lock()
	defer logMu.Unlock()
	return tn.logs[daemon].String()
}

// logMu guards every daemon's log buffer: the daemons write while tests read.
var logMu sync.Mutex

// lockedBuffer is the writer given to a daemon process.
type lockedBuffer struct{ b *bytes.Buffer }

func (l *lockedBuffer) Write(p []byte) (int, error) {
	logMu.Lock()
	defer logMu.Unlock()
	return l.b.Write(p)
}

// Maildir is the Maildir root of a user.
func (tn *Tern) Maildir(local string) string {
	return filepath.Join(tn.Dir, "vmail", "example.test", local, "Maildir")
}

func waitListening(t testing.TB, addr string, cmd *exec.Cmd) {
	t.Helper()
	if err := waitAddr(addr, cmd, nil); err != nil {
		t.Fatal(err)
	}
}

// waitAddr waits until addr accepts connections, for at most 20 s, until
// cmd has been reaped, or until failed (if not nil) reports an error.
func waitAddr(addr string, cmd *exec.Cmd, failed func() error) error {
	network, a := "tcp", addr
	if p, ok := strings.CutPrefix(addr, "unix:"); ok {
		network, a = "unix", p
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout(network, a, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if cmd.ProcessState != nil {
			break
		}
		if failed != nil {
			if err := failed(); err != nil {
				return err
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s: nothing listening on %s", filepath.Base(cmd.Path), addr)
}

// Conn is a raw line-oriented client connection for protocol edge cases.
type Conn struct {
	t testing.TB
	c net.Conn
	r *bufio.Reader
}

// Dial opens a raw connection to addr.
func Dial(t testing.TB, addr string) *Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	return &Conn{t: t, c: c, r: bufio.NewReader(c)}
}

// Line reads one reply line without its CRLF.
func (c *Conn) Line() string {
	c.t.Helper()
	l, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("read: %v (got %q)", err, l)
	}
	return strings.TrimRight(l, "\r\n")
}

// SMTPReply reads a possibly multi-line SMTP reply and returns its last line.
func (c *Conn) SMTPReply() string {
	c.t.Helper()
	for {
		l := c.Line()
		if len(l) < 4 || l[3] != '-' {
			return l
		}
	}
}

// Send writes raw bytes.
func (c *Conn) Send(s string) {
	c.t.Helper()
	if _, err := c.c.Write([]byte(s)); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// python runs a Python script with the test's arguments and returns its
// standard output. The clients are Python's own smtplib, imaplib, poplib.
func python(t testing.TB, script string, args ...string) string {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed (CI installs Debian's python3)")
	}
	cmd := exec.Command(py, append([]string{"-c", script}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("python: %v\n%s", err, errb.String())
	}
	return out.String()
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
