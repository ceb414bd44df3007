package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tern/common/smtptest"
)

// waitTo returns the first message mx took for rcpt, waiting up to
// timeout.
func waitTo(t testing.TB, mx *smtptest.Sink, rcpt string, timeout time.Duration, explain func() string) smtptest.Message {
	t.Helper()
	var got []smtptest.Message
	if !mtaPoll(timeout, func() bool { got = mx.To(rcpt); return len(got) > 0 }) {
		t.Fatalf("no message to <%s> reached the remote MX\n%s", rcpt, explain())
	}
	return got[0]
}

// TestLMTPDSubmitsThroughSMTPD: what lmtpd sends on (a Sieve redirect to
// a remote address, a vacation reply to a remote sender) goes through
// smtpd's local submission socket (common/submit) into smtpd's queue, and
// from there to the remote MX: the flow lmtpd → smtpd of HACKING.md.
func TestLMTPDSubmitsThroughSMTPD(t *testing.T) {
	tn := StartTern(t)
	mx := smtptest.Start(t, "tcp", "127.0.0.1:0", false)
	mtaReconfigureSMTPD(t, tn, fmt.Sprintf(`transport = { "remote.test" = %q }`, mx.Addr))
	script := filepath.Join(tn.Dir, "vmail", "example.test", "demo", "sieve", "active.sieve")
	if err := os.MkdirAll(filepath.Dir(script), 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, script, `require "vacation";
vacation :days 1 :subject "Away" "I am away until Monday.";
redirect "carol@remote.test";
`)
	c := Dial(t, tn.MX)
	c.SMTPReply()
	for _, cmd := range []string{"EHLO client.remote.test", "MAIL FROM:<bob@remote.test>", "RCPT TO:<demo@example.test>", "DATA"} {
		c.Send(cmd + "\r\n")
		c.SMTPReply()
	}
	c.Send("From: Bob <bob@remote.test>\r\nTo: demo@example.test\r\nSubject: lunch\r\nMessage-ID: <lunch@remote.test>\r\n\r\nLunch today?\r\n.\r\n")
	if r := c.SMTPReply(); !strings.HasPrefix(r, "250") {
		t.Fatalf("DATA: %s", r)
	}
	c.Send("QUIT\r\n")
	logs := func() string { return "smtpd:\n" + tn.Log("smtpd") + "\nlmtpd:\n" + tn.Log("lmtpd") }

	fwd := waitTo(t, mx, "carol@remote.test", 20*time.Second, logs)
	if fwd.From != "bob@remote.test" {
		t.Errorf("redirect: envelope sender %q, want the original bob@remote.test (RFC 5228 4.2)", fwd.From)
	}
	if !strings.Contains(fwd.Data, "Subject: lunch") {
		t.Errorf("redirect: message %q", fwd.Data)
	}
	reply := waitTo(t, mx, "bob@remote.test", 20*time.Second, logs)
	if reply.From != "" {
		t.Errorf("vacation: envelope sender %q, want <> (RFC 5230 5.1)", reply.From)
	}
	if !strings.Contains(reply.Data, "Subject: Away") || !strings.Contains(reply.Data, "I am away until Monday.") {
		t.Errorf("vacation reply: %q", reply.Data)
	}
	// Both went in through the local submission socket: smtpd's trace
	// field names the uid, and lmtpd logged the hand-over.
	for _, m := range []smtptest.Message{fwd, reply} {
		if !strings.Contains(m.Data, "(tern, from userid ") {
			t.Errorf("message to %s did not come through the local submission socket:\n%s", m.To, m.Data)
		}
	}
	// lmtpd logs a hand-over once smtpd has answered, which may be after
	// smtpd's courier has already sent the message on.
	relayed := func() int { return strings.Count(tn.Log("lmtpd"), "event=relayed") }
	if !mtaPoll(5*time.Second, func() bool { return relayed() >= 2 }) {
		l := tn.Log("lmtpd")
		t.Errorf("lmtpd logged %d relayed events, want 2:\n%s", strings.Count(l, "event=relayed"), l)
	}
}
