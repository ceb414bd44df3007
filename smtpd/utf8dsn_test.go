package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// TestDSNToUTF8Sender: a bounce to a sender whose address is UTF-8 is
// handed to lmtpd with SMTPUTF8, which lmtpd requires for a non-ASCII
// address (RFC 6531 3.4); without it the bounce would be refused and,
// having no sender to go back to, lost.
func TestDSNToUTF8Sender(t *testing.T) {
	// A remote MX that offers SMTPUTF8 and refuses the recipient.
	mx := &remoteMX{reject: &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}}
	mx.srv = smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &remoteSession{m: mx}, nil
	}))
	mx.srv.Domain, mx.srv.EnableSMTPUTF8 = "mx.remote.test", true
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mx.addr = l.Addr().String()
	go mx.srv.Serve(l)
	t.Cleanup(func() { mx.srv.Close() })
	cfg := newTestConfig(t, fmt.Sprintf("transport = { \"remote.test\" = %q }\n", mx.addr))
	// demo may send as its aliases.
	if err := os.WriteFile(cfg.Aliases, []byte("postmaster: demo\nj\u00f6rg: demo\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sink := startLMTP(t, cfg)
	e := startSMTPD(t, cfg)
	c, err := smtp.DialStartTLS(e.addr(kindSubmission), clientTLS)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", "demo", "demo")); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("j\u00f6rg@example.test", &smtp.MailOptions{UTF8: true}); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("nobody@remote.test", nil); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "Subject: doomed\r\n\r\nx\r\n")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	c.Quit()
	waitFor(t, 10*time.Second, "the DSN", func() bool { return len(sink.messages("j\u00f6rg@example.test")) == 1 })
	if m := sink.messages("j\u00f6rg@example.test")[0]; !strings.Contains(m, "Final-Recipient: rfc822; nobody@remote.test") {
		t.Errorf("not the DSN:\n%s", m)
	}
}
