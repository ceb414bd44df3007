package smtpserver

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestPostmasterWithoutDomain: RFC 5321 4.1.1.3 and 4.5.1: "RCPT
// TO:<Postmaster>" without a domain, in any case, must be accepted; the
// session gets "postmaster" and maps it to its primary domain. MAIL takes
// no such path.
func TestPostmasterWithoutDomain(t *testing.T) {
	_, k, addr := startServer(t, func(s *Server) { s.MaxRecipients = 10 })
	c := dial(t, addr)
	c.exchange("EHLO c.test", "250",
		"MAIL FROM:<postmaster>", "501 5.1.7",
		"MAIL FROM:<a@b.test>", "250",
		"RCPT TO:<Postmaster>", "250 2.1.5 Recipient <postmaster> OK",
		"RCPT TO:<POSTMASTER> NOTIFY=FAILURE", "250 2.1.5",
		"RCPT TO:<postmasterx>", "501 5.1.3",
		"RCPT TO:<postmaster", "501 5.1.3",
		"RCPT TO:<postmaster>x", "501 5.1.3",
		"DATA", "354")
	c.send("hi\r\n.\r\n")
	c.want("250 2.0.0")
	if len(k.messages) != 1 {
		t.Errorf("messages %q", k.messages)
	}
}

// TestQuotedLocalPartControls: RFC 5321 4.1.2: qtextSMTP and
// quoted-pairSMTP are printable ASCII (and UTF-8 with SMTPUTF8); a
// control byte inside the quotes is refused as it is outside them.
func TestQuotedLocalPartControls(t *testing.T) {
	_, _, addr := startServer(t, nil)
	c := dial(t, addr)
	c.exchange("EHLO c.test", "250",
		"MAIL FROM:<\"a\x01b\"@b.test>", "501 5.1.7",
		"MAIL FROM:<\"a\\\x1bb\"@b.test>", "501 5.1.7",
		"MAIL FROM:<\"a\tb\"@b.test>", "501 5.1.7",
		"MAIL FROM:<\"a\x7fb\"@b.test>", "501 5.1.7",
		"MAIL FROM:<\"a b\"@b.test>", "250 2.1.0",
		"RCPT TO:<\"x\x02\"@b.test>", "501 5.1.3",
		"RCPT TO:<\"x y\"@b.test>", "250 2.1.5")
}

// TestUTF8AddressNeedsSMTPUTF8: RFC 6531 3.4: a non-ASCII address is
// only allowed in a transaction that MAIL opened with SMTPUTF8; without
// it, 553 5.6.7. Invalid UTF-8 is a syntax error even with SMTPUTF8.
func TestUTF8AddressNeedsSMTPUTF8(t *testing.T) {
	_, _, addr := startServer(t, nil)
	c := dial(t, addr)
	c.exchange("EHLO c.test", "250",
		"MAIL FROM:<j\u00f6rg@b.test>", "553 5.6.7",
		"MAIL FROM:<a@b\u00e9.test>", "553 5.6.7",
		"MAIL FROM:<a@b.test>", "250",
		"RCPT TO:<\u00fc@b.test>", "553 5.6.7",
		"RSET", "250",
		"MAIL FROM:<j\u00f6rg@b.test> SMTPUTF8", "250",
		"RCPT TO:<\u00fc@b.test>", "250",
		"RCPT TO:<\xff@b.test>", "501 5.1.3",
		"RSET", "250",
		"MAIL FROM:<\xc3@b.test> SMTPUTF8", "501 5.1.7")
	// A server without SMTPUTF8 refuses the same way.
	_, _, addr = startServer(t, func(s *Server) { s.EnableSMTPUTF8 = false })
	c = dial(t, addr)
	c.exchange("EHLO c.test", "250", "MAIL FROM:<j\u00f6rg@b.test>", "553 5.6.7")
}

// TestSizeParameter: RFC 1870 6: a declared size over the limit is
// refused with 552 5.3.4, also a size too large to be a number here; a
// SIZE that is not a number is a syntax error.
func TestSizeParameter(t *testing.T) {
	_, _, addr := startServer(t, nil)
	c := dial(t, addr)
	c.exchange("EHLO c.test", "250",
		"MAIL FROM:<a@b.test> SIZE=99999999999999999999999", "552 5.3.4",
		"MAIL FROM:<a@b.test> SIZE=1001", "552 5.3.4",
		"MAIL FROM:<a@b.test> SIZE=-1", "501 5.5.4",
		"MAIL FROM:<a@b.test> SIZE=1e3", "501 5.5.4",
		// RFC 5321 4.1.1.11: a known parameter with a value it does
		// not take is a syntax error, not an unknown parameter.
		"MAIL FROM:<a@b.test> SMTPUTF8=yes", "501 5.5.4",
		"MAIL FROM:<a@b.test> SIZE=1000", "250")
}

// TestDSNParameters: RFC 3461 4-5: with DSN offered, a malformed NOTIFY,
// ORCPT, RET or ENVID gets 501 5.5.4; without DSN they are unknown
// parameters, 555 5.5.4 (RFC 5321 4.1.1.11).
func TestDSNParameters(t *testing.T) {
	_, _, addr := startServer(t, func(s *Server) { s.MaxLineLength = 1000 })
	c := dial(t, addr)
	c.exchange("EHLO c.test", "250",
		"MAIL FROM:<a@b.test> RET=ALL", "501 5.5.4",
		"MAIL FROM:<a@b.test> ENVID="+strings.Repeat("e", 101), "501 5.5.4",
		"MAIL FROM:<a@b.test> RET=FULL ENVID=abc", "250",
		"RCPT TO:<x@b.test> NOTIFY=SOMETIMES", "501 5.5.4",
		"RCPT TO:<x@b.test> NOTIFY=SUCCESS,SUCCESS", "501 5.5.4",
		"RCPT TO:<x@b.test> ORCPT=x400;abc", "501 5.5.4",
		"RCPT TO:<x@b.test> ORCPT=rfc822;", "501 5.5.4",
		// RFC 3461 4.2: an ORCPT value is at most 500 characters.
		"RCPT TO:<x@b.test> ORCPT=rfc822;"+strings.Repeat("a", 494), "501 5.5.4",
		"RCPT TO:<x@b.test> ORCPT=rfc822;x@b.test NOTIFY=never", "250")
	_, _, addr = startServer(t, func(s *Server) { s.EnableDSN = false })
	c = dial(t, addr)
	c.exchange("EHLO c.test", "250",
		"MAIL FROM:<a@b.test> RET=FULL", "555 5.5.4",
		"MAIL FROM:<a@b.test> ENVID=abc", "555 5.5.4",
		"MAIL FROM:<a@b.test>", "250",
		"RCPT TO:<x@b.test> NOTIFY=NEVER", "555 5.5.4",
		"RCPT TO:<x@b.test> ORCPT=rfc822;x@b.test", "555 5.5.4")
}

// TestLMTPBDATOneReplyBeforeLast: RFC 2033 4.2 gives one reply per
// recipient after the end of the data only; a BDAT chunk that is not the
// last, even a refused one, gets one reply (RFC 3030 2), and the next
// command is read in step.
func TestLMTPBDATOneReplyBeforeLast(t *testing.T) {
	_, k, addr := startServer(t, func(s *Server) { s.LMTP = true; s.MaxRecipients = 10 })
	c := dial(t, addr)
	c.exchange("LHLO c.test", "250", "MAIL FROM:<a@b.test>", "250",
		"RCPT TO:<x@b.test>", "250", "RCPT TO:<y@b.test>", "250")
	c.send("BDAT 3\r\nhi\n")
	c.want("554 5.6.0")
	c.exchange("NOOP", "250 2.0.0 OK")
	// Chunks the client had pipelined behind it are read and refused.
	c.send("BDAT 4 LAST\r\nabc\n")
	c.want("503 5.5.1")
	c.exchange("NOOP", "250 2.0.0 OK")
	if len(k.messages) != 0 {
		t.Errorf("messages %q", k.messages)
	}
}

// TestSlowCommandLine: a command line must arrive whole within the read
// timeout; a client that sends it a byte at a time, each just before the
// timeout, does not hold the connection for hours (slowloris).
func TestSlowCommandLine(t *testing.T) {
	_, _, addr := startServer(t, func(s *Server) { s.ReadTimeout = 600 * time.Millisecond })
	c := dial(t, addr)
	start := time.Now()
	c.send("NOOP ")
	var err error
	for i := 0; i < 15 && err == nil; i++ {
		time.Sleep(200 * time.Millisecond)
		_, err = c.c.Write([]byte("x"))
	}
	r := c.reply()
	if !strings.HasPrefix(r, "421 4.4.2") {
		t.Errorf("slow command line: %q", r)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("connection held %v by a slow command line", d)
	}
}

// TestAuthLineTooLong: RFC 4954 6: a SASL response longer than the
// server takes is "500 5.5.6 Authentication Exchange line is too long";
// the rest of the line cannot be told from commands, so the connection
// ends, on every transport the loop reads.
func TestAuthLineTooLong(t *testing.T) {
	_, _, addr := startServer(t, nil)
	c := dial(t, addr)
	c.exchange("EHLO c.test", "250", "AUTH PLAIN", "334 ")
	c.send(strings.Repeat("QUFB", 100) + "\r\n")
	c.want("500 5.5.6")
	if r := c.reply(); r != "EOF" {
		t.Errorf("after 500 5.5.6: %q", r)
	}
	// A cancelled exchange is 501 (RFC 4954 4) and the session goes on.
	c = dial(t, addr)
	c.exchange("EHLO c.test", "250", "AUTH PLAIN", "334 ", "*", "501 ", "AUTH PLAIN =", "535 5.7.8",
		"AUTH PLAIN AHUAcA==", "235 2.7.0", "AUTH PLAIN AHUAcA==", "503 5.5.1")
}

// TestPanicRecovered: a panic in a session, in a command, in DATA or in
// a BDAT transfer, ends that connection with 421 4.3.0 (RFC 5321 3.8),
// and the server goes on serving others.
func TestPanicRecovered(t *testing.T) {
	s, k, addr := startServer(t, nil)
	for _, tc := range []struct {
		name  string
		steps []string
		send  string
	}{
		{"RCPT", []string{"RCPT TO:<panic@b.test>", "421 4.3.0"}, ""},
		{"DATA", []string{"RCPT TO:<x@b.test>", "250", "DATA", "354"}, "PANIC\r\n.\r\n"},
		{"BDAT", []string{"RCPT TO:<x@b.test>", "250"}, "BDAT 7\r\nPANIC\r\nBDAT 0 LAST\r\n"},
		// One reply to the BDAT, not one per recipient: this is SMTP.
		{"BDAT two recipients", []string{"RCPT TO:<x@b.test>", "250", "RCPT TO:<y@b.test>", "250"}, "BDAT 7\r\nPANIC\r\nBDAT 0 LAST\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, addr)
			c.exchange("EHLO c.test", "250", "MAIL FROM:<a@b.test>", "250")
			c.exchange(tc.steps...)
			if tc.send != "" {
				c.send(tc.send)
				if strings.HasPrefix(tc.name, "BDAT") {
					c.want("250 ")
				}
				c.want("421 4.3.0")
			}
			if r := c.reply(); r != "EOF" {
				t.Errorf("after 421: %q", r)
			}
		})
	}
	c := dial(t, addr)
	c.exchange("EHLO c.test", "250", "QUIT", "221")
	deadline := time.Now().Add(2 * time.Second)
	for {
		s.mu.Lock()
		n := len(s.conns)
		s.mu.Unlock()
		k.mu.Lock()
		sessions, logouts := k.sessions, k.logouts
		k.mu.Unlock()
		if n == 0 && sessions == logouts {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d connections open, %d sessions, %d logouts", n, sessions, logouts)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestClientVanishes: a client that goes away in the middle of DATA, of
// a BDAT chunk, between chunks or inside AUTH leaves no connection,
// session or goroutine behind.
func TestClientVanishes(t *testing.T) {
	s, k, addr := startServer(t, nil)
	base := runtime.NumGoroutine()
	for _, tail := range []string{
		"DATA\r\nSubject: cut\r\n\r\nhalf a li",
		"BDAT 100\r\nonly part of the chunk",
		"BDAT 5\r\nabc\r\n",
		"BDAT 5\r\nabc\r\nBDAT 50",
		"AUTH PLAIN\r\n",
	} {
		for i := 0; i < 10; i++ {
			c := dial(t, addr)
			c.send("EHLO c.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<x@b.test>\r\n" + tail)
			c.want("250 ")
			c.want("250 2.1.0")
			c.want("250 2.1.5")
			c.c.Close()
		}
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		s.mu.Lock()
		n := len(s.conns)
		s.mu.Unlock()
		k.mu.Lock()
		sessions, logouts := k.sessions, k.logouts
		k.mu.Unlock()
		g := runtime.NumGoroutine()
		if n == 0 && sessions == logouts && g <= base+2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d connections open, %d sessions, %d logouts, %d goroutines (were %d)", n, sessions, logouts, g, base)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(k.messages) != 0 {
		t.Errorf("messages from vanished clients: %q", k.messages)
	}
}

// TestTimeoutEveryState: a silent client is let go after the read
// timeout wherever it stops: in a command, in DATA, in a BDAT chunk,
// inside AUTH, in the TLS handshake after STARTTLS, after STARTTLS
// before EHLO, and on implicit TLS before and after the handshake.
func TestTimeoutEveryState(t *testing.T) {
	const timeout = 300 * time.Millisecond
	s, _, addr := startServer(t, func(s *Server) { s.ReadTimeout = timeout })
	implicit := func() net.Listener {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go s.Serve(tls.NewListener(l, s.TLSConfig))
		return l
	}()
	tx := "EHLO c.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<x@b.test>\r\n"
	for _, tc := range []struct {
		name, send string
		tls        string // "", "starttls" (after the handshake), "handshake" (STARTTLS, no ClientHello), "implicit", "implicit-hello"
	}{
		{"command", "EHLO c.test\r\nNOO", ""},
		{"DATA", tx + "DATA\r\nSubject: x\r\n", ""},
		{"BDAT", tx + "BDAT 100\r\nabc", ""},
		{"between chunks", tx + "BDAT 3\r\nabc", ""},
		{"AUTH", "EHLO c.test\r\nAUTH PLAIN\r\n", ""},
		{"TLS handshake", "EHLO c.test\r\nSTARTTLS\r\n", "handshake"},
		{"after STARTTLS", "", "starttls"},
		{"DATA after STARTTLS", tx + "DATA\r\nSubject: x\r\n", "starttls"},
		{"implicit TLS, no ClientHello", "", "implicit-hello"},
		{"implicit TLS", tx + "BDAT 100\r\nabc", "implicit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := addr
			if strings.HasPrefix(tc.tls, "implicit") {
				a = implicit.Addr().String()
			}
			nc, err := net.DialTimeout("tcp", a, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			nc.SetDeadline(time.Now().Add(10 * time.Second))
			var conn net.Conn = nc
			r := bufio.NewReader(nc)
			switch tc.tls {
			case "", "handshake":
				r.ReadString('\n')
			case "starttls":
				r.ReadString('\n')
				io.WriteString(nc, "EHLO c.test\r\nSTARTTLS\r\n")
				for l, _ := r.ReadString('\n'); !strings.HasPrefix(l, "220"); l, _ = r.ReadString('\n') {
				}
				tc := tls.Client(nc, &tls.Config{InsecureSkipVerify: true})
				if err := tc.Handshake(); err != nil {
					t.Fatal(err)
				}
				conn, r = tc, bufio.NewReader(tc)
			case "implicit":
				tc := tls.Client(nc, &tls.Config{InsecureSkipVerify: true})
				if err := tc.Handshake(); err != nil {
					t.Fatal(err)
				}
				conn, r = tc, bufio.NewReader(tc)
				r.ReadString('\n')
			}
			start := time.Now()
			io.WriteString(conn, tc.send)
			// Read whatever comes until the server closes.
			_, err = io.Copy(io.Discard, r)
			if d := time.Since(start); d > 3*timeout+time.Second {
				t.Errorf("closed after %v (err %v), timeout %v", d, err, timeout)
			}
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Errorf("the server never closed the connection")
			}
		})
	}
}

// TestSlowData: message data must average MinDataRate after the first
// read timeout, so a client that sends a byte just before each timeout
// does not hold a connection for the days a large message would take at
// that pace (slowloris in DATA and BDAT). A steady client is not cut.
func TestSlowData(t *testing.T) {
	const timeout = 500 * time.Millisecond
	_, k, addr := startServer(t, func(s *Server) {
		s.ReadTimeout, s.MinDataRate, s.MaxMessageBytes = timeout, 1000, 1<<20
	})
	tx := "EHLO c.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<x@b.test>\r\n"
	for _, cmd := range []string{"DATA\r\n", "BDAT 100000 LAST\r\n"} {
		c := dial(t, addr)
		c.send(tx + cmd + "Subject: slow\r\n\r\n")
		start := time.Now()
		var err error
		for i := 0; i < 20 && err == nil; i++ {
			time.Sleep(200 * time.Millisecond)
			_, err = c.c.Write([]byte("x"))
		}
		c.c.SetReadDeadline(time.Now().Add(5 * time.Second))
		io.Copy(io.Discard, c.r)
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("%q: slow data held the connection %v", cmd, d)
		}
	}
	// 2000 bytes/s in 100-byte writes, for 2 s: over the rate, delivered.
	c := dial(t, addr)
	c.send(tx + "DATA\r\n")
	for _, w := range []string{"250 ", "250 2.1.0", "250 2.1.5", "354 "} {
		c.want(w)
	}
	for i := 0; i < 40; i++ {
		c.send(strings.Repeat("y", 98) + "\r\n")
		time.Sleep(50 * time.Millisecond)
	}
	c.send(".\r\n")
	c.want("250 2.0.0")
	if len(k.messages) != 1 {
		t.Errorf("steady message not delivered: %d", len(k.messages))
	}
}
