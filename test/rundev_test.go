package e2e

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// runDevConfig writes a demo-like config whose TCP listeners are the
// given addresses (":0" ports are fine: run-dev prints what the kernel
// chose) and returns its path.
func runDevConfig(t *testing.T, dir, mx string) string {
	t.Helper()
	users, err := os.ReadFile(filepath.Join(repoRoot(t), "etc", "dev-users"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "users"), string(users))
	writeFile(t, filepath.Join(dir, "aliases"), "postmaster: demo@example.test\n")
	cfg := fmt.Sprintf(`hostname = "mail.example.test"
domains = ["example.test"]
users = "users"
aliases = "aliases"
maildir = "var/vmail/%%d/%%n/Maildir"
state_dir = "var/spool"
[tls]
cert = "var/tls/fullchain.pem"
key = "var/tls/privkey.pem"
generate = true
[smtpd]
mx = [%q]
submission = ["127.0.0.1:0"]
submissions = ["127.0.0.1:0"]
lmtp = "unix:var/run/lmtp.sock"
local_submit = "unix:var/run/submit.sock"
inbound_auth = false
[lmtpd]
listen = ["unix:var/run/lmtp.sock"]
[imapd]
listen = ["127.0.0.1:0"]
tls_listen = ["127.0.0.1:0"]
[pop3d]
listen = ["127.0.0.1:0"]
tls_listen = ["127.0.0.1:0"]
[webd]
listen = ["127.0.0.1:0"]
tls_listen = ["127.0.0.1:0"]
[dns]
resolver = %q
`, mx, closedUDPPort(t))
	path := filepath.Join(dir, "tern.toml")
	writeFile(t, path, cfg)
	return path
}

func runDev(t *testing.T, dir, config string) *exec.Cmd {
	t.Helper()
	if _, err := exec.LookPath("ss"); err != nil {
		t.Skip("ss (iproute2) is not installed; .ci/run installs it")
	}
	cmd := exec.Command(filepath.Join(repoRoot(t), "etc", "run-dev"), config)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "BIN="+binDir)
	return cmd
}

// TestRunDevPrintsWhatItListensOn: the demo's banner gives the addresses
// the daemons really listen on, the certificate's fingerprint and where
// the Maildirs are; Ctrl-C stops every daemon and the script exits 0.
func TestRunDevPrintsWhatItListensOn(t *testing.T) {
	dir := t.TempDir()
	cmd := runDev(t, dir, runDevConfig(t, dir, "127.0.0.1:0"))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = nil
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	banner := map[string]string{}
	deadline := time.After(30 * time.Second)
	for banner["users"] == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("run-dev ended before its banner: %v", banner)
			}
			f := strings.Fields(l)
			if len(f) > 1 {
				banner[f[0]] = strings.Join(f[1:], " ")
			}
		case <-deadline:
			t.Fatalf("no complete banner in 30 s: %v", banner)
		}
	}
	// smtpd: MX, submission, submissions and the submit socket, each a
	// real port that accepts a connection.
	addrs := regexp.MustCompile(`127\.0\.0\.1:(\d+)`).FindAllStringSubmatch(banner["smtpd"], -1)
	if len(addrs) != 3 || !strings.Contains(banner["smtpd"], "unix:var/run/submit.sock") {
		t.Fatalf("smtpd line %q: want three TCP addresses and the submit socket", banner["smtpd"])
	}
	for _, d := range []string{"smtpd", "imapd", "pop3d", "webd"} {
		for _, a := range regexp.MustCompile(`127\.0\.0\.1:\d+`).FindAllString(banner[d], -1) {
			if strings.HasSuffix(a, ":0") {
				t.Errorf("%s: banner shows %s, not the port the kernel chose", d, a)
			}
			c, err := net.DialTimeout("tcp", a, 2*time.Second)
			if err != nil {
				t.Errorf("%s: banner address %s: %v", d, a, err)
				continue
			}
			c.Close()
		}
	}
	if !strings.HasPrefix(banner["sha256"], "Fingerprint=") {
		t.Errorf("no certificate fingerprint in the banner: %v", banner)
	}
	if !strings.Contains(banner["Maildirs"], "var/vmail") {
		t.Errorf("banner does not say where the Maildirs are: %v", banner)
	}
	cmd.Process.Signal(syscall.SIGINT)
	if err := cmd.Wait(); err != nil {
		t.Errorf("run-dev after Ctrl-C: %v", err)
	}
}

// TestRunDevStopsWhenADaemonFails: with the MX port taken by another
// program, smtpd cannot start; the demo must say so and stop the others
// rather than print a banner over a half-running system.
func TestRunDevStopsWhenADaemonFails(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	dir := t.TempDir()
	cmd := runDev(t, dir, runDevConfig(t, dir, taken.Addr().String()))
	done := make(chan struct{})
	var out []byte
	go func() {
		out, err = cmd.CombinedOutput()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("run-dev still running 30 s after smtpd failed to start")
	}
	if err == nil {
		t.Fatalf("run-dev exited 0 with smtpd unable to listen:\n%s", out)
	}
	if !strings.Contains(string(out), "run-dev: smtpd exited") {
		t.Errorf("run-dev does not say which daemon failed:\n%s", out)
	}
	if strings.Contains(string(out), "demo running") {
		t.Errorf("run-dev printed its banner although smtpd failed:\n%s", out)
	}
	// No daemon of this demo may be left running.
	ps, _ := exec.Command("pgrep", "-f", filepath.Join(dir, "tern.toml")).Output()
	if len(strings.TrimSpace(string(ps))) > 0 {
		t.Errorf("daemons still running after run-dev exited: pids %s", ps)
	}
}
