package main

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

func TestMXDeliversLocally(t *testing.T) {
	cfg := newTestConfig(t, "")
	sink := startLMTP(t, cfg)
	e := startSMTPD(t, cfg)
	c := dialRaw(t, e.addr(kindMX))
	c.cmd("EHLO client.test", "250")
	c.cmd("MAIL FROM:<someone@remote.test>", "250")
	c.cmd("RCPT TO:<demo@example.test>", "250")
	c.cmd("RCPT TO:<nobody@example.test>", "550 5.1.1")
	c.cmd("DATA", "354")
	c.send("Subject: hi\r\n\r\nhello\r\n.\r\n")
	c.expect("250")
	c.cmd("NOOP", "250")
	c.cmd("RSET", "250")
	c.cmd("QUIT", "221")
	msgs := sink.messages("demo@example.test")
	if len(msgs) != 1 {
		t.Fatalf("want 1 delivered copy, got %d", len(msgs))
	}
	if !strings.HasPrefix(msgs[0], "Received: from client.test ([127.0.0.1])\r\n\tby mail.example.test") ||
		!strings.HasSuffix(msgs[0], "Subject: hi\r\n\r\nhello\r\n") {
		t.Errorf("delivered copy:\n%q", msgs[0])
	}
	if strings.Contains(msgs[0], "Message-ID") {
		t.Errorf("MX must not add Message-ID: %q", msgs[0])
	}
}

func TestMXWithPythonSmtplib(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 not installed")
	}
	cfg := newTestConfig(t, "")
	sink := startLMTP(t, cfg)
	e := startSMTPD(t, cfg)
	host, port, _ := strings.Cut(e.addr(kindMX), ":")
	script := `
import smtplib, sys
s = smtplib.SMTP(sys.argv[1], int(sys.argv[2]), timeout=20)
s.ehlo("py.test")
assert s.has_extn("pipelining") and s.has_extn("8bitmime") and s.has_extn("smtputf8")
assert s.has_extn("chunking") and s.has_extn("dsn") and s.has_extn("enhancedstatuscodes")
assert s.has_extn("size") and s.has_extn("starttls") and not s.has_extn("auth")
s.sendmail("a@remote.test", ["alice@example.test"], b"Subject: py\r\n\r\nbody\r\n")
try:
    s.sendmail("a@remote.test", ["x@elsewhere.test"], b"Subject: relay\r\n\r\nx\r\n")
    sys.exit("relay accepted")
except smtplib.SMTPRecipientsRefused as e:
    code = e.recipients["x@elsewhere.test"][0]
    assert code == 554, code
s.quit()
`
	out, err := exec.Command("python3", "-c", script, host, port).CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	if n := len(sink.messages("alice@example.test")); n != 1 {
		t.Fatalf("want 1 copy for alice, got %d", n)
	}
}

func TestProtocolErrors(t *testing.T) {
	cfg := newTestConfig(t, "")
	startLMTP(t, cfg)
	e := startSMTPD(t, cfg)
	c := dialRaw(t, e.addr(kindMX))
	c.cmd("EHLO client.test", "250")
	c.cmd("FOOB bar", "500")
	c.cmd("DATA", "503")
	// RFC 5321 4.5.3.1.4: a command line longer than the limit is refused.
	c.send("MAIL FROM:<" + strings.Repeat("a", cfg.SMTPD.MaxLineLength) + "@x.test>\r\n")
	c.expect("500")

	// HTTP on the SMTP port is cut at once.
	h := dialRaw(t, e.addr(kindMX))
	h.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	h.expect("500 5.5.2 HTTP")
}

func TestShutdownAnswers421(t *testing.T) {
	cfg := newTestConfig(t, "")
	startLMTP(t, cfg)
	e := startSMTPD(t, cfg)
	c := dialRaw(t, e.addr(kindMX))
	c.cmd("EHLO client.test", "250")
	tls, err := smtp.DialStartTLS(e.addr(kindSubmission), clientTLS)
	if err != nil {
		t.Fatal(err)
	}
	defer tls.Close()
	if err := tls.Noop(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	go e.stop()
	c.expect("421 4.3.2")
	waitFor(t, 3*time.Second, "the TLS session to be told 421", func() bool {
		err := tls.Noop()
		return err != nil && (strings.Contains(err.Error(), "421") || strings.Contains(err.Error(), "EOF"))
	})
	select {
	case <-e.stopped:
	case <-time.After(6 * time.Second):
		t.Fatal("smtpd still running 6s after SIGTERM")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("shutdown took %s", d)
	}
}

func TestConnectionsPerIP(t *testing.T) {
	cfg := newTestConfig(t, "max_connections_per_ip = 2\n")
	startLMTP(t, cfg)
	e := startSMTPD(t, cfg)
	dialRaw(t, e.addr(kindMX))
	dialRaw(t, e.addr(kindMX))
	c, err := smtp.Dial(e.addr(kindMX))
	if err == nil {
		err = c.Hello("x.test")
		c.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "421") {
		t.Fatalf("third connection: want 421, got %v", err)
	}
}

// TestShutdownGoodbyeEveryTransport: at shutdown every session waiting
// for its client is told 421 4.3.2 (RFC 5321 3.8) on its own transport:
// in plaintext, after STARTTLS and over implicit TLS.
func TestShutdownGoodbyeEveryTransport(t *testing.T) {
	cfg := newTestConfig(t, "")
	startLMTP(t, cfg)
	e := startSMTPD(t, cfg)
	var conns []*rawConn
	for _, tr := range allTransports {
		c := e.open(t, tr)
		c.cmd("EHLO goodbye.test", "250")
		conns = append(conns, c)
	}
	go e.stop()
	for i, c := range conns {
		if r := c.reply(); !strings.HasPrefix(r, "421 4.3.2 ") {
			t.Errorf("%s: %q, want 421 4.3.2", allTransports[i].name, r)
		}
	}
}
