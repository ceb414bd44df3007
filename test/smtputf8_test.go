package e2e

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// TestPostfixWithoutSMTPUTF8: tern's next hop is a real Postfix with
// smtputf8_enable = no, so it does not announce SMTPUTF8. RFC 6531 3.4: a
// message that needs it (a UTF-8 recipient, a UTF-8 header) is not sent
// there and comes back at once to the sender's Maildir as a notice with
// 5.6.7 or 5.6.9, not after queue_lifetime; one that only claimed
// SMTPUTF8, all ASCII, is delivered without it; nothing stays queued.
func TestPostfixWithoutSMTPUTF8(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Postfix instance")
	}
	tn := StartTern(t)
	pf := startPostfixMX(t, tn, "bob")
	if out, err := exec.Command("postconf", "-c", pf.etc, "-e", "smtputf8_enable = no").CombinedOutput(); err != nil {
		t.Fatalf("postconf: %v\n%s", err, out)
	}
	pf.run(t, "reload")
	mtaWaitUntil(t, 20*time.Second, "Postfix to stop announcing SMTPUTF8", func() bool {
		c, err := smtp.Dial(pf.Addr)
		if err != nil {
			return false
		}
		defer c.Close()
		if c.Hello("client.example.test") != nil {
			return false
		}
		ok, _ := c.Extension("SMTPUTF8")
		return !ok
	})
	mtaReconfigureSMTPD(t, tn, fmt.Sprintf(`transport = { "remote.test" = %q }`, pf.Addr))

	mtaSubmitWith(t, tn.Submission, "demo@example.test", "j\u00f6rg@remote.test",
		mtaMessage("demo@example.test", "j\u00f6rg@remote.test", "to a UTF-8 address"), "SMTPUTF8")
	mtaSubmitWith(t, tn.Submission, "demo@example.test", "bob@remote.test",
		mtaMessage("demo@example.test", "bob@remote.test", "Gr\u00fc\u00dfe"), "SMTPUTF8")
	mtaSubmitWith(t, tn.Submission, "demo@example.test", "bob@remote.test",
		mtaMessage("demo@example.test", "bob@remote.test", "only claims SMTPUTF8"), "SMTPUTF8")

	got := mtaWaitInbox(t, pf.Maildir("bob"), "Subject: only claims SMTPUTF8", 30*time.Second, pf.Maillog)
	// Postfix's Received line says UTF8SMTP(S) for a transaction with
	// SMTPUTF8 (RFC 6531 3.7.3); with it off, the client must not ask.
	if strings.Contains(got, "UTF8SMTP") {
		t.Errorf("the ASCII message went with SMTPUTF8:\n%s", got)
	}
	for _, c := range []struct{ status, rcpt string }{
		{"5.6.7", "j\u00f6rg@remote.test"},
		{"5.6.9", "bob@remote.test"},
	} {
		raw := mtaWaitInbox(t, tn.Maildir("demo"), "Status: "+c.status, 30*time.Second, func() string { return mtaMailq(t, tn) })
		d := mtaParseDSN(t, raw)
		if len(d.PerRecipient) != 1 {
			t.Fatalf("%d recipients in the %s notice", len(d.PerRecipient), c.status)
		}
		r := d.PerRecipient[0]
		if !strings.HasSuffix(r.Get("Final-Recipient"), "; "+c.rcpt) || r.Get("Action") != "failed" ||
			!strings.Contains(r.Get("Diagnostic-Code"), "SMTPUTF8 is required, but was not offered by host") {
			t.Errorf("the %s notice reports %v", c.status, r)
		}
		// RFC 6533: the sender's side took SMTPUTF8, so the notice is
		// in UTF-8, its returned message a message/global.
		if d.Types[1] != "message/global-delivery-status" || d.Types[2] != "message/global" {
			t.Errorf("the %s notice's parts are %v", c.status, d.Types)
		}
	}
	if strings.Contains(pf.Maillog(), "j\u00f6rg") || len(mtaInbox(t, pf.Maildir("bob"))) != 1 {
		t.Errorf("a message needing SMTPUTF8 reached Postfix:\n%s", pf.Maillog())
	}
	mtaWaitQueueEmpty(t, tn, 10*time.Second)
	if q := strings.TrimSpace(mtaMailq(t, tn)); strings.Contains(q, "remote.test") {
		t.Errorf("mailq still lists:\n%s", q)
	}
}
