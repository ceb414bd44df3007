package e2e

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"
)

// dsnSubmit submits msg as demo with Python's smtplib, giving the MAIL
// and RCPT parameters of RFC 3461 (e.g. "RET=HDRS", "NOTIFY=SUCCESS").
func dsnSubmit(t *testing.T, addr, to, msg string, mailOpts, rcptOpts []string) {
	t.Helper()
	out := python(t, `
import base64, smtplib, ssl, sys
host, port = sys.argv[1].rsplit(":", 1)
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
mail_opts = [o for o in sys.argv[4].split(" ") if o]
rcpt_opts = [o for o in sys.argv[5].split(" ") if o]
with smtplib.SMTP(host, int(port), timeout=30) as s:
    s.ehlo("client.example.test")
    s.starttls(context=ctx)
    s.ehlo("client.example.test")
    assert s.has_extn("dsn"), "no DSN extension"
    s.login("demo", "demo")
    s.sendmail("demo@example.test", [sys.argv[2]], base64.b64decode(sys.argv[3]), mail_opts, rcpt_opts)
    print("sent")
`, addr, to, base64.StdEncoding.EncodeToString([]byte(msg)), strings.Join(mailOpts, " "), strings.Join(rcptOpts, " "))
	if strings.TrimSpace(out) != "sent" {
		t.Fatalf("submission: %s", out)
	}
}

// dsnWaitNew waits for a message in demo's INBOX that was not in before
// and contains marker.
func dsnWaitNew(t *testing.T, tn *Tern, before map[string]string, marker string, timeout time.Duration) string {
	t.Helper()
	var got string
	mtaWaitUntil(t, timeout, "a notice with "+marker+" in demo's INBOX", func() bool {
		for name, m := range mtaInbox(t, tn.Maildir("demo")) {
			if _, old := before[name]; !old && strings.Contains(m, marker) {
				got = m
				return true
			}
		}
		return false
	})
	return got
}

// dsnCountNew counts the messages in demo's INBOX, not in before, that
// contain marker.
func dsnCountNew(t *testing.T, tn *Tern, before map[string]string, marker string) int {
	n := 0
	for name, m := range mtaInbox(t, tn.Maildir("demo")) {
		if _, old := before[name]; !old && strings.Contains(m, marker) {
			n++
		}
	}
	return n
}

// TestDSNNotices: the SUCCESS and DELAY notices of RFC 3461 reach the
// sender's INBOX through the real lmtpd as RFC 3464 reports, and RET=HDRS
// keeps the body out of them.
func TestDSNNotices(t *testing.T) {
	tn := StartTern(t)
	dead := freePort(t)
	mtaReconfigureSMTPD(t, tn, fmt.Sprintf(`transport = { "remote.test" = %q }`, dead),
		`delay_warning = "1s"`, `retry_min = "1s"`, `retry_max = "1s"`)

	t.Run("DeliveredHeadersOnly", func(t *testing.T) {
		before := mtaInbox(t, tn.Maildir("demo"))
		dsnSubmit(t, tn.Submission, "alice@example.test",
			mtaMessage("demo@example.test", "alice@example.test", "receipt wanted")+"body-must-not-return\r\n",
			[]string{"RET=HDRS", "ENVID=e2e-success"}, []string{"NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;alice@example.test"})
		raw := dsnWaitNew(t, tn, before, "e2e-success", 20*time.Second)
		d := mtaParseDSN(t, raw)
		if d.ReturnPath != "<>" {
			t.Errorf("Return-Path %q, want <>", d.ReturnPath)
		}
		if got := d.PerMessage.Get("Original-Envelope-Id"); got != "e2e-success" {
			t.Errorf("Original-Envelope-Id %q", got)
		}
		if len(d.PerRecipient) != 1 {
			t.Fatalf("%d recipients", len(d.PerRecipient))
		}
		for k, want := range map[string]string{"Action": "delivered", "Status": "2.0.0",
			"Final-Recipient": "rfc822; alice@example.test", "Original-Recipient": "rfc822; alice@example.test"} {
			if got := d.PerRecipient[0].Get(k); got != want {
				t.Errorf("%s: %q, want %q", k, got, want)
			}
		}
		if !strings.Contains(d.Returned, "Subject: receipt wanted") || strings.Contains(d.Returned, "body-must-not-return") {
			t.Errorf("RET=HDRS: the notice returns:\n%s", d.Returned)
		}
		mtaWaitInbox(t, tn.Maildir("alice"), "Subject: receipt wanted", 10*time.Second, nil)
	})

	t.Run("DelayedOnce", func(t *testing.T) {
		before := mtaInbox(t, tn.Maildir("demo"))
		dsnSubmit(t, tn.Submission, "bob@remote.test",
			mtaMessage("demo@example.test", "bob@remote.test", "stuck"),
			[]string{"ENVID=e2e-delay"}, []string{"NOTIFY=DELAY,FAILURE"})
		raw := dsnWaitNew(t, tn, before, "e2e-delay", 20*time.Second)
		d := mtaParseDSN(t, raw)
		r := d.PerRecipient[0]
		if r.Get("Action") != "delayed" || !strings.HasPrefix(r.Get("Status"), "4.") || r.Get("Will-Retry-Until") == "" {
			t.Errorf("delay notice fields: %v", r)
		}
		// Retries go on every second; the warning is not repeated.
		time.Sleep(3 * time.Second)
		if n := dsnCountNew(t, tn, before, "e2e-delay"); n != 1 {
			t.Errorf("%d delay notices, want 1", n)
		}
		if q := mtaMailq(t, tn); !strings.Contains(q, "bob@remote.test") {
			t.Errorf("the message left the queue:\n%s", q)
		}
	})
}

// TestDSNThroughPostfix: RFC 3461 5.2.1: tern passes NOTIFY, ORCPT and
// ENVID on to a next hop that speaks DSN (a real Postfix), which then
// reports the delivery itself; its notice comes back through tern's MX
// into the sender's INBOX, naming what tern passed on.
func TestDSNThroughPostfix(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Postfix instance")
	}
	tn := StartTern(t)
	pf := startPostfixMX(t, tn, "bob")
	mtaReconfigureSMTPD(t, tn, fmt.Sprintf(`transport = { "remote.test" = %q }`, pf.Addr))
	before := mtaInbox(t, tn.Maildir("demo"))
	dsnSubmit(t, tn.Submission, "bob@remote.test",
		mtaMessage("demo@example.test", "bob@remote.test", "receipt from postfix")+"body-must-not-return\r\n",
		[]string{"RET=HDRS", "ENVID=e2e-postfix"}, []string{"NOTIFY=SUCCESS", "ORCPT=rfc822;robert@remote.test"})
	mtaWaitInbox(t, pf.Maildir("bob"), "Subject: receipt from postfix", 30*time.Second, pf.Maillog)
	raw := dsnWaitNew(t, tn, before, "e2e-postfix", 30*time.Second)
	d := mtaParseDSN(t, raw)
	if got := d.PerMessage.Get("Reporting-MTA"); got != "dns; mx.remote.test" {
		t.Errorf("the notice comes from %q, want Postfix (tern must not report a relay to a DSN server)", got)
	}
	r := d.PerRecipient[0]
	if r.Get("Action") != "delivered" || !strings.Contains(r.Get("Original-Recipient"), "robert@remote.test") {
		t.Errorf("Postfix's notice: Action %q Original-Recipient %q", r.Get("Action"), r.Get("Original-Recipient"))
	}
	time.Sleep(time.Second)
	if n := dsnCountNew(t, tn, before, "e2e-postfix"); n != 1 {
		t.Errorf("demo got %d notices, want Postfix's one", n)
	}
}
