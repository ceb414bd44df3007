package main

import (
	"fmt"
	"net/mail"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"tern/common/queue"
	"tern/common/smtptest"
)

// parseDSN checks the RFC 6522 structure of a notice and returns its
// parts (smtptest.ParseDSN).
func parseDSN(t *testing.T, raw string) *smtptest.DSN {
	t.Helper()
	d, err := smtptest.ParseDSN(raw)
	if err != nil {
		t.Fatalf("%v:\n%s", err, raw)
	}
	return d
}

func wantFields(t *testing.T, what string, h textproto.MIMEHeader, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got := h.Get(k); got != v {
			t.Errorf("%s: %s is %q, want %q", what, k, got, v)
		}
	}
}

const dsnBody = "Subject: receipt please\r\nMessage-ID: <m1@example.test>\r\n\r\nthe secret body\r\n"

// RFC 3461 5.2.3: NOTIFY=SUCCESS on a local recipient gives a "delivered"
// notice, with ENVID and ORCPT (RFC 3464 2.2.1, 2.3.1), and only the
// header of the message for RET=HDRS.
func TestDSNSuccessLocal(t *testing.T) {
	cfg := newTestConfig(t, "")
	sink := startLMTP(t, cfg)
	e := startSMTPD(t, cfg)
	for _, ret := range []smtp.DSNReturn{smtp.DSNReturnHeaders, smtp.DSNReturnFull} {
		before := len(sink.messages("demo@example.test"))
		err := submitWith(t, e.addr(kindSubmission), "demo", "demo", "demo@example.test",
			[]string{"alice@example.test", "sales@example.test"}, dsnBody,
			&smtp.MailOptions{EnvelopeID: "env-" + string(ret), Return: ret},
			&smtp.RcptOptions{Notify: []smtp.DSNNotify{smtp.DSNNotifySuccess, smtp.DSNNotifyFailure},
				OriginalRecipientType: smtp.DSNAddressTypeRFC822, OriginalRecipient: "Alice@Example.test"})
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "the delivered notice", func() bool { return len(sink.messages("demo@example.test")) > before })
		time.Sleep(300 * time.Millisecond)
		msgs := sink.messages("demo@example.test")
		if len(msgs) != before+1 {
			t.Fatalf("RET=%s: demo got %d notices, want one for both recipients", ret, len(msgs)-before)
		}
		var d *smtptest.DSN
		for _, m := range msgs {
			if strings.Contains(m, "env-"+string(ret)) {
				d = parseDSN(t, m)
			}
		}
		if d == nil {
			t.Fatalf("RET=%s: no notice names the ENVID", ret)
		}
		if d.Subject != "Successful Mail Delivery Report" {
			t.Errorf("subject %q", d.Subject)
		}
		wantFields(t, "per-message", d.PerMessage, map[string]string{
			"Reporting-MTA": "dns; mail.example.test", "Original-Envelope-Id": "env-" + string(ret)})
		if len(d.PerRecipient) != 2 {
			t.Fatalf("%d recipients reported, want 2", len(d.PerRecipient))
		}
		for i, rcpt := range []string{"alice@example.test", "sales@example.test"} {
			wantFields(t, rcpt, d.PerRecipient[i], map[string]string{
				"Final-Recipient": "rfc822; " + rcpt, "Action": "delivered", "Status": "2.0.0",
				"Original-Recipient": "rfc822; Alice@Example.test"})
		}
		// A success notice returns the header only, whatever RET says.
		if d.Types[2] != "text/rfc822-headers" || !strings.Contains(d.Returned, "Subject: receipt please") ||
			strings.Contains(d.Returned, "the secret body") {
			t.Errorf("RET=%s: returned part %s:\n%s", ret, d.Types[2], d.Returned)
		}
	}
	// Without NOTIFY=SUCCESS, no notice.
	before := len(sink.messages("demo@example.test"))
	if err := submit(t, e.addr(kindSubmission), "demo", "demo", "demo@example.test",
		[]string{"alice@example.test"}, dsnBody, nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if n := len(sink.messages("demo@example.test")); n != before {
		t.Errorf("%d notices without NOTIFY=SUCCESS", n-before)
	}
}

// RFC 3461 5.2.1 and 5.2.2: a next hop that speaks DSN gets NOTIFY,
// ORCPT, RET and ENVID and no notice is sent; one that does not gets the
// message and the sender a "relayed" notice.
func TestDSNRelayed(t *testing.T) {
	withDSN := startRemoteMX(t, "")
	without := startRemoteMXWith(t, "", func(s *smtp.Server) { s.EnableDSN = false })
	cfg := newTestConfig(t, fmt.Sprintf("transport = { \"remote.test\" = %q, \"plain.test\" = %q }\n", withDSN.addr, without.addr))
	sink := startLMTP(t, cfg)
	e := startSMTPD(t, cfg)
	err := submitWith(t, e.addr(kindSubmission), "demo", "demo", "demo@example.test",
		[]string{"bob@remote.test", "carol@plain.test"}, dsnBody,
		&smtp.MailOptions{EnvelopeID: "env-relay", Return: smtp.DSNReturnHeaders},
		&smtp.RcptOptions{Notify: []smtp.DSNNotify{smtp.DSNNotifySuccess, smtp.DSNNotifyFailure},
			OriginalRecipientType: smtp.DSNAddressTypeRFC822, OriginalRecipient: "orig@example.test"})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "both deliveries", func() bool { return len(withDSN.messages()) == 1 && len(without.messages()) == 1 })
	waitFor(t, 10*time.Second, "the relayed notice", func() bool { return len(sink.messages("demo@example.test")) == 1 })
	withDSN.mu.Lock()
	if fmt.Sprint(withDSN.notify[0]) != "[SUCCESS FAILURE]" || withDSN.orcpts[0] != "RFC822;orig@example.test" ||
		withDSN.envids[0] != "env-relay" || withDSN.rets[0] != smtp.DSNReturnHeaders {
		t.Errorf("the DSN next hop got NOTIFY %v ORCPT %q ENVID %q RET %q",
			withDSN.notify[0], withDSN.orcpts[0], withDSN.envids[0], withDSN.rets[0])
	}
	withDSN.mu.Unlock()
	time.Sleep(500 * time.Millisecond)
	msgs := sink.messages("demo@example.test")
	if len(msgs) != 1 {
		t.Fatalf("demo got %d notices, want 1", len(msgs))
	}
	d := parseDSN(t, msgs[0])
	if len(d.PerRecipient) != 1 {
		t.Fatalf("%d recipients reported, want only carol", len(d.PerRecipient))
	}
	wantFields(t, "carol", d.PerRecipient[0], map[string]string{
		"Final-Recipient": "rfc822; carol@plain.test", "Action": "relayed", "Status": "2.0.0",
		"Remote-MTA": "dns; 127.0.0.1", "Original-Recipient": "rfc822; orig@example.test"})
	wantFields(t, "per-message", d.PerMessage, map[string]string{"Original-Envelope-Id": "env-relay"})
}

// RFC 3461 4.1, RFC 3464 2.3.3: NOTIFY=DELAY gives one "delayed" notice
// after smtpd.delay_warning, however many retries follow, and only for
// the recipients who asked.
func TestDSNDelayOnce(t *testing.T) {
	addr := freeAddr(t) // nothing listens: every attempt is deferred
	cfg := newTestConfig(t, fmt.Sprintf("transport = { \"remote.test\" = %q }\ndelay_warning = \"1s\"\n", addr))
	sink := startLMTP(t, cfg)
	e := startSMTPD(t, cfg)
	if err := submitEach(t, e.addr(kindSubmission), "demo", "demo", "demo@example.test",
		[]string{"bob@remote.test", "carol@remote.test"}, dsnBody, &smtp.MailOptions{EnvelopeID: "env-late"}, []*smtp.RcptOptions{
			{Notify: []smtp.DSNNotify{smtp.DSNNotifyDelayed, smtp.DSNNotifyFailure}},
			{Notify: []smtp.DSNNotify{smtp.DSNNotifyFailure}},
		}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "the delay notice", func() bool { return len(sink.messages("demo@example.test")) >= 1 })
	// A retry after the warning: still one notice.
	var env *queue.Envelope
	waitFor(t, 15*time.Second, "another attempt", func() bool {
		envs, _ := e.srv.queue.List()
		if len(envs) == 1 && envs[0].Tries >= 3 && envs[0].Warned {
			env = envs[0]
			return true
		}
		return false
	})
	msgs := sink.messages("demo@example.test")
	if len(msgs) != 1 {
		t.Fatalf("demo got %d delay notices, want 1", len(msgs))
	}
	if !env.Warned || env.Recipients[0].State != queue.Pending {
		t.Errorf("envelope after the warning: warned %v, state %s", env.Warned, env.Recipients[0].State)
	}
	d := parseDSN(t, msgs[0])
	if d.Subject != "Delayed Mail (still being retried)" || len(d.PerRecipient) != 1 {
		t.Fatalf("subject %q, %d recipients", d.Subject, len(d.PerRecipient))
	}
	r := d.PerRecipient[0]
	wantFields(t, "bob", r, map[string]string{"Final-Recipient": "rfc822; bob@remote.test", "Action": "delayed", "Status": "4.4.1"})
	until, err := mail.ParseDate(r.Get("Will-Retry-Until"))
	if err != nil || until.Before(time.Now().Add(119*time.Hour)) {
		t.Errorf("Will-Retry-Until %q (%v), want arrival + queue_lifetime", r.Get("Will-Retry-Until"), err)
	}
	if !strings.Contains(r.Get("Diagnostic-Code"), "connect") {
		t.Errorf("Diagnostic-Code %q does not say why", r.Get("Diagnostic-Code"))
	}
	if d.Types[2] != "text/rfc822-headers" || strings.Contains(d.Returned, "the secret body") {
		t.Errorf("a delay notice returns %s:\n%s", d.Types[2], d.Returned)
	}
}

// RFC 3461 4.3: RET=HDRS makes a failure notice return only the header;
// RET=FULL the whole message.
func TestDSNFailureRet(t *testing.T) {
	mx := startRemoteMX(t, "")
	mx.reject = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
	cfg := newTestConfig(t, fmt.Sprintf("transport = { \"remote.test\" = %q }\n", mx.addr))
	sink := startLMTP(t, cfg)
	e := startSMTPD(t, cfg)
	for i, ret := range []smtp.DSNReturn{smtp.DSNReturnHeaders, smtp.DSNReturnFull} {
		if err := submitWith(t, e.addr(kindSubmission), "demo", "demo", "demo@example.test",
			[]string{"nobody@remote.test"}, dsnBody, &smtp.MailOptions{Return: ret}, nil); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "the failure notice", func() bool { return len(sink.messages("demo@example.test")) == i+1 })
	}
	seen := map[string]bool{}
	for _, m := range sink.messages("demo@example.test") {
		d := parseDSN(t, m)
		seen[d.Types[2]] = true
		wantFields(t, "nobody", d.PerRecipient[0], map[string]string{"Action": "failed", "Status": "5.1.1"})
		full := strings.Contains(d.Returned, "the secret body")
		switch d.Types[2] {
		case "text/rfc822-headers":
			if full || !strings.Contains(d.Returned, "Subject: receipt please") {
				t.Errorf("RET=HDRS returned:\n%s", d.Returned)
			}
		case "message/rfc822":
			if !full {
				t.Errorf("RET=FULL returned:\n%s", d.Returned)
			}
		}
	}
	if !seen["text/rfc822-headers"] || !seen["message/rfc822"] {
		t.Errorf("returned parts %v, want one of each", seen)
	}
}
