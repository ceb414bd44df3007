package e2e

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// freePrivilegedPort finds a loopback port below 1024 that nobody uses.
func freePrivilegedPort(t *testing.T) string {
	t.Helper()
	for p := 600; p < 1024; p++ {
		a := "127.0.0.1:" + strconv.Itoa(p)
		if l, err := net.Listen("tcp", a); err == nil {
			l.Close()
			return a
		}
	}
	t.Skip("no free port below 1024")
	return ""
}

// TestPrivilegeDropWithoutSystemd: started as root with user = "nobody",
// pop3d binds a port below 1024, then runs as nobody, and what it creates
// (the login table under state_dir, the certificate) belongs to nobody
// (issue 9).
func TestPrivilegeDropWithoutSystemd(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to bind a low port and change user")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody")
	}
	uid, _ := strconv.Atoi(nobody.Uid)
	gid, _ := strconv.Atoi(nobody.Gid)

	dir := t.TempDir()
	// The daemon, once nobody, must reach its files through every parent.
	for d := dir; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	users, err := os.ReadFile(filepath.Join(repoRoot(t), "etc", "dev-users"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "users"), string(users))
	os.MkdirAll(filepath.Join(dir, "spool"), 0o700)
	os.MkdirAll(filepath.Join(dir, "vmail"), 0o700)
	os.MkdirAll(filepath.Join(dir, "tls"), 0o700)
	for _, d := range []string{"spool", "vmail", "tls"} {
		os.Chown(filepath.Join(dir, d), uid, gid)
	}
	addr := freePrivilegedPort(t)
	cfg := filepath.Join(dir, "tern.toml")
	writeFile(t, cfg, fmt.Sprintf(`domains = ["example.test"]
users = %q
maildir = %q
state_dir = %q
user = "nobody"
[tls]
cert = %q
key = %q
generate = true
[pop3d]
listen = [%q]
tls_listen = []
`, filepath.Join(dir, "users"), filepath.Join(dir, "vmail", "%d", "%n"), filepath.Join(dir, "spool"),
		filepath.Join(dir, "tls", "cert.pem"), filepath.Join(dir, "tls", "key.pem"), addr))

	cmd := exec.Command(filepath.Join(binDir, "pop3d"), "-config", cfg)
	var buf bytes.Buffer
	lb := &lockedBuffer{b: &buf}
	cmd.Stdout, cmd.Stderr = lb, lb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		if t.Failed() {
			logMu.Lock()
			t.Logf("pop3d log:\n%s", buf.String())
			logMu.Unlock()
		}
	})
	waitListening(t, addr, cmd)

	// The daemon listens before it drops its privileges (it must, for the
	// low port), so the port answering says nothing about the ids yet:
	// wait a little for the drop, then insist.
	var wrong []string
	for deadline := time.Now().Add(5 * time.Second); ; {
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
		if err != nil {
			t.Fatal(err)
		}
		wrong = nil
		for _, l := range strings.Split(string(status), "\n") {
			if f := strings.Fields(l); len(f) == 5 && (f[0] == "Uid:" || f[0] == "Gid:") {
				want := nobody.Uid
				if f[0] == "Gid:" {
					want = nobody.Gid
				}
				for _, v := range f[1:] {
					if v != want {
						wrong = append(wrong, fmt.Sprintf("%s %v: not all ids are nobody's", f[0], f[1:]))
						break
					}
				}
			}
		}
		if len(wrong) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, w := range wrong {
		t.Error(w)
	}
	// A login works, so the daemon reads its files as nobody.
	c := Dial(t, addr)
	c.Line()
	c.Send("USER demo\r\nPASS demo\r\nSTAT\r\nQUIT\r\n")
	for i := 0; i < 3; i++ {
		if l := c.Line(); !strings.HasPrefix(l, "+OK") {
			t.Fatalf("reply %d: %q", i, l)
		}
	}
	time.Sleep(100 * time.Millisecond)
	for _, p := range []string{filepath.Join(dir, "tls", "cert.pem"), filepath.Join(dir, "vmail", "example.test", "demo")} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != uid {
			t.Errorf("%s belongs to uid %d, want nobody (%d)", p, st.Uid, uid)
		}
	}
}
