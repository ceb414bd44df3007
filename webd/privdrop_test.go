package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestPrivilegeDrop: the webd binary, started as root with user =
// "nobody", binds a port below 1024 and then serves as nobody, like the
// other daemons (common/daemon).
func TestPrivilegeDrop(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to bind a low port and change user")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody")
	}
	addr := ""
	for p := 700; p < 1024 && addr == ""; p++ {
		a := "127.0.0.1:" + strconv.Itoa(p)
		if l, err := net.Listen("tcp", a); err == nil {
			l.Close()
			addr = a
		}
	}
	if addr == "" {
		t.Skip("no free port below 1024")
	}
	bin := buildDaemons(t, "webd")
	dir := t.TempDir()
	for d := dir; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	os.WriteFile(filepath.Join(dir, "users"), []byte("demo@example.test:{PLAIN}demo\n"), 0o644)
	cfg := filepath.Join(dir, "tern.toml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`hostname = "mail.example.test"
domains = ["example.test"]
users = %q
maildir = %q
state_dir = %q
user = "nobody"
[webd]
listen = [%q]
tls_listen = []
`, filepath.Join(dir, "users"), filepath.Join(dir, "vmail/%d/%n"), filepath.Join(dir, "state"), addr)), 0o644)
	cmd := exec.Command(filepath.Join(bin, "webd"), "-config", cfg)
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
		if t.Failed() {
			t.Logf("webd:\n%s", out.String())
		}
	})
	var body string
	for i := 0; i < 100; i++ {
		resp, err := http.Get("http://" + addr + pathAutoconfig + "?emailaddress=demo%40example.test")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(body, "<clientConfig") {
		t.Fatalf("no autoconfig from webd: %q", body)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(status), "\n") {
		if f := strings.Fields(l); len(f) == 5 && (f[0] == "Uid:" || f[0] == "Gid:") {
			want := nobody.Uid
			if f[0] == "Gid:" {
				want = nobody.Gid
			}
			for _, v := range f[1:] {
				if v != want {
					t.Errorf("%s %v: not all ids are nobody's", f[0], f[1:])
				}
			}
		}
	}
}
