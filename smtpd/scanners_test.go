package main

import (
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// The real scanners admins put behind Postfix, behind tern instead:
// rspamd's proxy worker in milter mode and clamav-milter with clamd, each
// started by the test with its own configuration on loopback, without
// network access (no DNS blocklists, no signature download).

// daemonProc is a scanner daemon started by a test.
type daemonProc struct {
	cmd    *exec.Cmd
	exited chan error
	log    string
}

// startDaemon runs argv with output to dir/name.log and stops it at the
// end of the test.
func startDaemon(t testing.TB, dir, name string, argv ...string) *daemonProc {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	out, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &daemonProc{cmd: cmd, exited: make(chan error, 1), log: logPath}
	go func() { p.exited <- cmd.Wait(); out.Close() }()
	t.Cleanup(func() { p.stop() })
	return p
}

func (p *daemonProc) stop() {
	select {
	case <-p.exited:
		p.exited <- nil
		return
	default:
	}
	p.cmd.Process.Signal(os.Interrupt)
	select {
	case err := <-p.exited:
		p.exited <- err
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		p.exited <- <-p.exited
	}
}

// waitListening waits until network/addr accepts connections.
func (p *daemonProc) waitListening(t testing.TB, network, addr string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout(network, addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		select {
		case err := <-p.exited:
			p.exited <- err
			log, _ := os.ReadFile(p.log)
			t.Fatalf("%s exited: %v\n%s", p.cmd.Path, err, log)
		default:
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(p.log)
			t.Fatalf("%s not listening on %s after %s\n%s", p.cmd.Path, addr, timeout, log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func needBinary(t testing.TB, pkg string, names ...string) []string {
	t.Helper()
	var paths []string
	for _, n := range names {
		p, err := exec.LookPath(n)
		if err != nil {
			for _, dir := range []string{"/usr/sbin", "/usr/bin", "/sbin"} {
				if _, serr := os.Stat(filepath.Join(dir, n)); serr == nil {
					p, err = filepath.Join(dir, n), nil
				}
			}
		}
		if err != nil {
			t.Skipf("%s is not installed (apt-get install %s)", n, pkg)
		}
		paths = append(paths, p)
	}
	return paths
}

// rspamdModulesOff are the rspamd modules that need the network, Redis or
// state this test does not have.
var rspamdModulesOff = []string{"rbl", "surbl", "fuzzy_check", "neural", "asn", "phishing", "emails", "dcc",
	"greylist", "ratelimit", "reputation", "history_redis", "mx_check", "url_redirector", "rspamd_update",
	"dmarc", "spf", "dkim", "arc", "replies", "bimi", "metric_exporter", "clickhouse", "elastic"}

// startRspamd runs rspamd with only its proxy worker, in milter mode and
// scanning itself (self_scan), and returns the milter address.
func startRspamd(t testing.TB) string {
	t.Helper()
	bin := needBinary(t, "rspamd", "rspamd")[0]
	if _, err := os.Stat("/etc/rspamd/common.conf"); err != nil {
		t.Skip("rspamd's configuration (/etc/rspamd) is missing")
	}
	dir := t.TempDir()
	for _, d := range []string{"local.d", "db", "run"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	addr := freeAddr(t)
	conf := fmt.Sprintf(`.include "$CONFDIR/common.conf"
options {
    .include "$CONFDIR/options.inc"
    # No network here: a resolver that answers nothing, at once.
    dns { nameserver = ["127.0.0.1:1"]; timeout = 0.1s; retransmits = 1; }
    pidfile = "$RUNDIR/rspamd.pid";
    local_addrs = [];
}
logging { type = "console"; level = "error"; }
worker "rspamd_proxy" {
    bind_socket = %q;
    milter = yes;
    timeout = 60s;
    upstream "local" { default = yes; self_scan = yes; }
    count = 1;
    spam_header = "X-Spam";
    reject_message = "Spam message rejected";
}
`, addr)
	writeFile(t, filepath.Join(dir, "rspamd.conf"), conf)
	for _, m := range rspamdModulesOff {
		writeFile(t, filepath.Join(dir, "local.d", m+".conf"), "enabled = false;\n")
	}
	// rspamd's own headers on every message, local or not.
	writeFile(t, filepath.Join(dir, "local.d", "milter_headers.conf"),
		"use = [\"x-spamd-result\", \"x-rspamd-server\", \"x-spam-status\"];\nskip_local = false;\nskip_authenticated = false;\n")
	// A rule of the test's own, scoring between rspamd's add_header and
	// reject thresholds (6 and 15), so that its milter marks the message
	// as spam rather than refusing it.
	writeFile(t, filepath.Join(dir, "spam.map"), "/tern test spam phrase/i\n")
	writeFile(t, filepath.Join(dir, "local.d", "multimap.conf"), fmt.Sprintf(
		"TERN_TEST_SPAM {\n  type = \"content\";\n  filter = \"text\";\n  map = %q;\n  regexp = true;\n  score = 9.0;\n}\n",
		filepath.Join(dir, "spam.map")))
	p := startDaemon(t, dir, "rspamd", bin, "-f", "-i", "-u", "root", "-g", "root",
		"-c", filepath.Join(dir, "rspamd.conf"),
		"--var=LOCAL_CONFDIR="+dir, "--var=DBDIR="+filepath.Join(dir, "db"),
		"--var=RUNDIR="+filepath.Join(dir, "run"), "--var=LOGDIR="+dir)
	// rspamd compiles its rules at start: tens of seconds on a busy
	// machine.
	p.waitListening(t, "tcp", addr, 90*time.Second)
	return "inet:" + addr
}

// gtube is the Generic Test for Unsolicited Bulk Email, which rspamd
// rejects on sight.
const gtube = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"

func TestRspamdMilter(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("rspamd is started as root here (-u root); run as root")
	}
	t.Parallel()
	milterAddr := startRspamd(t)
	cfg := newTestConfig(t, "")
	cfg.SMTPD.Milters = []string{milterAddr}
	sink := startLMTP(t, cfg)
	e := startSMTPD(t, cfg)
	mx := e.addr(kindMX)
	to := []string{"demo@example.test"}

	msg := "From: someone@remote.test\r\nTo: demo@example.test\r\nSubject: spam test\r\nMessage-ID: <gtube@remote.test>\r\nDate: Mon, 02 Jan 2006 15:04:05 +0000\r\n\r\n" + gtube + "\r\n"
	err := sendMX(t, mx, "someone@remote.test", to, msg)
	var se *smtp.SMTPError
	if !asSMTPError(err, &se) || se.Code < 500 || !strings.Contains(strings.ToLower(se.Message), "gtube") {
		t.Fatalf("GTUBE: want rspamd's 5xx reply naming the pattern, got %v", err)
	}
	if n := len(sink.messages("demo@example.test")); n != 0 {
		t.Fatal("GTUBE message delivered")
	}

	ham := "From: Alice <alice@remote.test>\r\nTo: demo@example.test\r\nSubject: lunch tomorrow\r\nMessage-ID: <ham1@remote.test>\r\nDate: Mon, 02 Jan 2006 15:04:05 +0000\r\n\r\nShall we have lunch at noon?\r\n"
	if err := sendMX(t, mx, "alice@remote.test", to, ham); err != nil {
		t.Fatalf("normal message: %v", err)
	}
	got := sink.messages("demo@example.test")
	if len(got) != 1 {
		t.Fatalf("%d copies delivered", len(got))
	}
	head, body, _ := strings.Cut(got[0], "\r\n\r\n")
	if !strings.Contains(head, "X-Spamd-Result:") || !strings.Contains(head, "X-Rspamd-Server:") {
		t.Fatalf("rspamd's headers missing:\n%s", head)
	}
	if body != "Shall we have lunch at noon?\r\n" {
		t.Fatalf("body %q", body)
	}
	if strings.Contains(head, "X-Spam: Yes") {
		t.Fatalf("normal message marked as spam:\n%s", head)
	}

	// Spam below the reject score: rspamd's add-header action, the
	// header lmtpd files into Junk.
	spam := "From: Promo <promo@remote.test>\r\nTo: demo@example.test\r\nSubject: offer\r\nMessage-ID: <spam1@remote.test>\r\nDate: Mon, 02 Jan 2006 15:04:05 +0000\r\n\r\nThis is the tern test spam phrase.\r\n"
	if err := sendMX(t, mx, "promo@remote.test", to, spam); err != nil {
		t.Fatalf("spam below the reject score: %v", err)
	}
	for _, m := range sink.messages("demo@example.test") {
		if strings.Contains(m, "spam1@remote.test") {
			if !strings.Contains(m, "\r\nX-Spam: Yes\r\n") || !strings.Contains(m, "TERN_TEST_SPAM") {
				t.Fatalf("spam not marked by rspamd:\n%s", m)
			}
			return
		}
	}
	t.Fatal("spam below the reject score not delivered")
}

func asSMTPError(err error, se **smtp.SMTPError) bool {
	e, ok := err.(*smtp.SMTPError)
	if ok {
		*se = e
	}
	return ok
}

// virusFile is the test's "virus": a file whose MD5 the test's own
// signature database lists (made with sigtool, nothing downloaded).
const virusFile = "tern test malware sample: not a real virus, only a hash listed in a test database\n"

// startClamAV runs clamd with a database of one hash signature and
// clamav-milter in front of it; it returns the milter address and clamd.
func startClamAV(t testing.TB) (string, *daemonProc) {
	t.Helper()
	bins := needBinary(t, "clamav-daemon clamav-milter clamav", "clamd", "clamav-milter", "sigtool")
	clamd, clamMilter, sigtool := bins[0], bins[1], bins[2]
	dir := t.TempDir()
	db := filepath.Join(dir, "db")
	if err := os.Mkdir(db, 0o755); err != nil {
		t.Fatal(err)
	}
	sample := filepath.Join(dir, "sample.bin")
	writeFile(t, sample, virusFile)
	sig, err := exec.Command(sigtool, "--md5", sample).Output()
	if err != nil {
		t.Fatalf("sigtool: %v", err)
	}
	// The signature's name is the file name sigtool gives it.
	writeFile(t, filepath.Join(db, "tern-test.hdb"), strings.Replace(string(sig), "sample.bin", "Tern.Test.Sample", 1))
	sock := filepath.Join(dir, "clamd.sock")
	writeFile(t, filepath.Join(dir, "clamd.conf"), fmt.Sprintf(
		"LocalSocket %s\nDatabaseDirectory %s\nForeground yes\nUser root\nPidFile %s\nLogFile %s\n",
		sock, db, filepath.Join(dir, "clamd.pid"), filepath.Join(dir, "clamd.file.log")))
	cd := startDaemon(t, dir, "clamd", clamd, "-c", filepath.Join(dir, "clamd.conf"))
	cd.waitListening(t, "unix", sock, 30*time.Second)
	addr := freeAddr(t)
	host, port, _ := net.SplitHostPort(addr)
	writeFile(t, filepath.Join(dir, "milter.conf"), fmt.Sprintf(
		"MilterSocket inet:%s@%s\nClamdSocket unix:%s\nForeground yes\nUser root\nOnInfected Reject\nOnFail Defer\nAddHeader Replace\nPidFile %s\nLogFile %s\n",
		port, host, sock, filepath.Join(dir, "milter.pid"), filepath.Join(dir, "milter.file.log")))
	m := startDaemon(t, dir, "clamav-milter", clamMilter, "-c", filepath.Join(dir, "milter.conf"))
	m.waitListening(t, "tcp", addr, 30*time.Second)
	return "inet:" + addr, cd
}

// withAttachment is a MIME message carrying data as an attachment.
func withAttachment(subject, data string) string {
	return "From: someone@remote.test\r\nTo: demo@example.test\r\nSubject: " + subject + "\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n" +
		"--b1\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n" +
		"--b1\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"x.bin\"\r\n" +
		"Content-Transfer-Encoding: base64\r\n\r\n" + base64.StdEncoding.EncodeToString([]byte(data)) + "\r\n--b1--\r\n"
}

func TestClamAVMilter(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("clamd and clamav-milter are started as root here (User root); run as root")
	}
	t.Parallel()
	milterAddr, clamd := startClamAV(t)
	cfg := newTestConfig(t, "")
	cfg.SMTPD.Milters = []string{milterAddr}
	sink := startLMTP(t, cfg)
	e := startSMTPD(t, cfg)
	mx := e.addr(kindMX)
	to := []string{"demo@example.test"}

	err := sendMX(t, mx, "someone@remote.test", to, withAttachment("infected", virusFile))
	wantReply(t, err, 554, smtp.EnhancedCode{5, 7, 1}, "")
	if n := len(sink.messages("demo@example.test")); n != 0 {
		t.Fatal("infected message delivered")
	}

	if err := sendMX(t, mx, "someone@remote.test", to, withAttachment("clean", "a harmless file\n")); err != nil {
		t.Fatalf("clean message: %v", err)
	}
	got := sink.messages("demo@example.test")
	if len(got) != 1 || !strings.Contains(got[0], "X-Virus-Status: Clean") {
		t.Fatalf("clean message: %d copies, want one with clamav-milter's header: %q", len(got), got)
	}

	// clamd down: clamav-milter cannot scan, and says so (OnFail Defer).
	clamd.stop()
	err = sendMX(t, mx, "someone@remote.test", to, withAttachment("clamd down", "another file\n"))
	wantReply(t, err, 451, smtp.EnhancedCode{4, 7, 1}, "")
}
