package main

import (
	"encoding/base64"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
)

// lmtpd runs the same protocol loop as smtpd (common/smtpserver), so it
// refuses the same bad input: these check it on lmtpd's own listener.

func (c *rawClient) closed() bool {
	c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := c.r.ReadLine()
	return err != nil
}

func TestStrictInput(t *testing.T) {
	e := startServer(t, nil)
	smuggled := "RSET\r\nMAIL FROM:<>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\nsmuggled\r\n.\r\n"

	t.Run("bare LF in a command", func(t *testing.T) {
		c := dialRaw(t, "tcp", e.tcp)
		c.send("LHLO client.test")
		c.expect("250 ")
		io.WriteString(c.conn, "MAIL FROM:<>\nRCPT TO:<alice@example.test>\r\n")
		c.expect("500 5.5.2")
		if !c.closed() {
			t.Error("connection open after a bare LF")
		}
	})
	t.Run("malformed BDAT size", func(t *testing.T) {
		c := dialRaw(t, "unix", e.unix)
		c.send("LHLO client.test", "MAIL FROM:<>", "RCPT TO:<demo@example.test>")
		c.expect("250 ")
		c.expect("250 ")
		c.expect("250 ")
		io.WriteString(c.conn, "BDAT 12z\r\n"+smuggled)
		c.expect("501 5.5.4")
		if !c.closed() {
			t.Error("connection open after a malformed BDAT size")
		}
	})
	t.Run("refused BDAT reads its chunk", func(t *testing.T) {
		c := dialRaw(t, "unix", e.unix)
		c.send("LHLO client.test")
		c.expect("250 ")
		fmt.Fprintf(c.conn, "BDAT %d LAST\r\n%s", len(smuggled), smuggled)
		c.expect("503 5.5.1")
		c.send("NOOP")
		c.expect("250 2.0.0")
	})
	t.Run("dot CR in data", func(t *testing.T) {
		c := dialRaw(t, "unix", e.unix)
		c.send("LHLO client.test", "MAIL FROM:<>", "RCPT TO:<demo@example.test>", "DATA")
		c.expect("250 ")
		c.expect("250 ")
		c.expect("250 ")
		c.expect("354 ")
		io.WriteString(c.conn, "Subject: x\r\n\r\nbody\r\n.\r"+smuggled)
		c.expect("554 5.6.0 <demo@example.test>")
		c.send("NOOP")
		c.expect("250 2.0.0")
	})
	t.Run("max_errors", func(t *testing.T) {
		c := dialRaw(t, "unix", e.unix)
		c.send("LHLO client.test")
		c.expect("250 ")
		for i := 0; ; i++ {
			c.send("RCPT TO:<demo@example.test>")
			r := c.reply()
			if strings.HasPrefix(r, "421 4.7.0") {
				if i != e.cfg.LMTPD.MaxErrors {
					t.Errorf("cut after %d errors, max_errors %d", i, e.cfg.LMTPD.MaxErrors)
				}
				break
			}
			if !strings.HasPrefix(r, "503 5.5.1") || i > 60 {
				t.Fatalf("RCPT before MAIL %d: %q", i, r)
			}
		}
		if !c.closed() {
			t.Error("connection open after 421")
		}
	})
	for _, m := range append(e.messages(t, "demo@example.test", "INBOX"), e.messages(t, "alice@example.test", "INBOX")...) {
		t.Errorf("message delivered: %q", m)
	}
}

// TestBinaryMIMEStoredAsText: RFC 3030 3: a BODY=BINARYMIME message's
// binary part (NUL, bare CR and LF) is stored base64-encoded, like a
// binary APPEND in imapd, so the Maildir file is text every reader takes;
// the rest of the message is kept as sent.
func TestBinaryMIMEStoredAsText(t *testing.T) {
	e := startServer(t, nil)
	raw := "\x00\x01bin\rary\nend\xff"
	msg := "Subject: bin\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" +
		"--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n" +
		"--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n" + raw + "\r\n--b--\r\n"
	c := dialRaw(t, "unix", e.unix)
	c.send("LHLO client.test", "MAIL FROM:<> BODY=BINARYMIME", "RCPT TO:<demo@example.test>")
	for range 3 {
		c.expect("250 ")
	}
	fmt.Fprintf(c.conn, "BDAT %d LAST\r\n%s", len(msg), msg)
	c.expect("250 2.0.0 <demo@example.test>")
	got := e.messages(t, "demo@example.test", "INBOX")
	if len(got) != 1 {
		t.Fatalf("%d messages stored", len(got))
	}
	m := got[0]
	if strings.Contains(m, "\x00") || strings.Contains(m, "\xff") || strings.Contains(m, "bin\rary") {
		t.Errorf("binary octets stored as they came:\n%q", m)
	}
	want := base64.StdEncoding.EncodeToString([]byte(raw))
	if !strings.Contains(m, "Content-Transfer-Encoding: base64") || !strings.Contains(m, want) {
		t.Errorf("binary part not re-encoded as base64 (%s):\n%q", want, m)
	}
	if !strings.Contains(m, "Content-Type: text/plain\r\n\r\nhello\r\n") {
		t.Errorf("text part changed:\n%q", m)
	}
}
