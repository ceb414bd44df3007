package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"tern/common/config"
	"tern/common/maildir"
)

// Two imapd processes (the built binary, twice) over one Maildir tree: a
// flag change, an APPEND and an EXPUNGE made through one reach an IDLE
// session of the other within 2 s, with nothing shared but the files; an
// APPEND through one reaches a NOTIFY session of the other as STATUS.
func TestTwoProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the imapd binary")
	}
	dir, bin := buildImapd(t)
	maildirTemplate := filepath.Join(dir, "vmail", "%d", "%n", "Maildir")
	root, err := config.Expand(maildirTemplate, "demo@example.test")
	if err != nil {
		t.Fatal(err)
	}
	mbox, err := maildir.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"one", "two", "three"} {
		if _, _, err := mbox.Deliver("INBOX", strings.NewReader(testMessage(s, s+"\r\n")), nil); err != nil {
			t.Fatal(err)
		}
	}

	start := func(name string) string {
		// idle_recheck: how soon A sees B's metadata changes (NOTIFY).
		addr, _ := startProcess(t, bin, dir, maildirTemplate, name, `idle_recheck = "300ms"`)
		return addr
	}
	addrA, addrB := start("a"), start("b")

	ev := newEvents()
	a := dialLogin(t, addrA, ev.handler())
	selectInbox(t, a)
	idle, err := a.Idle()
	if err != nil {
		t.Fatal(err)
	}
	b := dialLogin(t, addrB, nil)
	selectInbox(t, b)

	if err := b.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true,
		Flags: []imap.Flag{imap.FlagFlagged}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	ev.waitFor(t, "FETCH FLAGS of 1 from the other process", func() bool { return len(ev.flags) > 0 && ev.flags[0] == 1 })

	body := testMessage("four", "4\r\n")
	app := b.Append("INBOX", int64(len(body)), nil)
	app.Write([]byte(body))
	app.Close()
	if _, err := app.Wait(); err != nil {
		t.Fatal(err)
	}
	ev.waitFor(t, "EXISTS 4 from the other process", func() bool { return len(ev.exists) > 0 && ev.exists[len(ev.exists)-1] == 4 })

	if err := b.Store(imap.SeqSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true,
		Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Expunge().Close(); err != nil {
		t.Fatal(err)
	}
	ev.waitFor(t, "EXPUNGE 2 from the other process", func() bool { return len(ev.expunges) == 1 && ev.expunges[0] == 2 })

	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatal(err)
	}
	// After the expunge, process A's numbering is B's.
	msgs, err := a.Fetch(imap.SeqSetNum(2), &imap.FetchOptions{Envelope: true}).Collect()
	if err != nil || len(msgs) != 1 || msgs[0].Envelope.Subject != "three" {
		t.Fatalf("FETCH 2 after the other's EXPUNGE: %+v %v", msgs, err)
	}

	// NOTIFY (RFC 5465): an APPEND through process B to a mailbox that
	// a session of process A watches without selecting it reaches that
	// session as STATUS, with no command running.
	nc, err := net.Dial("tcp", addrA)
	if err != nil {
		t.Fatal(err)
	}
	w := newWireConn(t, nc)
	w.line()
	w.login()
	w.ok("C", "CREATE Watched")
	w.ok("N", "NOTIFY SET (mailboxes Watched (MessageNew MessageExpunge))")
	app = b.Append("Watched", int64(len(body)), nil)
	app.Write([]byte(body))
	app.Close()
	if _, err := app.Wait(); err != nil {
		t.Fatal(err)
	}
	w.await(`^\* STATUS "Watched" \(MESSAGES 1 UIDNEXT 2\)`)

	// NOTIFY's metadata events (RFC 5465 5.6, 5.7): a SETMETADATA through
	// process B reaches the NOTIFY session of process A as METADATA,
	// found by A's stat of the files every idle_recheck.
	w.ok("M", "NOTIFY SET (mailboxes Watched (MailboxMetadataChange)) (personal (ServerMetadataChange))")
	bc, err := net.Dial("tcp", addrB)
	if err != nil {
		t.Fatal(err)
	}
	wb := newWireConn(t, bc)
	wb.line()
	wb.login()
	wb.ok("a", `SETMETADATA Watched (/private/comment "from b")`)
	if l := w.await(`^\* METADATA `); l != "* METADATA \"Watched\" /private/comment\r\n" {
		t.Fatalf("METADATA from the other process: %q", l)
	}
	wb.ok("b", `SETMETADATA "" (/shared/motd "from b")`)
	if l := w.await(`^\* METADATA `); l != "* METADATA \"\" /shared/motd\r\n" {
		t.Fatalf("server METADATA from the other process: %q", l)
	}
}

// buildImapd builds the imapd binary into a temporary directory, which it
// returns with the binary's path.
func buildImapd(t *testing.T) (dir, bin string) {
	t.Helper()
	dir = t.TempDir()
	bin = filepath.Join(dir, "imapd")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return dir, bin
}

// startProcess runs the imapd binary bin on a configuration named name in
// dir (users file and certificate made there) serving maildirTemplate,
// with the lines imapd added to its [imapd] section, and returns its plain
// address and a stop function (SIGTERM, then a check that it exited
// cleanly), also run at cleanup.
func startProcess(t *testing.T, bin, dir, maildirTemplate, name string, imapd ...string) (addr string, stop func()) {
	t.Helper()
	users := filepath.Join(dir, "users")
	aliases := filepath.Join(dir, "aliases")
	if err := os.WriteFile(users, []byte(testUsers), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(aliases, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	addr, tlsAddr := freeAddr(t), freeAddr(t)
	conf := fmt.Sprintf(`hostname = "mail.example.test"
domains = ["example.test"]
users = %q
aliases = %q
maildir = %q
state_dir = %q

[tls]
cert = %q
key = %q
generate = true

[imapd]
listen = [%q]
tls_listen = [%q]
`, users, aliases, maildirTemplate, filepath.Join(dir, "spool"),
		filepath.Join(dir, name+"-cert.pem"), filepath.Join(dir, name+"-key.pem"), addr, tlsAddr)
	for _, l := range imapd {
		conf += l + "\n"
	}
	cfgPath := filepath.Join(dir, name+".toml")
	if err := os.WriteFile(cfgPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	logs, stop := runDaemon(t, name, bin, cfgPath)
	waitListening(t, addr, logs)
	return addr, stop
}

// runDaemon runs a daemon binary on a configuration file and returns its
// log and a stop function (SIGTERM, then a check that it exited cleanly
// within 6 s), also run at cleanup.
func runDaemon(t *testing.T, name, bin, cfgPath string) (*bytes.Buffer, func()) {
	t.Helper()
	logs := new(bytes.Buffer)
	cmd := exec.Command(bin, "-config", cfgPath)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		// SIGTERM: the daemon ends its sessions and exits within its grace.
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s exited with %v\n%s", name, err, logs.String())
			}
		case <-time.After(6 * time.Second):
			cmd.Process.Kill()
			t.Errorf("%s did not exit within 6 s of SIGTERM", name)
		}
	}
	t.Cleanup(stop)
	return logs, stop
}

// freeAddr returns a loopback address with a port that was free just now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitListening(t *testing.T, addr string, logs *bytes.Buffer) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("imapd did not listen on %s: %v\n%s", addr, err, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func dialLogin(t *testing.T, addr string, h *imapclient.UnilateralDataHandler) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(addr, &imapclient.Options{UnilateralDataHandler: h})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login("demo", "demo").Wait(); err != nil {
		t.Fatalf("login on %s: %v", addr, err)
	}
	return c
}
