package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"tern/common/config"
)

// QUOTA (RFC 9208) against the rule lmtpd delivers by: the built lmtpd
// binary delivers into the Maildir imapd serves, GETQUOTA follows every
// delivery, lmtpd refuses where GETQUOTA says the room ends, and APPEND
// and COPY are refused with NO [OVERQUOTA] there too.

// quotaUsers gives demo a 10 KiB quota in the users file (Dovecot's
// syntax, as lmtpd reads it); alice has none.
const quotaUsers = "demo@example.test:{PLAIN}demo:::::: userdb_quota_rule=*:storage=10K\nalice@example.test:{PLAIN}alice\n"

func quotaServer(t *testing.T) *testEnv {
	t.Helper()
	users := filepath.Join(t.TempDir(), "users")
	if err := os.WriteFile(users, []byte(quotaUsers), 0o600); err != nil {
		t.Fatal(err)
	}
	return startServer(t, noDelay, func(c *config.Config) { c.Users = users })
}

// startLMTPD runs the lmtpd binary on the configuration of e and returns
// its TCP address.
func startLMTPD(t *testing.T, e *testEnv) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the lmtpd binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "lmtpd")
	if out, err := exec.Command("go", "build", "-o", bin, "tern/lmtpd").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	aliases := filepath.Join(dir, "aliases")
	if err := os.WriteFile(aliases, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	sock, err := os.MkdirTemp("", "lmtpq")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sock) })
	addr := freeAddr(t)
	conf := fmt.Sprintf(`hostname = "mx.example.test"
domains = ["example.test"]
users = %q
aliases = %q
maildir = %q
state_dir = %q
runtime_dir = %q

[lmtpd]
listen = [%q]
sieve = %q

[smtpd]
local_submit = %q
`, e.cfg.Users, aliases, e.cfg.Maildir, filepath.Join(dir, "state"), sock, addr,
		filepath.Join(dir, "sieve", "%d", "%n", "active.sieve"), "unix:"+filepath.Join(sock, "submit.sock"))
	cfgPath := filepath.Join(dir, "tern.toml")
	if err := os.WriteFile(cfgPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	logs, _ := runDaemon(t, "lmtpd", bin, cfgPath)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("lmtpd log:\n%s", logs.String())
		}
	})
	waitListening(t, addr, logs)
	return addr
}

// lmtpDeliver sends one message to demo over LMTP and returns the reply
// code to its DATA.
func lmtpDeliver(t *testing.T, addr, msg string) int {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	reply := func() int {
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("LMTP: %v", err)
			}
			if len(l) < 4 || l[3] != '-' {
				n, _ := strconv.Atoi(l[:3])
				return n
			}
		}
	}
	reply()
	for _, cmd := range []string{"LHLO client.test", "MAIL FROM:<sender@remote.test>", "RCPT TO:<demo@example.test>", "DATA"} {
		fmt.Fprintf(c, "%s\r\n", cmd)
		if n := reply(); n >= 400 {
			t.Fatalf("LMTP %s: %d", cmd, n)
		}
	}
	fmt.Fprintf(c, "%s\r\n.\r\n", strings.TrimSuffix(msg, "\r\n"))
	n := reply()
	fmt.Fprintf(c, "QUIT\r\n")
	return n
}

// diskUsage sums the sizes of demo's message files, as a reader of the
// Maildir would.
func diskUsage(t *testing.T, e *testEnv) int64 {
	t.Helper()
	root, err := config.Expand(e.cfg.Maildir, "demo@example.test")
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			if d := filepath.Base(filepath.Dir(p)); d == "cur" || d == "new" {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

var quotaRE = regexp.MustCompile(`^\* QUOTA "" \(STORAGE (\d+) (\d+)\)`)

// getQuota returns GETQUOTA's usage and limit, in KiB.
func getQuota(t *testing.T, w *wireConn) (used, limit int64) {
	t.Helper()
	out := w.ok("Q", `GETQUOTA ""`)
	m := quotaRE.FindStringSubmatch(out[0])
	if m == nil {
		t.Fatalf("GETQUOTA: %q", out)
	}
	used, _ = strconv.ParseInt(m[1], 10, 64)
	limit, _ = strconv.ParseInt(m[2], 10, 64)
	return used, limit
}

func TestQuotaFollowsLMTPD(t *testing.T) {
	e := quotaServer(t)
	lmtp := startLMTPD(t, e)
	w := transports[0].dial(t, e)
	w.login()
	if out := w.ok("C", "CAPABILITY"); !strings.Contains(out[0], " QUOTA QUOTA=RES-STORAGE") {
		t.Fatalf("CAPABILITY: %q", out)
	}
	out := w.ok("R", "GETQUOTAROOT INBOX")
	if out[0] != "* QUOTAROOT INBOX \"\"\r\n" || out[1] != "* QUOTA \"\" (STORAGE 0 10)\r\n" {
		t.Fatalf("GETQUOTAROOT of an empty mailbox: %q", out)
	}

	// Deliveries of about 3 KiB: each accepted one moves GETQUOTA to the
	// bytes on disk; the one that does not fit is refused by lmtpd, and
	// GETQUOTA said so before it was tried.
	msg := testMessage("filler", strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd\r\n", 46))
	accepted := 0
	for i := 0; i < 5; i++ {
		used, limit := getQuota(t, w)
		room := limit*1024 - diskUsage(t, e)
		code := lmtpDeliver(t, lmtp, msg)
		switch {
		case code == 250:
			accepted++
			if room < int64(len(msg))-200 {
				t.Fatalf("lmtpd accepted %d bytes with %d left by GETQUOTA (%d of %d KiB)", len(msg), room, used, limit)
			}
		case code == 552:
			if room >= int64(len(msg))+200 {
				t.Fatalf("lmtpd refused %d bytes with %d left by GETQUOTA (%d of %d KiB)", len(msg), room, used, limit)
			}
		default:
			t.Fatalf("delivery %d: %d", i, code)
		}
		if used, _ := getQuota(t, w); used != kib(diskUsage(t, e)) {
			t.Fatalf("GETQUOTA says %d KiB, the Maildir holds %d bytes", used, diskUsage(t, e))
		}
	}
	if accepted != 3 {
		t.Fatalf("%d of 5 deliveries of %d bytes accepted under 10 KiB, want 3", accepted, len(msg))
	}

	// APPEND exactly the room left (a message without line ends is
	// stored as sent): accepted, and the mailbox is at its limit.
	room := 10*1024 - diskUsage(t, e)
	w.send(fmt.Sprintf("A APPEND INBOX {%d+}", room))
	w.send(strings.Repeat("x", int(room)))
	if out := w.until("A"); !strings.HasPrefix(out[len(out)-1], "A OK") {
		t.Fatalf("APPEND of the last %d bytes: %q", room, out)
	}
	if used, limit := getQuota(t, w); used != limit || diskUsage(t, e) != limit*1024 {
		t.Fatalf("at the limit: GETQUOTA %d of %d KiB, disk %d bytes", used, limit, diskUsage(t, e))
	}
	if code := lmtpDeliver(t, lmtp, testMessage("one more", "x\r\n")); code != 552 {
		t.Fatalf("lmtpd at the limit: %d", code)
	}
	w.send("B APPEND INBOX {1+}")
	w.send("y")
	if out := w.until("B"); !strings.HasPrefix(out[len(out)-1], "B NO [OVERQUOTA]") {
		t.Fatalf("APPEND over quota: %q", out)
	}
	w.ok("S", "SELECT INBOX")
	w.ok("K", "CREATE Keep")
	w.send("C COPY 1 Keep")
	if out := w.until("C"); !strings.HasPrefix(out[len(out)-1], "C NO [OVERQUOTA]") {
		t.Fatalf("COPY over quota: %q", out)
	}
	// MOVE stays within the quota root and uses no more.
	w.ok("M", "MOVE 1 Keep")
	if used, limit := getQuota(t, w); used != limit {
		t.Fatalf("after MOVE: %d of %d KiB", used, limit)
	}

	// \Deleted messages are what STATUS DELETED-STORAGE counts; EXPUNGE
	// gives the room back, to IMAP and to lmtpd alike.
	before := diskUsage(t, e)
	w.ok("D", `STORE 1 +FLAGS.SILENT (\Deleted)`)
	out = w.ok("T", "STATUS INBOX (DELETED DELETED-STORAGE)")
	w.ok("E", "EXPUNGE")
	freed := before - diskUsage(t, e)
	if want := fmt.Sprintf("* STATUS INBOX (DELETED 1 DELETED-STORAGE %d)\r\n", kib(freed)); out[0] != want {
		t.Fatalf("STATUS: %q, want %q", out[0], want)
	}
	if code := lmtpDeliver(t, lmtp, testMessage("after expunge", "x\r\n")); code != 250 {
		t.Fatalf("lmtpd after EXPUNGE: %d", code)
	}
	if used, _ := getQuota(t, w); used != kib(diskUsage(t, e)) {
		t.Fatalf("GETQUOTA says %d KiB, the Maildir holds %d bytes", used, diskUsage(t, e))
	}
}

// The error paths, on every transport: SETQUOTA is not the client's,
// an unknown root and a missing mailbox are NO, a user without a quota
// has no quota root, and bad syntax is BAD.
func TestQuotaErrors(t *testing.T) {
	e := quotaServer(t)
	eachTransport(t, e, func(t *testing.T, w *wireConn) {
		w.login()
		for _, c := range []struct{ cmd, want string }{
			{`SETQUOTA "" (STORAGE 100000)`, "NO [NOPERM]"},
			{`GETQUOTA "user/bob"`, "NO [NONEXISTENT]"},
			{`GETQUOTAROOT Nowhere`, "NO [NONEXISTENT]"},
			{`GETQUOTA`, "BAD"},
			{`GETQUOTAROOT`, "BAD"},
			{`GETQUOTA "" extra`, "BAD"},
			{`STATUS INBOX (DELETED-STORAGE FROB)`, "BAD"},
		} {
			w.send("X " + c.cmd)
			if l := w.line(); !strings.HasPrefix(l, "X "+c.want) {
				t.Fatalf("%s: %q, want %s", c.cmd, l, c.want)
			}
		}
		if out := w.ok("T", "STATUS INBOX (DELETED-STORAGE)"); out[0] != "* STATUS INBOX (DELETED-STORAGE 0)\r\n" {
			t.Fatalf("STATUS of an empty mailbox: %q", out)
		}
	})
	eachTransport(t, e, func(t *testing.T, w *wireConn) {
		w.ok("L", "LOGIN alice alice")
		if out := w.ok("R", "GETQUOTAROOT INBOX"); len(out) != 2 || out[0] != "* QUOTAROOT INBOX\r\n" {
			t.Fatalf("GETQUOTAROOT without a quota: %q", out)
		}
		w.send(`G GETQUOTA ""`)
		if l := w.line(); !strings.HasPrefix(l, "G NO [NONEXISTENT]") {
			t.Fatalf("GETQUOTA without a quota: %q", l)
		}
	})
}

// RFC 9208 6 with MULTIAPPEND (RFC 3502) and CATENATE (RFC 4469): the
// messages of one APPEND must fit together, URL parts counted, or none is
// stored; on every transport.
func TestQuotaMultiAppend(t *testing.T) {
	e := quotaServer(t)
	n := 0
	eachTransport(t, e, func(t *testing.T, w *wireConn) {
		n++
		box := fmt.Sprintf("Q%d", n)
		w.login()
		w.ok("C", "CREATE "+box)
		base := diskUsage(t, e)
		// Three messages of 2 KiB fit one by one, not together with
		// the 10 KiB limit minus what the earlier transports left.
		room := 10*1024 - base
		part := strings.Repeat("x", int(room/3)+100)
		w.send(fmt.Sprintf("A APPEND %s {%d+}", box, len(part)))
		w.send(fmt.Sprintf("%s {%d+}", part, len(part)))
		w.send(fmt.Sprintf("%s {%d+}", part, len(part)))
		w.send(part)
		if out := w.until("A"); !strings.HasPrefix(out[len(out)-1], "A NO [OVERQUOTA]") {
			t.Fatalf("MULTIAPPEND over quota: %q", out)
		}
		if out := w.ok("S", "STATUS "+box+" (MESSAGES)"); !strings.Contains(out[0], "MESSAGES 0") || diskUsage(t, e) != base {
			t.Fatalf("after a refused MULTIAPPEND: %q, %d bytes on disk, was %d", out, diskUsage(t, e), base)
		}
		// One of them fits; a CATENATE of it twice does not.
		w.send(fmt.Sprintf("B APPEND %s {%d+}", box, len(part)))
		w.send(part)
		if out := w.until("B"); !strings.HasPrefix(out[len(out)-1], "B OK") {
			t.Fatalf("APPEND: %q", out)
		}
		url := `URL "/` + box + `/;UID=1"`
		w.send("D APPEND " + box + " CATENATE (" + url + " " + url + ")")
		if out := w.until("D"); !strings.HasPrefix(out[len(out)-1], "D NO [OVERQUOTA]") {
			t.Fatalf("CATENATE over quota: %q", out)
		}
		w.ok("X", "DELETE "+box)
	})
}
