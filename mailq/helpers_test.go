package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"tern/common/smtptest"
)

// binDir holds smtpd and mailq built once for the package, with sendmail
// and newaliases linked to mailq, in a directory any user may enter (the
// tests run sendmail as nobody too).
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tern-mailq-bin-")
	if err == nil {
		err = os.Chmod(dir, 0o755)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	cmd := exec.Command("go", "build", "-o", dir+"/", "tern/smtpd", "tern/mailq")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building smtpd and mailq:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	for _, name := range []string{"sendmail", "newaliases"} {
		if err := os.Symlink("mailq", filepath.Join(dir, name)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// env is a running smtpd (the built binary) with its own directory, an
// LMTP server standing in for lmtpd, and a remote MX reached through
// smtpd.transport that can be down (nothing listening) or up.
type env struct {
	t      testing.TB
	dir    string
	config string
	sock   string
	remote string // "127.0.0.1:port" of remote.test's MX
	lmtp   *smtptest.Sink
	mx     *smtptest.Sink
	smtpd  *exec.Cmd
	log    *lockedBuffer
}

// newEnv writes the config and starts smtpd; the remote MX starts down.
func newEnv(t *testing.T) *env {
	t.Helper()
	dir, err := os.MkdirTemp("", "tern-mailq-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	// World-traversable, so that a sendmail run as nobody can read the
	// config and reach the socket.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, dir: dir, config: filepath.Join(dir, "tern.toml"), sock: filepath.Join(dir, "run", "submit.sock")}
	e.remote = freePort(t)
	writeFile(t, filepath.Join(dir, "users"), "demo@example.test:{PLAIN}demo\nalice@example.test:{PLAIN}alice\n", 0o600)
	writeFile(t, filepath.Join(dir, "aliases"), "root: demo\n", 0o644)
	writeFile(t, e.config, fmt.Sprintf(`hostname = "mail.example.test"
domains = ["example.test"]
users = %q
aliases = %q
maildir = %q
state_dir = %q
[smtpd]
mx = []
submission = []
submissions = []
lmtp = %q
local_submit = %q
transport = { "remote.test" = %q }
local_retry = "1s"
retry_min = "1h"
retry_max = "2h"
connect_timeout = "2s"
`, filepath.Join(dir, "users"), filepath.Join(dir, "aliases"), filepath.Join(dir, "vmail/%d/%n"),
		filepath.Join(dir, "spool"), "unix:"+filepath.Join(dir, "lmtp.sock"), "unix:"+e.sock, e.remote), 0o644)
	e.lmtp = smtptest.Start(t, "unix", filepath.Join(dir, "lmtp.sock"), true)
	e.startSMTPD()
	return e
}

func (e *env) startSMTPD() {
	t := e.t
	t.Helper()
	e.log = &lockedBuffer{}
	cmd := exec.Command(filepath.Join(binDir, "smtpd"), "-config", e.config)
	cmd.Stdout, cmd.Stderr = e.log, e.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	e.smtpd = cmd
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		if t.Failed() {
			t.Logf("smtpd log:\n%s", e.log.String())
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("unix", e.sock)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("smtpd did not listen on %s: %v\n%s", e.sock, err, e.log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startRemote brings remote.test's MX up on its reserved port.
func (e *env) startRemote() {
	e.t.Helper()
	e.mx = smtptest.Start(e.t, "tcp", e.remote, false)
}

// result is one run of a program.
type result struct {
	code           int
	stdout, stderr string
}

// run runs bin/<name> with args and stdin, as root or, with asNobody, as
// user nobody.
func (e *env) run(name, stdin string, asNobody bool, args ...string) result {
	e.t.Helper()
	cmd := exec.Command(filepath.Join(binDir, name), args...)
	cmd.Dir = e.dir
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if asNobody {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	}
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("run %s: %v", name, err)
	}
	return r
}

// sendmail runs bin/sendmail with this env's config.
func (e *env) sendmail(stdin string, args ...string) result {
	e.t.Helper()
	return e.run("sendmail", stdin, false, append([]string{"-config", e.config}, args...)...)
}

// mailq runs bin/mailq with this env's config.
func (e *env) mailq(args ...string) result {
	e.t.Helper()
	return e.run("mailq", "", false, append([]string{"-config", e.config}, args...)...)
}

// queueFiles lists every file under the queue's tmp, data and env
// directories, to prove nothing was left half-written.
func (e *env) queueFiles() []string {
	var out []string
	for _, sub := range []string{"tmp", "data", "env"} {
		ents, _ := os.ReadDir(filepath.Join(e.dir, "spool", "queue", sub))
		for _, de := range ents {
			out = append(out, sub+"/"+de.Name())
		}
	}
	return out
}

// queueIDs are the ids of the queued messages.
func (e *env) queueIDs() []string {
	ents, _ := os.ReadDir(filepath.Join(e.dir, "spool", "queue", "env"))
	var ids []string
	for _, de := range ents {
		ids = append(ids, de.Name())
	}
	return ids
}

func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func writeFile(t testing.TB, path, data string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
}

func freePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

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
