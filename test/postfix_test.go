package e2e

import (
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"tern/common/smtptest"
	"tern/test/peer"
)

// A private Postfix instance plays the remote MX of remote.test (and the
// sender of mail to tern's MX): the Debian package's binaries with their
// own main.cf, master.cf, queue and Maildirs in a temporary directory, so
// that the machine's own Postfix, if any, is never touched.

// postfixMX is one running private Postfix.
type postfixMX struct {
	bin  string // /usr/sbin/postfix
	dir  string // everything of this instance
	etc  string // its config_directory
	Addr string // its smtpd, 127.0.0.1:port
}

// startPostfixMX starts a Postfix that receives mail for remote.test into
// Maildirs under its directory (only the local parts in users exist;
// others get 550 5.1.1 at RCPT) and sends mail for example.test to tn's
// MX. Both directions offer STARTTLS: Postfix's smtpd with the certificate
// tern generated, its smtp client opportunistically. It skips the test when
// Postfix is not installed or the test does not run as root (Postfix's
// master must start as root).
func startPostfixMX(t *testing.T, tn *Tern, users ...string) *postfixMX {
	t.Helper()
	bin, err := exec.LookPath("postfix")
	if err != nil {
		t.Skip("postfix is not installed (CI installs Debian's postfix)")
	}
	if os.Geteuid() != 0 {
		t.Skip("running a private Postfix needs root")
	}
	pf, err := user.Lookup("postfix")
	if err != nil {
		t.Skipf("no postfix user: %v", err)
	}
	uid, _ := strconv.Atoi(pf.Uid)
	gid, _ := strconv.Atoi(pf.Gid)

	// Not t.TempDir: Postfix's unprivileged processes must be able to
	// walk the path, and t.TempDir's directories are mode 0700.
	dir, err := os.MkdirTemp("", "tern-e2e-postfix-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	m := &postfixMX{bin: bin, dir: dir, etc: filepath.Join(dir, "etc"), Addr: freePort(t)}
	for _, d := range []string{"queue", "data", "vmail"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"data", "vmail"} {
		if err := os.Chown(filepath.Join(dir, d), uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	var mailboxes strings.Builder
	for _, u := range users {
		// A trailing slash makes virtual(8) deliver to a Maildir.
		fmt.Fprintf(&mailboxes, "%s@remote.test remote.test/%s/\n", u, u)
	}
	writeFile(t, filepath.Join(m.etc, "vmailbox"), mailboxes.String())
	host, port, _ := net.SplitHostPort(tn.MX)
	writeFile(t, filepath.Join(m.etc, "transport"), fmt.Sprintf("example.test smtp:[%s]:%s\n", host, port))
	writeFile(t, filepath.Join(m.etc, "master.cf"), fmt.Sprintf(peer.PostfixMasterCF, m.Addr))
	writeFile(t, filepath.Join(m.etc, "main.cf"), strings.Join([]string{
		"compatibility_level = 3.6",
		"queue_directory = " + filepath.Join(dir, "queue"),
		"data_directory = " + filepath.Join(dir, "data"),
		"mail_owner = postfix",
		"setgid_group = postdrop",
		"myhostname = mx.remote.test",
		"mydomain = remote.test",
		"myorigin = remote.test",
		"mydestination =",
		"inet_interfaces = loopback-only",
		"inet_protocols = ipv4",
		"mynetworks = 127.0.0.0/8",
		"alias_maps =",
		"alias_database =",
		"virtual_mailbox_domains = remote.test",
		"virtual_mailbox_base = " + filepath.Join(dir, "vmail"),
		"virtual_mailbox_maps = texthash:" + filepath.Join(m.etc, "vmailbox"),
		"virtual_uid_maps = static:" + pf.Uid,
		"virtual_gid_maps = static:" + pf.Gid,
		"transport_maps = texthash:" + filepath.Join(m.etc, "transport"),
		// Opportunistic TLS both ways. Postfix reads the key as root
		// before its smtpd drops privileges.
		"smtpd_tls_security_level = may",
		"smtpd_tls_cert_file = " + filepath.Join(tn.Dir, "tls", "cert.pem"),
		"smtpd_tls_key_file = " + filepath.Join(tn.Dir, "tls", "key.pem"),
		"smtp_tls_security_level = may",
		"smtp_tls_loglevel = 1",
		"smtpd_tls_loglevel = 1",
		// Retry soon if tern's MX defers: the test has no 5 minutes.
		"minimal_backoff_time = 1s",
		"maximal_backoff_time = 2s",
		"queue_run_delay = 1s",
		"maillog_file = " + filepath.Join(dir, "maillog"),
		"maillog_file_prefixes = " + dir,
		"smtpd_banner = $myhostname ESMTP",
		"biff = no",
		"",
	}, "\n"))
	m.run(t, "check")
	m.Start(t)
	t.Cleanup(func() { exec.Command(bin, "-c", m.etc, "stop").Run() })
	return m
}

// run runs a postfix(1) command on this instance.
func (m *postfixMX) run(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command(m.bin, append([]string{"-c", m.etc}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("postfix %v: %v\n%s\nmaillog:\n%s", args, err, out, m.Maillog())
	}
}

// Start starts the instance and waits until its smtpd answers.
func (m *postfixMX) Start(t *testing.T) {
	t.Helper()
	m.run(t, "start")
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		c, err := net.DialTimeout("tcp", m.Addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("postfix: nothing listening on %s: %v\nmaillog:\n%s", m.Addr, err, m.Maillog())
		}
	}
}

// Stop stops the instance and waits until its port is closed.
func (m *postfixMX) Stop(t *testing.T) {
	t.Helper()
	m.run(t, "stop")
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		c, err := net.DialTimeout("tcp", m.Addr, time.Second)
		if err != nil {
			return
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatalf("postfix still listens on %s after stop", m.Addr)
		}
	}
}

// Sendmail injects a message through Postfix's own sendmail(1).
func (m *postfixMX) Sendmail(t *testing.T, from, to, msg string) {
	t.Helper()
	cmd := exec.Command("/usr/sbin/sendmail", "-C", m.etc, "-i", "-f", from, to)
	cmd.Stdin = strings.NewReader(msg)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("postfix sendmail: %v\n%s", err, out)
	}
}

// Maildir is the Maildir of a remote.test user.
func (m *postfixMX) Maildir(local string) string {
	return filepath.Join(m.dir, "vmail", "remote.test", local)
}

// Maillog is what the instance has logged.
func (m *postfixMX) Maillog() string {
	b, _ := os.ReadFile(filepath.Join(m.dir, "maillog"))
	return string(b)
}

// mtaSubmit sends msg on tern's submission port the way a mail client
// does: STARTTLS (the generated certificate is not verified), AUTH as
// demo, then one transaction. It returns the reply to DATA.
func mtaSubmit(t *testing.T, addr, from, to, msg string) string {
	t.Helper()
	return mtaSubmitWith(t, addr, from, to, msg)
}

// mtaSubmitWith is mtaSubmit with parameters on MAIL FROM ("SMTPUTF8").
func mtaSubmitWith(t *testing.T, addr, from, to, msg string, mailParams ...string) string {
	t.Helper()
	out := python(t, `
import base64, smtplib, ssl, sys
host, port = sys.argv[1].rsplit(":", 1)
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
with smtplib.SMTP(host, int(port), timeout=30) as s:
    s.ehlo("client.example.test")
    s.starttls(context=ctx)
    s.ehlo("client.example.test")
    s.login("demo", "demo")
    code, text = s.mail(sys.argv[2], sys.argv[5].split())
    assert code == 250, (code, text)
    code, text = s.rcpt(sys.argv[3])
    assert code == 250, (code, text)
    code, text = s.data(base64.b64decode(sys.argv[4]))
    print(code, text.decode())
`, addr, from, to, base64.StdEncoding.EncodeToString([]byte(msg)), strings.Join(mailParams, " "))
	if !strings.HasPrefix(out, "250 ") {
		t.Fatalf("submission of a message to %s: DATA answered %q", to, out)
	}
	return strings.TrimSpace(out)
}

// mtaMessage is a small message with a subject that names it.
func mtaMessage(from, to, subject string) string {
	return "From: <" + from + ">\r\n" +
		"To: <" + to + ">\r\n" +
		"Subject: " + subject + "\r\n" +
		"\r\n" +
		"The body of " + subject + ".\r\n"
}

// TestPostfixAsRemoteMX runs tern beside a real Postfix, each the other's
// remote MX: submission to a remote domain, mail from a remote MX, a
// remote that is down and comes back, and a remote that refuses a
// recipient.
func TestPostfixAsRemoteMX(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Postfix instance")
	}
	tn := StartTern(t)
	pf := startPostfixMX(t, tn, "bob")
	mtaReconfigureSMTPD(t, tn, fmt.Sprintf(`transport = { "remote.test" = %q }`, pf.Addr))

	t.Run("SubmissionReachesPostfix", func(t *testing.T) {
		reply := mtaSubmit(t, tn.Submission, "demo@example.test", "bob@remote.test",
			mtaMessage("demo@example.test", "bob@remote.test", "to postfix"))
		got := mtaWaitInbox(t, pf.Maildir("bob"), "Subject: to postfix", 30*time.Second, pf.Maillog)
		// Postfix's Received line names tern's EHLO, and tern's own trace
		// field is below it (RFC 5321 4.4: each hop prepends one).
		if !strings.Contains(got, "from mail.example.test") || !strings.Contains(got, "by mail.example.test (tern)") {
			t.Errorf("the message at Postfix lacks tern's trace fields:\n%s", got)
		}
		// RFC 3848: Postfix says ESMTPS in its Received field when tern's
		// client took the STARTTLS that Postfix offered.
		if !strings.Contains(got, "by mx.remote.test (Postfix) with ESMTPS") {
			t.Errorf("tern delivered to Postfix without STARTTLS:\n%s", got)
		}
		// RFC 6409 8: the submission server added what the client left out.
		if !strings.Contains(got, "\nDate: ") || !strings.Contains(got, "\nMessage-ID: <") {
			t.Errorf("submission did not add Date and Message-ID:\n%s", got)
		}
		mtaWaitQueueEmpty(t, tn, 10*time.Second)
		t.Logf("DATA: %s", reply)
	})

	t.Run("PostfixReachesTernMX", func(t *testing.T) {
		pf.Sendmail(t, "carol@remote.test", "alice@example.test",
			mtaMessage("carol@remote.test", "alice@example.test", "from postfix"))
		got := mtaWaitInbox(t, tn.Maildir("alice"), "Subject: from postfix", 30*time.Second, pf.Maillog)
		if !strings.HasPrefix(got, "Return-Path: <carol@remote.test>") {
			t.Errorf("delivered message does not start with the envelope sender:\n%s", got)
		}
		if !strings.Contains(got, "from mx.remote.test") || !strings.Contains(got, "by mail.example.test (tern)") {
			t.Errorf("tern's Received field does not name Postfix:\n%s", got)
		}
		// RFC 3848: ESMTPS, Postfix's client took tern's STARTTLS.
		if !strings.Contains(got, "by mail.example.test (tern) with ESMTPS id") {
			t.Errorf("Postfix delivered to tern without STARTTLS:\n%s", got)
		}
		if !strings.Contains(pf.Maillog(), "status=sent") {
			t.Errorf("Postfix did not log the delivery to tern:\n%s", pf.Maillog())
		}
	})

	t.Run("RemoteDownThenBack", func(t *testing.T) {
		pf.Stop(t)
		mtaSubmit(t, tn.Submission, "demo@example.test", "bob@remote.test",
			mtaMessage("demo@example.test", "bob@remote.test", "while postfix was down"))
		// The first attempt fails on the closed port; the message stays
		// queued with that attempt in its history.
		var listing string
		mtaWaitUntil(t, 20*time.Second, "the message deferred in the queue", func() bool {
			listing = mtaMailq(t, tn)
			return strings.Contains(listing, "bob@remote.test") && strings.Contains(listing, "(")
		})
		if !strings.Contains(listing, "connection refused") {
			t.Errorf("mailq does not show why delivery failed:\n%s", listing)
		}
		if n := len(mtaQueueIDs(t, tn)); n != 1 {
			t.Errorf("%d messages queued, want 1", n)
		}
		if !strings.Contains(tn.Log("smtpd"), "event=deferred") {
			t.Errorf("smtpd logged no event=deferred line")
		}
		t.Logf("mailq while Postfix is down:\n%s", listing)
		pf.Start(t)
		// retry_min is 30 minutes: only a flush makes it retry now.
		mtaMailq(t, tn, "-flush")
		mtaWaitInbox(t, pf.Maildir("bob"), "Subject: while postfix was down", 30*time.Second, pf.Maillog)
		mtaWaitQueueEmpty(t, tn, 10*time.Second)
		if out := mtaMailq(t, tn); !strings.Contains(out, "Mail queue is empty") {
			t.Errorf("mailq after delivery:\n%s", out)
		}
	})

	t.Run("RemoteRefusesOneDSN", func(t *testing.T) {
		before := mtaInbox(t, tn.Maildir("demo"))
		mtaSubmit(t, tn.Submission, "demo@example.test", "nobody@remote.test",
			mtaMessage("demo@example.test", "nobody@remote.test", "to a user postfix refuses"))
		// The DSN goes through the queue too: once the queue is empty,
		// every DSN there will be has been delivered.
		mtaWaitUntil(t, 30*time.Second, "a DSN in demo's INBOX and an empty queue", func() bool {
			return len(mtaInbox(t, tn.Maildir("demo"))) > len(before) && len(mtaQueueIDs(t, tn)) == 0
		})
		// A second DSN would come from a repeated attempt: give the
		// runner a couple of its scans to make that mistake.
		time.Sleep(2 * time.Second)
		var dsns []string
		for name, msg := range mtaInbox(t, tn.Maildir("demo")) {
			if _, old := before[name]; !old {
				dsns = append(dsns, msg)
			}
		}
		if len(dsns) != 1 {
			t.Fatalf("demo got %d new messages, want exactly one DSN:\n%s", len(dsns), strings.Join(dsns, "\n-----\n"))
		}
		dsn := mtaParseDSN(t, dsns[0])
		// RFC 5321 4.5.5: a DSN is sent from the null reverse path.
		if dsn.ReturnPath != "<>" {
			t.Errorf("the DSN's Return-Path is %q, want <>", dsn.ReturnPath)
		}
		if dsn.PerMessage.Get("Reporting-MTA") != "dns; mail.example.test" {
			t.Errorf("Reporting-MTA: %q", dsn.PerMessage.Get("Reporting-MTA"))
		}
		if len(dsn.PerRecipient) != 1 {
			t.Fatalf("the DSN reports %d recipients, want 1", len(dsn.PerRecipient))
		}
		r := dsn.PerRecipient[0]
		for field, want := range map[string]string{
			"Final-Recipient": "rfc822; nobody@remote.test",
			"Action":          "failed",
			"Status":          "5.1.1",
		} {
			if got := r.Get(field); got != want {
				t.Errorf("the DSN's %s is %q, want %q", field, got, want)
			}
		}
		// Postfix's own words reach the sender.
		if d := r.Get("Diagnostic-Code"); !strings.HasPrefix(d, "smtp; 550 5.1.1 ") || !strings.Contains(d, "User unknown") {
			t.Errorf("the DSN's Diagnostic-Code is %q, want Postfix's 550 reply", d)
		}
		if !strings.Contains(dsn.Returned, "Subject: to a user postfix refuses") {
			t.Errorf("the DSN does not return the message:\n%s", dsn.Returned)
		}
		if !strings.Contains(pf.Maillog(), "nobody@remote.test") {
			t.Errorf("Postfix did not log the refused recipient")
		}
	})
}

// mtaParseDSN parses a delivered DSN the way a mail client would and
// checks its structure (smtptest.ParseDSN).
func mtaParseDSN(t *testing.T, raw string) *smtptest.DSN {
	t.Helper()
	d, err := smtptest.ParseDSN(raw)
	if err != nil {
		t.Fatalf("%v:\n%s", err, raw)
	}
	return d
}
