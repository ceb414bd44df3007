package main

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestSizeLimitEveryTransport: RFC 1870 6: a SIZE over max_message_size
// is refused at MAIL with 552 5.3.4; a message that is larger than
// declared gets one 552 5.3.4 after its data, by DATA or BDAT, and is
// not delivered; the session goes on. On 25, 587 after STARTTLS and 465.
func TestSizeLimitEveryTransport(t *testing.T) {
	e, sink := startStrict(t, "max_message_size = 20000\n")
	big := "Subject: big\r\n\r\n" + strings.Repeat(strings.Repeat("x", 98)+"\r\n", 300)
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			c := e.open(t, tr)
			from := c.ready(tr)
			c.cmd("MAIL FROM:<"+from+"> SIZE=20001", "552 5.3.4")
			c.cmd("MAIL FROM:<"+from+"> SIZE=99999999999999999999999999", "552 5.3.4")
			c.cmd("MAIL FROM:<"+from+"> SIZE=100", "250")
			c.cmd("RCPT TO:<alice@example.test>", "250")
			c.cmd("DATA", "354")
			c.send(big + ".\r\n")
			c.expect("552 5.3.4")
			c.cmd("NOOP", "250 2.0.0")
			c.cmd("MAIL FROM:<"+from+">", "250")
			c.cmd("RCPT TO:<alice@example.test>", "250")
			half := big[:15000]
			c.send(fmt.Sprintf("BDAT %d\r\n%s", len(half), half))
			c.expect("250")
			rest := big[15000:]
			c.send(fmt.Sprintf("BDAT %d LAST\r\n%s", len(rest), rest))
			c.expect("552 5.3.4")
			c.cmd("NOOP", "250 2.0.0")
			// RFC 6531 3.4: a UTF-8 address needs SMTPUTF8.
			c.cmd("MAIL FROM:<"+from+">", "250")
			c.cmd("RCPT TO:<\u00e4@example.test>", "553 5.6.7")
			c.cmd("QUIT", "221")
		})
	}
	if n := len(sink.messages("alice@example.test")); n != 0 {
		t.Errorf("%d messages over the size limit delivered", n)
	}
}

// TestSlowDataEveryTransport: smtpd.min_data_rate holds after STARTTLS
// and on 465 as in plaintext: a message's data sent a byte just before
// each read timeout ends the session instead of holding it for days.
func TestSlowDataEveryTransport(t *testing.T) {
	e, sink := startStrict(t, "read_timeout = \"1s\"\nmin_data_rate = 1000\n")
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			c := e.open(t, tr)
			c.envelope(tr, "alice@example.test")
			c.cmd("DATA", "354")
			c.send("Subject: slow\r\n\r\n")
			start := time.Now()
			for i := 0; i < 20; i++ {
				time.Sleep(300 * time.Millisecond)
				if _, err := c.c.Write([]byte("x")); err != nil {
					break
				}
			}
			c.closed("slow data")
			if d := time.Since(start); d > 4*time.Second {
				t.Errorf("slow data held the session %v", d)
			}
		})
	}
	if n := len(sink.messages("alice@example.test")); n != 0 {
		t.Errorf("%d slow messages delivered", n)
	}
}
