package courier

import (
	"fmt"
	"strings"
	"testing"

	"tern/common/queue"
	"tern/common/smtptest"
)

// The next hops here are real SMTP and LMTP servers on loopback
// (common/smtptest), one that announces SMTPUTF8 and one that does not.

const (
	asciiMessage = "From: <demo@example.test>\r\nTo: <someone@plain.test>\r\nSubject: plain\r\n\r\nbody\r\n"
	utf8Message  = "From: <demo@example.test>\r\nTo: <someone@plain.test>\r\nSubject: Gr\u00fc\u00dfe\r\n\r\nbody\r\n"
)

func (tc *testCourier) enqueue(t *testing.T, from string, utf8 bool, data string, to ...string) string {
	t.Helper()
	e := &queue.Envelope{From: from, UTF8: utf8, Body: "8BITMIME"}
	for _, r := range to {
		e.Recipients = append(e.Recipients, queue.Recipient{Addr: r, State: queue.Pending})
	}
	id, err := tc.q.Enqueue(e, strings.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// drain runs the courier and waits for the queue to empty: nothing
// deferred.
func (tc *testCourier) drain(t *testing.T) {
	t.Helper()
	tc.run(t)
	tc.Wake()
	waitUntil(t, "an empty queue", func() bool {
		ids, _ := tc.q.IDs()
		return len(ids) == 0
	})
}

// dsnFor finds the one notice among msgs about rcpt, and checks what it
// reports.
func dsnFor(t *testing.T, msgs []smtptest.Message, rcpt, status, statusType string) {
	t.Helper()
	var found []*smtptest.DSN
	for _, m := range msgs {
		d, err := smtptest.ParseDSN(m.Data)
		if err != nil {
			continue
		}
		for _, r := range d.PerRecipient {
			if strings.HasSuffix(r.Get("Final-Recipient"), "; "+rcpt) {
				found = append(found, d)
			}
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d notices about %s, want 1 (messages: %+v)", len(found), rcpt, msgs)
	}
	d := found[0]
	r := d.PerRecipient[0]
	if r.Get("Action") != "failed" || r.Get("Status") != status ||
		!strings.Contains(r.Get("Diagnostic-Code"), "SMTPUTF8 is required, but was not offered by host") {
		t.Errorf("notice about %s: %v", rcpt, r)
	}
	if d.Types[1] != statusType {
		t.Errorf("notice about %s is a %s, want %s", rcpt, d.Types[1], statusType)
	}
}

// TestSMTPUTF8NotOffered: RFC 6531 3.4, a message that needs SMTPUTF8 is
// not sent to a next hop that does not announce it, and is returned at
// once (5.6.7 for an address, 5.6.9 for a header) rather than deferred
// until queue_lifetime; one that only claimed it, all ASCII, goes on
// without it; and each next hop is judged for its own recipients.
func TestSMTPUTF8NotOffered(t *testing.T) {
	tc := newTestCourier(t)
	plain := smtptest.StartNoUTF8(t, "tcp", "127.0.0.1:0", false)
	eai := smtptest.Start(t, "tcp", "127.0.0.1:0", false)
	tc.cfg.SMTPD.Transport = map[string]string{"plain.test": plain.Addr, "eai.test": eai.Addr}

	tc.enqueue(t, "demo@example.test", true, asciiMessage, "j\u00f6rg@plain.test")
	tc.enqueue(t, "demo@example.test", true, utf8Message, "ann@eai.test", "bob@plain.test")
	tc.enqueue(t, "demo@example.test", true, asciiMessage, "carol@plain.test", "d\u00e9sir\u00e9e@eai.test")
	// A sender whose own server lacks SMTPUTF8 still gets its notice.
	tc.enqueue(t, "erin@plain.test", true, asciiMessage, "fr\u00e9d@plain.test")
	// Also when the notice returns UTF-8 header fields: they travel in
	// its message/global part (RFC 6532 3.5).
	tc.enqueue(t, "gus@plain.test", true, utf8Message, "hal@plain.test")
	tc.drain(t)

	if got := plain.To("carol@plain.test"); len(got) != 1 || got[0].UTF8 {
		t.Errorf("the ASCII message claiming SMTPUTF8 to a hop without it: %+v", got)
	}
	if got := eai.To("d\u00e9sir\u00e9e@eai.test"); len(got) != 1 || !got[0].UTF8 {
		t.Errorf("the UTF-8 recipient on a hop with SMTPUTF8: %+v", got)
	}
	if got := eai.To("ann@eai.test"); len(got) != 1 || !got[0].UTF8 || !strings.Contains(got[0].Data, "Gr\u00fc\u00dfe") {
		t.Errorf("the UTF-8 header to a hop with SMTPUTF8: %+v", got)
	}
	for _, r := range []string{"bob@plain.test", "j\u00f6rg@plain.test", "fr\u00e9d@plain.test", "hal@plain.test"} {
		if got := plain.To(r); len(got) != 0 {
			t.Errorf("%s was sent to a hop without SMTPUTF8: %+v", r, got)
		}
	}
	local := tc.lmtp.To("demo@example.test")
	if len(local) != 2 {
		t.Fatalf("%d notices to the local sender, want 2: %+v", len(local), local)
	}
	dsnFor(t, local, "j\u00f6rg@plain.test", "5.6.7", "message/global-delivery-status")
	dsnFor(t, local, "bob@plain.test", "5.6.9", "message/global-delivery-status")
	dsnFor(t, plain.To("erin@plain.test"), "fr\u00e9d@plain.test", "5.6.7", "message/global-delivery-status")
	dsnFor(t, plain.To("gus@plain.test"), "hal@plain.test", "5.6.9", "message/global-delivery-status")
	if got := plain.To("gus@plain.test"); len(got) != 1 || !strings.Contains(got[0].Data, "Content-Type: message/global\r\n") ||
		!strings.Contains(got[0].Data, "Subject: Gr\u00fc\u00dfe") {
		t.Errorf("the notice returning UTF-8 header fields: %+v", got)
	}
	for _, m := range local {
		if m.From != "" || !m.UTF8 {
			t.Errorf("a notice to the local sender from %q, SMTPUTF8 %v", m.From, m.UTF8)
		}
	}
}

// TestSMTPUTF8RelayHost: the same through relay_host, the one next hop.
func TestSMTPUTF8RelayHost(t *testing.T) {
	tc := newTestCourier(t)
	relay := smtptest.StartNoUTF8(t, "tcp", "127.0.0.1:0", false)
	tc.cfg.SMTPD.RelayHost = relay.Addr
	tc.enqueue(t, "demo@example.test", true, asciiMessage, "j\u00f6rg@far.test")
	tc.enqueue(t, "demo@example.test", true, asciiMessage, "kim@far.test")
	tc.drain(t)
	if got := relay.To("kim@far.test"); len(got) != 1 || got[0].UTF8 {
		t.Errorf("the ASCII message through relay_host: %+v", got)
	}
	dsnFor(t, tc.lmtp.To("demo@example.test"), "j\u00f6rg@far.test", "5.6.7", "message/global-delivery-status")
}

// TestSMTPUTF8LMTP: an LMTP server without SMTPUTF8 (smtpd.lmtp need not
// be lmtpd) is judged as an SMTP next hop is; the notice to a sender
// whose message came without SMTPUTF8 stays ASCII (RFC 6533 3).
func TestSMTPUTF8LMTP(t *testing.T) {
	tc := newTestCourier(t)
	path := strings.TrimPrefix(tc.cfg.SMTPD.LMTP, "unix:")
	tc.lmtp.Close()
	tc.lmtp = smtptest.StartNoUTF8(t, "unix", path, true)
	remote := smtptest.Start(t, "tcp", "127.0.0.1:0", false)
	tc.cfg.SMTPD.Transport = map[string]string{"eai.test": remote.Addr}
	tc.enqueue(t, "sam@eai.test", true, asciiMessage, "j\u00f6rg@example.test")
	tc.enqueue(t, "sam@eai.test", true, asciiMessage, "demo@example.test")
	tc.enqueue(t, "tom@eai.test", false, asciiMessage, "j\u00f6rg@example.test")
	tc.drain(t)
	if got := tc.lmtp.To("demo@example.test"); len(got) != 1 || got[0].UTF8 {
		t.Errorf("the ASCII message to lmtp without SMTPUTF8: %+v", got)
	}
	dsnFor(t, remote.To("sam@eai.test"), "j\u00f6rg@example.test", "5.6.7", "message/global-delivery-status")
	ascii := remote.To("tom@eai.test")
	dsnFor(t, ascii, `j\x{F6}rg@example.test`, "5.6.7", "message/delivery-status")
	if !strings.Contains(ascii[0].Data, `Final-Recipient: utf-8; j\x{F6}rg@example.test`) {
		t.Errorf("the ASCII notice's Final-Recipient:\n%s", ascii[0].Data)
	}
}

// TestNeedsUTF8: RFC 6531 3.2, UTF-8 header fields at any level of the
// MIME structure need SMTPUTF8; a UTF-8 body does not (8BITMIME is for
// that), nor does anything in a message that came without SMTPUTF8 and
// has ASCII addresses.
func TestNeedsUTF8(t *testing.T) {
	const multi = "From: <demo@example.test>\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n" +
		"--b1\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nGr\u00fc\u00dfe\r\n" +
		"--b1\r\n%s\r\n\r\n%s\r\n--b1--\r\n"
	for _, c := range []struct {
		name   string
		utf8   bool
		from   string
		data   string
		status string
	}{
		{"ascii", true, "demo@example.test", asciiMessage, ""},
		{"utf-8 body", true, "demo@example.test",
			fmt.Sprintf(multi, "Content-Type: text/plain", "plain"), ""},
		{"utf-8 subject", true, "demo@example.test", utf8Message, "5.6.9"},
		{"utf-8 subject without SMTPUTF8", false, "demo@example.test", utf8Message, ""},
		{"utf-8 sender", false, "j\u00f6rg@example.test", asciiMessage, "5.6.7"},
		{"utf-8 part header", true, "demo@example.test",
			fmt.Sprintf(multi, "Content-Type: text/plain\r\nContent-Disposition: attachment; filename=\"gr\u00fc\u00dfe.txt\"", "x"), "5.6.9"},
		{"utf-8 message/rfc822", true, "demo@example.test",
			fmt.Sprintf(multi, "Content-Type: message/rfc822", "Subject: Gr\u00fc\u00dfe\r\n\r\nx"), "5.6.9"},
		{"message/global", true, "demo@example.test",
			fmt.Sprintf(multi, "Content-Type: message/global", "Subject: Gr\u00fc\u00dfe\r\n\r\nx"), ""},
		{"ascii message/rfc822", true, "demo@example.test",
			fmt.Sprintf(multi, "Content-Type: message/rfc822", "Subject: hi\r\n\r\nGr\u00fc\u00dfe"), ""},
	} {
		e := &queue.Envelope{From: c.from, UTF8: c.utf8, Recipients: []queue.Recipient{{Addr: "bob@plain.test"}}}
		if got := needsUTF8(e, []int{0}, strings.NewReader(c.data)); got.status != c.status {
			t.Errorf("%s: needs %q, want %q", c.name, got.status, c.status)
		}
	}
}
