package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestBinarySIGTERM builds pop3d and runs it as a process: -check accepts
// the config, a session that marked messages deleted is told on SIGTERM,
// the process exits 0 within 5 s, and nothing is removed.
func TestBinarySIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	env := newEnv(t)
	env.deliver(t, "demo@example.test", 3)
	bin := filepath.Join(t.TempDir(), "pop3d")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	plain, tlsAddr := freeAddr(t), freeAddr(t)
	cfg := fmt.Sprintf(`hostname = "mail.example.test"
domains = ["example.test"]
users = %q
maildir = %q
state_dir = %q

[tls]
cert = %q
key = %q
generate = true

[pop3d]
listen = [%q]
tls_listen = [%q]
mark_seen = false
max_auth_failures = 3
max_errors = 10
idle_timeout = "10m"
`, env.cfg.Users, env.cfg.Maildir, env.dir, env.cfg.TLS.Cert, env.cfg.TLS.Key, plain, tlsAddr)
	cfgPath := filepath.Join(env.dir, "tern.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-config", cfgPath, "-check").CombinedOutput(); err != nil {
		t.Fatalf("-check: %v\n%s", err, out)
	}

	cmd := exec.Command(bin, "-config", cfgPath)
	var logs lockedBuffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		if t.Failed() {
			t.Logf("pop3d log:\n%s", logs.String())
		}
	})
	var conn net.Conn
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := net.Dial("tcp", plain)
		if err == nil {
			conn = c
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pop3d did not listen: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	conn.Close()
	p := dialPOP(t, plain)
	p.login("demo", "demo")
	p.ok("DELE 1")
	p.ok("DELE 3")

	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if got := p.line(); got != "-ERR [SYS/TEMP] server shutting down, no messages removed" {
		t.Errorf("on SIGTERM: %q", got)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("exit: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("pop3d did not exit within 5 s of SIGTERM")
	}
	t.Logf("stopped %v after SIGTERM", time.Since(start).Round(time.Millisecond))
	if n := len(env.inbox(t, "demo@example.test").Messages); n != 3 {
		t.Errorf("after SIGTERM %d messages, want 3", n)
	}
	if !strings.Contains(logs.String(), "event=login") {
		t.Errorf("no login event in the log")
	}
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
