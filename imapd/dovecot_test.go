package main

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

// dovecotServer is a real Dovecot started by a test on 127.0.0.1, the
// oracle for what an IMAP server answers about the same Maildir files.
type dovecotServer struct {
	addr     string
	maildir  string
	uid, gid int // owner of the mail files (Dovecot refuses uid 0)
	log      string
}

// findDovecot returns the dovecot binary, or "" when it is not installed.
func findDovecot() string {
	if bin, err := exec.LookPath("dovecot"); err == nil {
		return bin
	}
	if _, err := os.Stat("/usr/sbin/dovecot"); err == nil {
		return "/usr/sbin/dovecot"
	}
	return ""
}

// startDovecot starts Debian's dovecot-imapd with a temporary
// configuration: one passwd-file user (user@example.test, "secret"),
// mail_location = maildir:<dir>, IMAP on a free port of 127.0.0.1.
func startDovecot(t *testing.T, bin string) *dovecotServer {
	t.Helper()
	base := t.TempDir()
	d := &dovecotServer{maildir: filepath.Join(base, "Maildir"), log: filepath.Join(base, "dovecot.log")}
	var internal, login string
	if os.Getuid() == 0 {
		// Dovecot will not run mail or login processes as root.
		mu, err1 := user.Lookup("dovecot")
		_, err2 := user.Lookup("dovenull")
		if err1 != nil || err2 != nil {
			t.Fatalf("dovecot is installed but its users are missing: %v %v", err1, err2)
		}
		d.uid, _ = strconv.Atoi(mu.Uid)
		d.gid, _ = strconv.Atoi(mu.Gid)
		internal, login = "root", "dovenull"
		for p := base; p != "/" && p != os.TempDir(); p = filepath.Dir(p) {
			os.Chmod(p, 0o755)
		}
	} else {
		cu, err := user.Current()
		if err != nil {
			t.Fatal(err)
		}
		d.uid, d.gid = os.Getuid(), os.Getgid()
		internal, login = cu.Username, cu.Username
	}
	for _, dir := range []string{d.maildir, filepath.Join(base, "home")} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		os.Chown(dir, d.uid, d.gid)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	d.addr = fmt.Sprintf("127.0.0.1:%d", port)
	passwd := filepath.Join(base, "passwd")
	if err := os.WriteFile(passwd, []byte("user@example.test:{PLAIN}secret\n"), 0o644); err != nil {
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
`, base, d.log, d.maildir, internal, login, port, passwd, d.uid, d.gid)
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
			log, _ := os.ReadFile(d.log)
			t.Logf("dovecot log:\n%s", log)
		}
	})
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := net.DialTimeout("tcp", d.addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(d.log)
			t.Fatalf("dovecot did not listen on %s: %v\n%s", d.addr, err, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return d
}

// addFolder makes the Maildir++ folder name (".name" beside the INBOX)
// holding one message file with the given content, owned by Dovecot's user.
func (d *dovecotServer) addFolder(t *testing.T, name, file string, content []byte) {
	t.Helper()
	dir := filepath.Join(d.maildir, "."+name)
	for _, sub := range []string{"", "cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			t.Fatal(err)
		}
		os.Chown(filepath.Join(dir, sub), d.uid, d.gid)
	}
	p := filepath.Join(dir, "cur", file)
	if err := os.WriteFile(p, content, 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chown(p, d.uid, d.gid)
}
