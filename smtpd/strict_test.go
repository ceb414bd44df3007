package main

import (
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// The strictness rules of common/smtpserver, checked on every transport a
// client can use: port 25 in plaintext, 587 after STARTTLS and 465 with
// implicit TLS. Each case speaks raw bytes on a real socket.

var netDialer = net.Dialer{Timeout: 5 * time.Second}

type transport struct {
	name string
	kind kind
	tls  string // "", "starttls" or "implicit"
}

var transports = []transport{
	{"25", kindMX, ""},
	{"587+STARTTLS", kindSubmission, "starttls"},
	{"465", kindSubmissions, "implicit"},
}

// allTransports adds 25 after STARTTLS and 587 before it (AUTH is
// allowed there on loopback only).
var allTransports = append([]transport{{"25+STARTTLS", kindMX, "starttls"}, {"587", kindSubmission, ""}}, transports...)

// open connects over tr and returns a connection that has had its
// greeting (and, for 587, done STARTTLS): the next command is the
// client's first on the final transport.
func (e *testEnv) open(t *testing.T, tr transport) *rawConn {
	t.Helper()
	switch tr.tls {
	case "implicit":
		tc, err := tls.DialWithDialer(&netDialer, "tcp", e.addr(tr.kind), clientTLS)
		if err != nil {
			t.Fatal(err)
		}
		tc.SetDeadline(time.Now().Add(20 * time.Second))
		t.Cleanup(func() { tc.Close() })
		c := &rawConn{t: t, c: tc, r: newReader(tc)}
		c.expect("220 ")
		return c
	case "starttls":
		c := dialRaw(t, e.addr(tr.kind))
		c.cmd("EHLO strict.test", "250")
		c.cmd("STARTTLS", "220")
		tc := tls.Client(c.c, clientTLS)
		if err := tc.Handshake(); err != nil {
			t.Fatal(err)
		}
		return &rawConn{t: t, c: tc, r: newReader(tc)}
	}
	return dialRaw(t, e.addr(tr.kind))
}

// ready greets and, on the submission ports, logs in; it returns the
// sender to use.
func (c *rawConn) ready(tr transport) string {
	c.t.Helper()
	c.cmd("EHLO strict.test", "250")
	if tr.kind == kindMX {
		return "sender@remote.test"
	}
	plain := base64.StdEncoding.EncodeToString([]byte("\x00demo@example.test\x00demo"))
	c.cmd("AUTH PLAIN "+plain, "235")
	return "demo@example.test"
}

// envelope greets (ready) and opens a transaction to rcpt, which must be
// accepted; it returns the sender.
func (c *rawConn) envelope(tr transport, rcpt string) string {
	c.t.Helper()
	from := c.ready(tr)
	c.cmd("MAIL FROM:<"+from+">", "250")
	c.cmd("RCPT TO:<"+rcpt+">", "250")
	return from
}

// closed checks that the server ended the connection.
func (c *rawConn) closed(what string) {
	c.t.Helper()
	c.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if r := c.reply(); !strings.HasPrefix(r, "EOF") {
		c.t.Errorf("%s: connection still open, got %q", what, r)
	}
}

func startStrict(t *testing.T, extra string) (*testEnv, *lmtpSink) {
	t.Helper()
	cfg := newTestConfig(t, extra)
	sink := startLMTP(t, cfg)
	return startSMTPD(t, cfg), sink
}

// TestLongDataLineOneReply: RFC 5321 4.5.3.1.6 and 4.2.5: a DATA line over
// max_line_length gets one permanent reply, and the session goes on.
func TestLongDataLineOneReply(t *testing.T) {
	e, sink := startStrict(t, "")
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			c := e.open(t, tr)
			c.envelope(tr, "alice@example.test")
			c.cmd("DATA", "354")
			c.send("Subject: long\r\n\r\n" + strings.Repeat("x", e.cfg.SMTPD.MaxLineLength+10) + "\r\nmore\r\n.\r\n")
			c.expect("554 5.6.0")
			// Had a second reply been written, NOOP would read it.
			c.cmd("NOOP", "250 2.0.0")
			c.cmd("QUIT", "221")
		})
	}
	if n := len(sink.messages("alice@example.test")); n != 0 {
		t.Errorf("%d messages with an over-long line delivered", n)
	}
}

// TestBadSequence: RFC 5321 4.1.4: MAIL before EHLO, RCPT before MAIL and
// DATA before RCPT get 503; after STARTTLS the session starts over, so
// MAIL needs a new EHLO.
func TestBadSequence(t *testing.T) {
	e, _ := startStrict(t, "")
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			c := e.open(t, tr)
			c.cmd("MAIL FROM:<a@remote.test>", "503 5.5.1")
			c.cmd("RCPT TO:<alice@example.test>", "503 5.5.1")
			from := c.ready(tr)
			c.cmd("RCPT TO:<alice@example.test>", "503 5.5.1")
			c.cmd("DATA", "503 5.5.1")
			c.cmd("MAIL FROM:<"+from+">", "250")
			c.cmd("MAIL FROM:<"+from+">", "503 5.5.1")
			c.cmd("DATA", "503 5.5.1")
			c.cmd("RSET", "250")
			c.cmd("BDAT 0 LAST", "503 5.5.1")
			c.cmd("NOOP", "250")
		})
	}
}

// TestBareLineEndInCommand: RFC 5321 2.3.8: a bare CR or LF in a command
// line is refused and the connection closed, whatever the transport;
// nothing after it runs. So are an HTTP request and a command line over
// max_line_length (RFC 5321 4.5.3.1.4).
func TestBareLineEndInCommand(t *testing.T) {
	e, _ := startStrict(t, "")
	for _, tr := range transports {
		for _, v := range []struct{ name, in, want string }{
			{"LF", "MAIL FROM:<a@remote.test>\nRCPT TO:<alice@example.test>\r\n", "500 5.5.2 bare LF"},
			{"CR", "MAIL FROM:<a@remote.test>\rRCPT TO:<alice@example.test>\r\n", "500 5.5.2 bare CR"},
			{"CR at the end", "NOOP\r\rNOOP\r\n", "500 5.5.2 bare CR"},
			{"HTTP", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", "500 5.5.2 HTTP"},
			{"long line", "NOOP " + strings.Repeat("x", 5000) + "\r\nNOOP\r\n", "500 5.5.2 Line too long"},
		} {
			t.Run(tr.name+"/"+v.name, func(t *testing.T) {
				c := e.open(t, tr)
				c.ready(tr)
				c.send(v.in)
				c.expect(v.want)
				c.closed("after a bare line end")
			})
		}
	}
}

// TestBDATChunkNeverCommands: a BDAT whose size cannot be read ends the
// connection; a refused BDAT with a size still reads its chunk. Neither
// lets the chunk's bytes run as commands.
func TestBDATChunkNeverCommands(t *testing.T) {
	e, sink := startStrict(t, "")
	smuggled := "RSET\r\nMAIL FROM:<a@remote.test>\r\nRCPT TO:<demo@example.test>\r\nDATA\r\nSubject: smuggled\r\n\r\nx\r\n.\r\n"
	for _, tr := range transports {
		t.Run(tr.name+"/malformed size", func(t *testing.T) {
			for _, size := range []string{"1x", "-5", "+12", "", "0x20", "99999999999999999999999"} {
				c := e.open(t, tr)
				c.envelope(tr, "alice@example.test")
				c.send("BDAT " + size + "\r\n" + smuggled)
				c.expect("501 5.5.4")
				c.closed("BDAT " + size)
			}
		})
		t.Run(tr.name+"/refused chunk", func(t *testing.T) {
			c := e.open(t, tr)
			c.ready(tr)
			// Out of sequence: refused, but its chunk is read and dropped.
			c.send(fmt.Sprintf("BDAT %d LAST\r\n%s", len(smuggled), smuggled))
			c.expect("503 5.5.1")
			c.send(fmt.Sprintf("BDAT %d BOGUS\r\n%s", len(smuggled), smuggled))
			c.expect("501 5.5.4")
			c.cmd("NOOP", "250 2.0.0")
			c.cmd("QUIT", "221")
		})
	}
	if n := len(sink.messages("demo@example.test")); n != 0 {
		t.Errorf("%d smuggled messages delivered", n)
	}
}

// TestDotCRNotAnEnd: a DATA line ".\r" followed by text without LF is a
// bare CR: the message is refused, and the text after it is content,
// never commands.
func TestDotCRNotAnEnd(t *testing.T) {
	e, sink := startStrict(t, "")
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			c := e.open(t, tr)
			c.envelope(tr, "alice@example.test")
			c.cmd("DATA", "354")
			c.send("Subject: outer\r\n\r\nbody\r\n.\rMAIL FROM:<a@remote.test>\r\nRCPT TO:<demo@example.test>\r\nDATA\r\nsmuggled\r\n.\r\n")
			c.expect("554 5.6.0")
			c.cmd("NOOP", "250 2.0.0")
		})
	}
	if n := len(sink.messages("demo@example.test")) + len(sink.messages("alice@example.test")); n != 0 {
		t.Errorf("%d messages delivered", n)
	}
}

// TestMaxErrorsEveryCommand: every refused command counts towards
// max_errors, out-of-sequence and malformed ones as much as refused
// recipients; the one past the limit gets 421 and the end.
func TestMaxErrorsEveryCommand(t *testing.T) {
	e, _ := startStrict(t, "max_errors = 5\n")
	bad := map[string]func(from string) string{
		"RCPT before MAIL": func(string) string { return "RCPT TO:<alice@example.test>" },
		"malformed MAIL":   func(string) string { return "MAIL FROM:<<>" },
		"unknown command":  func(string) string { return "FROB" },
		"unknown user":     func(string) string { return "RCPT TO:<nobody@example.test>" },
	}
	for _, tr := range transports {
		for name, cmd := range bad {
			t.Run(tr.name+"/"+name, func(t *testing.T) {
				c := e.open(t, tr)
				from := c.ready(tr)
				if name == "unknown user" {
					c.cmd("MAIL FROM:<"+from+">", "250")
				}
				for i := 0; i < 60; i++ {
					c.send(cmd(from) + "\r\n")
					r := c.reply()
					if strings.HasPrefix(r, "EOF") {
						t.Fatalf("closed after %d errors without 421", i)
					}
					if strings.HasPrefix(r, "421 4.7.0") {
						if i != 5 {
							t.Fatalf("cut after %d errors, max_errors 5", i)
						}
						c.closed("after 421")
						return
					}
					if !strings.HasPrefix(r, "5") {
						t.Fatalf("error %d: %q", i, r)
					}
				}
				t.Fatal("60 bad commands and the session is still open")
			})
		}
	}
}

// TestStartTLSStrict: RFC 3207 4: STARTTLS with a parameter gets 501; a
// failed handshake ends the connection rather than going on in
// plaintext.
func TestStartTLSStrict(t *testing.T) {
	e, _ := startStrict(t, "")
	for _, tr := range transports {
		t.Run(tr.name+"/parameter", func(t *testing.T) {
			c := e.open(t, tr)
			c.cmd("EHLO strict.test", "250")
			c.cmd("STARTTLS junk", "501 5.5.4")
			c.cmd("NOOP", "250")
		})
	}
	for _, k := range []kind{kindMX, kindSubmission} {
		t.Run(k.String()+"/failed handshake", func(t *testing.T) {
			c := dialRaw(t, e.addr(k))
			c.cmd("EHLO strict.test", "250")
			c.cmd("STARTTLS", "220")
			// Not a TLS ClientHello: the handshake fails.
			c.send("EHLO plain.test\r\nMAIL FROM:<a@remote.test>\r\n")
			c.c.SetReadDeadline(time.Now().Add(5 * time.Second))
			b, err := io.ReadAll(c.r)
			if strings.Contains(string(b), "250") {
				t.Errorf("plaintext session went on after a failed handshake: %q", b)
			}
			if err != nil {
				t.Errorf("connection not closed: %v", err)
			}
		})
	}
	t.Run("465/failed handshake", func(t *testing.T) {
		c, err := netDialer.Dial("tcp", e.addr(kindSubmissions))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, "EHLO plain.test\r\nMAIL FROM:<a@remote.test>\r\n")
		b, err := io.ReadAll(c)
		if strings.Contains(string(b), "250") || err != nil {
			t.Errorf("plaintext on 465: %q, %v", b, err)
		}
	})
}

// TestEnhancedCodeOfLMTPFailure: a permanent failure from lmtpd reaches
// the client with lmtpd's own enhanced status code (RFC 3463), not 5.0.0
// with the code inside the text.
func TestEnhancedCodeOfLMTPFailure(t *testing.T) {
	e, sink := startStrict(t, "")
	sink.mu.Lock()
	sink.fail["alice@example.test"] = &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 2, 2}, Message: "Mailbox full"}
	sink.mu.Unlock()
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			c := e.open(t, tr)
			c.envelope(tr, "alice@example.test")
			c.cmd("DATA", "354")
			c.send("Subject: full\r\n\r\nx\r\n.\r\n")
			r := c.expect("552 5.2.2 ")
			if strings.Contains(r[len("552 5.2.2 "):], "5.2.2") {
				t.Errorf("enhanced code repeated in the text: %q", r)
			}
		})
	}
}

// TestBDATLineEnds: BDAT content keeps the DATA rule (no bare CR or LF,
// no NUL), also when a CRLF is split between two chunks.
func TestBDATLineEnds(t *testing.T) {
	e, sink := startStrict(t, "")
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			c := e.open(t, tr)
			from := c.ready(tr)
			for _, chunks := range [][]string{{"Subject: a\r\n\r\nx\ny\r\n"}, {"Subject: b\r\n\r\nx\r", "y\r\n"}, {"Subject: c\r\n\r\nx\r"}} {
				c.cmd("MAIL FROM:<"+from+">", "250")
				c.cmd("RCPT TO:<demo@example.test>", "250")
				for i, ch := range chunks {
					last := ""
					if i == len(chunks)-1 {
						last = " LAST"
					}
					c.send(fmt.Sprintf("BDAT %d%s\r\n%s", len(ch), last, ch))
					if last == "" {
						c.expect("250 2.0.0")
					}
				}
				c.expect("554 5.6.0")
			}
			body := "Subject: ok\r\n\r\nsplit\r"
			c.cmd("MAIL FROM:<"+from+">", "250")
			c.cmd("RCPT TO:<alice@example.test>", "250")
			c.send(fmt.Sprintf("BDAT %d\r\n%sBDAT 2 LAST\r\n\n\n", len(body), body))
			c.expect("250 2.0.0")
			c.expect("554 5.6.0") // "\r" + "\n\n": the second LF is bare
			c.send(fmt.Sprintf("MAIL FROM:<%s>\r\nRCPT TO:<alice@example.test>\r\nBDAT %d\r\n%sBDAT 1 LAST\r\n\n", from, len(body), body))
			c.expect("250")
			c.expect("250")
			c.expect("250 2.0.0")
			c.expect("250 2.0.0 OK")
		})
	}
	if n := len(sink.messages("demo@example.test")); n != 0 {
		t.Errorf("%d messages with bare line ends delivered", n)
	}
	if n := len(sink.messages("alice@example.test")); n != len(transports) {
		t.Errorf("alice has %d messages, want %d (CRLF split between chunks)", n, len(transports))
	}
}

// TestAuthLineTooLong: RFC 4954 6: a SASL response over max_line_length
// gets 500 5.5.6 and the connection ends, after STARTTLS and on 465 as
// in plaintext on 587.
func TestAuthLineTooLong(t *testing.T) {
	e, _ := startStrict(t, "")
	for _, tr := range allTransports {
		if tr.kind == kindMX {
			continue // no AUTH on 25
		}
		t.Run(tr.name, func(t *testing.T) {
			c := e.open(t, tr)
			c.cmd("EHLO strict.test", "250")
			c.cmd("AUTH PLAIN", "334")
			c.send(strings.Repeat("QUFB", e.cfg.SMTPD.MaxLineLength/4+10) + "\r\n")
			c.expect("500 5.5.6")
			c.closed("after 500 5.5.6")
		})
	}
}

// TestStartTLSOnTLS: RFC 3207 4: STARTTLS on a connection that is TLS
// already, after STARTTLS or on 465, is out of sequence (503 5.5.1) and
// not offered; the session goes on. Commands pipelined behind STARTTLS
// in plaintext are dropped, never run inside TLS (RFC 3207 4.2).
func TestStartTLSOnTLS(t *testing.T) {
	e, _ := startStrict(t, "")
	for _, tr := range allTransports {
		if tr.tls == "" {
			continue
		}
		t.Run(tr.name, func(t *testing.T) {
			c := e.open(t, tr)
			if ehlo := c.cmd("EHLO strict.test", "250"); strings.Contains(ehlo, "STARTTLS") {
				t.Errorf("STARTTLS offered over TLS: %q", ehlo)
			}
			c.cmd("STARTTLS", "503 5.5.1")
			c.cmd("NOOP", "250")
		})
	}
	t.Run("injection", func(t *testing.T) {
		c := dialRaw(t, e.addr(kindMX))
		c.cmd("EHLO strict.test", "250")
		c.send("STARTTLS\r\nMAIL FROM:<injected@remote.test>\r\n")
		c.expect("220")
		tc := tls.Client(c.c, clientTLS)
		if err := tc.Handshake(); err != nil {
			t.Fatal(err)
		}
		c = &rawConn{t: t, c: tc, r: newReader(tc)}
		// Had the injected MAIL run, this would be 503 (sender already given)
		// or its reply would come first.
		c.cmd("EHLO strict.test", "250")
		c.cmd("MAIL FROM:<sender@remote.test>", "250 2.1.0")
	})
}

// TestJunkCommandLimit: NOOP, RSET and VRFY are never refused, so only
// max_junk_commands bounds a session that sends nothing else; an accepted
// message starts the count over.
func TestJunkCommandLimit(t *testing.T) {
	e, _ := startStrict(t, "max_junk_commands = 5\n")
	for _, tr := range allTransports {
		t.Run(tr.name, func(t *testing.T) {
			c := e.open(t, tr)
			from := c.ready(tr)
			junk := []string{"NOOP", "RSET", "VRFY alice", "NOOP", "RSET"}
			for _, cmd := range junk[:4] {
				c.cmd(cmd, "25")
			}
			// A message between: the count starts over.
			c.cmd("MAIL FROM:<"+from+">", "250")
			c.cmd("RCPT TO:<alice@example.test>", "250")
			c.cmd("DATA", "354")
			c.cmd("Subject: junk\r\n\r\nbody\r\n.", "250")
			for _, cmd := range junk {
				c.cmd(cmd, "25")
			}
			c.cmd("NOOP", "421 4.7.0")
			c.closed("after 421")
		})
	}
}
