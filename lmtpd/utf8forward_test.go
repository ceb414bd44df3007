package main

import (
	"slices"
	"strings"
	"testing"

	"tern/common/smtptest"
)

// TestForwardUTF8Sender: a message from a UTF-8 sender (RFC 6531),
// forwarded by an alias to a remote address, is handed to smtpd with
// SMTPUTF8, which smtpd requires for a non-ASCII address (RFC 6531 3.4).
func TestForwardUTF8Sender(t *testing.T) {
	e := startServer(t, func(c *configT) {
		write(t, c.Aliases, testAliases+"fwd: out@remote.test, gr\u00fc\u00df@remote.test\n")
	})
	// smtpd's local submission socket: a sink that, as smtpd, refuses a
	// non-ASCII address without SMTPUTF8.
	k := smtptest.Start(t, "unix", strings.TrimPrefix(e.cfg.SMTPD.LocalSubmit, "unix:"), false)
	c := dialRaw(t, "unix", e.unix)
	c.send("LHLO client.test")
	c.expect("250 ")
	c.send("MAIL FROM:<j\u00f6rg@remote.test> SMTPUTF8", "RCPT TO:<fwd@example.test>", "DATA")
	c.expect("250 ")
	c.expect("250 ")
	c.expect("354 ")
	c.send("Subject: forwarded\r\n\r\nhi\r\n.")
	c.expect("250 2.0.0 <fwd@example.test>")
	msgs := k.Messages()
	if len(msgs) != 1 || msgs[0].From != "j\u00f6rg@remote.test" || !slices.Contains(msgs[0].To, "gr\u00fc\u00df@remote.test") {
		t.Errorf("submitted: %+v", msgs)
	}
}
