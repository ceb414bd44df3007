package main

import (
	"crypto/tls"
	"encoding/base64"
	"strings"
	"testing"
)

// relayAttempts are recipient addresses that a careless MTA might relay.
// None may be accepted without AUTH: each must be refused at RCPT.
var relayAttempts = []string{
	"<user@remote.test>",
	"<USER@REMOTE.TEST>",
	"<user@remote.test.>",
	"<user@Remote.Test>",
	"<user%remote.test@example.test>",
	"<user%remote.test@EXAMPLE.TEST>",
	"<remote.test!user@example.test>",
	"<remote.test!user>",
	"<user@remote.test@example.test>",
	"<user@example.test@remote.test>",
	"<\"user@remote.test\"@example.test>",
	"<\"user%remote.test\"@example.test>",
	"<\"user@remote.test\">",
	"<\"demo\"@remote.test>",
	"<@example.test:user@remote.test>",
	"<@example.test,@other.test:user@remote.test>",
	"<@remote.test:demo@remote.test>",
	"<user@[127.0.0.1]>",
	"<user@[192.0.2.1]>",
	"<user@[IPv6:::1]>",
	"<user@[IPv6:2001:db8::1]>",
	"<demo@[127.0.0.1]>",
	"<user@127.0.0.1>",
	"<user@localhost>",
	"<user@mail.example.test>",
	"<user@example.test.remote.test>",
	"<user@sub.example.test>",
	"<user@example.testx>",
	"<user@xexample.test>",
	"<user@remote.test%example.test>",
	"<user@remote.test:25>",
	"<user@remote.test>>",
	"user@remote.test",
	"<user@remote.test> NOTIFY=NEVER",
	"<postmaster@remote.test>",
	"<demo@remote.test>",
	"<user@remote.test\tx>",
	"<user@example.test..>",
	"<user@.example.test>",
	"<user@remote..test>",
	"<\"\"@remote.test>",
	"<user@ремоут.test>",
	"<user@xn--e1afmkfd.test>",
	"<user@remote.test,demo@example.test>",
	"<user@remote.test  >",
	"<demo@example.test@>",
	"<user(comment)@remote.test>",
}

func TestNoOpenRelay(t *testing.T) {
	if len(relayAttempts) < 40 {
		t.Fatalf("only %d relay attempts", len(relayAttempts))
	}
	cfg := newTestConfig(t, "")
	sink := startLMTP(t, cfg)
	e := startSMTPD(t, cfg)
	for _, tr := range allTransports {
		k := tr.name
		for _, a := range relayAttempts {
			c := e.open(t, tr)
			c.cmd("EHLO relay.test", "250")
			c.send("MAIL FROM:<spammer@remote.test>\r\n")
			mail := c.reply()
			c.send("RCPT TO:" + a + "\r\n")
			r := c.reply()
			if strings.HasPrefix(r, "2") {
				t.Errorf("%s: RCPT TO:%s accepted without AUTH (MAIL: %q): %q", k, a, mail, r)
			}
			c.send("DATA\r\n")
			if r := c.reply(); strings.HasPrefix(r, "354") {
				t.Errorf("%s: DATA accepted after RCPT TO:%s", k, a)
				c.send("x\r\n.\r\n")
				c.reply()
			}
			c.c.Close()
		}
	}
	ids, _ := e.srv.queue.IDs()
	if len(ids) != 0 {
		t.Errorf("queue holds %d messages after relay attempts", len(ids))
	}
	if n := len(sink.messages("demo@example.test")); n != 0 {
		t.Errorf("%d messages delivered", n)
	}
}

// smuggleVariants end the DATA early for a lenient parser; each is
// followed by a smuggled transaction and then the real end of data.
var smuggleVariants = []string{
	"\n.\n", "\n.\r\n", "\r\n.\n", "\r.\r\n", "\r\n.\r", "\r.\n", "\n.\r",
	"\r\n\x00.\r\n", "\r\n.\r\r\n", "\r\r\n.\r\r\n", "\n\n.\n\n", "\r\n .\r\n",
	"\r\n.\n\r\n", "\n..\n",
}

func TestNoSmuggling(t *testing.T) {
	cfg := newTestConfig(t, "")
	sink := startLMTP(t, cfg)
	e := startSMTPD(t, cfg)
	plain := base64.StdEncoding.EncodeToString([]byte("\x00demo@example.test\x00demo"))
	for _, tr := range allTransports {
		k := tr.name
		for _, v := range smuggleVariants {
			c := e.open(t, tr)
			c.cmd("EHLO smuggle.test", "250")
			from := "attacker@remote.test"
			if tr.kind != kindMX {
				c.cmd("AUTH PLAIN "+plain, "235")
				from = "demo@example.test"
			}
			c.cmd("MAIL FROM:<"+from+">", "250")
			c.cmd("RCPT TO:<alice@example.test>", "250")
			c.cmd("DATA", "354")
			c.send("Subject: legit\r\n\r\nbody" + v +
				"MAIL FROM:<admin@example.test>\r\nRCPT TO:<demo@example.test>\r\nDATA\r\nSubject: smuggled\r\n\r\nsmuggled\r\n.\r\n")
			r := c.reply()
			// Whatever the reply to the outer message, nothing after the
			// lenient end may have run as commands.
			c.send("QUIT\r\n")
			for rest := c.reply(); !strings.HasPrefix(rest, "221") && !strings.HasPrefix(rest, "EOF"); rest = c.reply() {
				t.Errorf("%s %q: unexpected extra reply %q (first %q)", k, v, rest, r)
			}
		}
	}
	for _, addr := range []string{"demo@example.test", "alice@example.test"} {
		for _, m := range sink.messages(addr) {
			if strings.Contains(m, "smuggled") && addr == "demo@example.test" {
				t.Errorf("smuggled message delivered to %s", addr)
			}
			if strings.Contains(m, "\n.\n") || strings.Contains(m, "\r.\r") || strings.Contains(m, "\x00") {
				t.Errorf("message with a bare line end accepted: %q", m)
			}
		}
	}
	if n := len(sink.messages("demo@example.test")); n != 0 {
		t.Errorf("%d smuggled messages", n)
	}
}

func TestStartTLSInjection(t *testing.T) {
	cfg := newTestConfig(t, "")
	startLMTP(t, cfg)
	e := startSMTPD(t, cfg)
	c := dialRaw(t, e.addr(kindSubmission))
	c.cmd("EHLO inject.test", "250")
	// RFC 3207 4.2 / CVE-2011-0411: commands in the same packet as STARTTLS
	// must be thrown away.
	c.send("STARTTLS\r\nMAIL FROM:<demo@example.test>\r\n")
	c.expect("220")
	tc := tls.Client(c.c, clientTLS)
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	after := &rawConn{t: t, c: tc, r: newReader(tc)}
	after.cmd("EHLO inject.test", "250")
	after.cmd("RCPT TO:<alice@example.test>", "503")
	r := after.cmd("EHLO again.test", "250")
	if !strings.Contains(r, "AUTH PLAIN LOGIN") || strings.Contains(r, "STARTTLS") {
		t.Errorf("EHLO after TLS: %q", r)
	}
}

func TestBareLFInCommand(t *testing.T) {
	cfg := newTestConfig(t, "")
	startLMTP(t, cfg)
	e := startSMTPD(t, cfg)
	c := dialRaw(t, e.addr(kindMX))
	c.cmd("EHLO lf.test", "250")
	c.send("MAIL FROM:<a@remote.test>\nRCPT TO:<demo@example.test>\r\n")
	c.expect("500 5.5.2 bare LF")
}
