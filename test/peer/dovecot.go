// Package peer starts the real third-party servers that tern's tests talk
// to or compare tern with, each a private instance in a temporary
// directory on 127.0.0.1 that ends with the test. It is test support only:
// no program imports it.
package peer

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// Dovecot is a real Dovecot started by a test on 127.0.0.1, the oracle for
// what an IMAP server answers about the same Maildir files and the peer
// that reads what tern writes.
type Dovecot struct {
	Addr     string // IMAP, no TLS, plaintext login allowed
	Maildir  string // the one user's Maildir
	UID, GID int    // owner of the mail files (Dovecot refuses uid 0)
	Log      string // Dovecot's log file
}

// DovecotUser and DovecotPassword log in to the instance.
const (
	DovecotUser     = "user@example.test"
	DovecotPassword = "secret"
)

// DovecotBinary returns the dovecot binary, or "" when it is not installed.
func DovecotBinary() string {
	if bin, err := exec.LookPath("dovecot"); err == nil {
		return bin
	}
	if _, err := os.Stat("/usr/sbin/dovecot"); err == nil {
		return "/usr/sbin/dovecot"
	}
	return ""
}

// StartDovecot starts Debian's dovecot-imapd (bin, from DovecotBinary) with
// a temporary configuration: one passwd-file user (DovecotUser,
// DovecotPassword), mail_location = maildir:<dir>, IMAP on a free port of
// 127.0.0.1. It is stopped when the test ends.
func StartDovecot(t testing.TB, bin string) *Dovecot {
	t.Helper()
	base := t.TempDir()
	d := &Dovecot{Maildir: filepath.Join(base, "Maildir"), Log: filepath.Join(base, "dovecot.log")}
	var internal, login string
	if os.Getuid() == 0 {
		// Dovecot will not run mail or login processes as root.
		mu, err1 := user.Lookup("dovecot")
		_, err2 := user.Lookup("dovenull")
		if err1 != nil || err2 != nil {
			t.Fatalf("dovecot is installed but its users are missing: %v %v", err1, err2)
		}
		d.UID, _ = strconv.Atoi(mu.Uid)
		d.GID, _ = strconv.Atoi(mu.Gid)
		internal, login = "root", "dovenull"
		for p := base; p != "/" && p != os.TempDir(); p = filepath.Dir(p) {
			os.Chmod(p, 0o755)
		}
	} else {
		cu, err := user.Current()
		if err != nil {
			t.Fatal(err)
		}
		d.UID, d.GID = os.Getuid(), os.Getgid()
		internal, login = cu.Username, cu.Username
	}
	for _, dir := range []string{d.Maildir, filepath.Join(base, "home")} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		os.Chown(dir, d.UID, d.GID)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	d.Addr = fmt.Sprintf("127.0.0.1:%d", port)
	passwd := filepath.Join(base, "passwd")
	if err := os.WriteFile(passwd, []byte(DovecotUser+":{PLAIN}"+DovecotPassword+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`base_dir = %[1]s/run
state_dir = %[1]s/state
log_path = %[2]s
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:%[3]s
first_valid_uid = 1
default_internal_user = %[4]s
default_internal_group = %[4]s
default_login_user = %[5]s
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = %[6]d
  }
  inet_listener imaps {
    port = 0
  }
  chroot =
}
service anvil {
  chroot =
}
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%%u %[7]s
}
userdb {
  driver = static
  args = uid=%[8]d gid=%[9]d home=%[1]s/home
}
`, base, d.Log, d.Maildir, internal, login, port, passwd, d.UID, d.GID)
	confPath := filepath.Join(base, "dovecot.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-F", "-c", confPath)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start dovecot: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		if t.Failed() {
			log, _ := os.ReadFile(d.Log)
			t.Logf("dovecot log:\n%s", log)
		}
	})
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := net.DialTimeout("tcp", d.Addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(d.Log)
			t.Fatalf("dovecot did not listen on %s: %v\n%s", d.Addr, err, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return d
}

// ChownTree hands files a test wrote (as its own user) to Dovecot's user.
func (d *Dovecot) ChownTree(t testing.TB) {
	t.Helper()
	filepath.Walk(d.Maildir, func(p string, _ os.FileInfo, err error) error {
		if err == nil {
			os.Lchown(p, d.UID, d.GID)
		}
		return nil
	})
}
