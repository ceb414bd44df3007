package e2e

import (
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The message the round trip sends: 8-bit text, a long line, a line that
// starts with a dot (dot-stuffed on the wire), and CRLF line ends as SMTP
// carries them.
const roundTripMessage = "From: Alice <alice@example.test>\r\n" +
	"To: Demo <demo@example.test>\r\n" +
	"Subject: round trip\r\n" +
	"Message-ID: <rt-1@example.test>\r\n" +
	"Date: Sun, 22 Nov 2026 10:00:00 +0000\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"Content-Transfer-Encoding: 8bit\r\n" +
	"\r\n" +
	"Grüße aus dem Test.\r\n" +
	".a line that starts with a dot\r\n" +
	"..and one with two\r\n" +
	"\r\n" +
	"-- \r\n" +
	"the end\r\n"

// TestRoundTrip sends a message with Python's smtplib to the MX port and
// reads it back, byte for byte, with imaplib and poplib.
func TestRoundTrip(t *testing.T) {
	tn := StartTern(t)
	msg64 := base64.StdEncoding.EncodeToString([]byte(roundTripMessage))
	out := python(t, `
import base64, smtplib, sys
host, port = sys.argv[1].rsplit(":", 1)
msg = base64.b64decode(sys.argv[2])
with smtplib.SMTP(host, int(port), timeout=30) as s:
    s.ehlo("client.example.test")
    refused = s.sendmail("alice@example.test", ["demo@example.test"], msg)
    print("refused", refused)
`, tn.MX, msg64)
	if !strings.Contains(out, "refused {}") {
		t.Fatalf("smtplib: %s", out)
	}

	// The files in the Maildir are what the clients must return.
	imapOut := python(t, `
import imaplib, sys, base64
host, port = sys.argv[1].rsplit(":", 1)
m = imaplib.IMAP4(host, int(port), timeout=30)
m.login("demo", "demo")
typ, data = m.select("INBOX")
assert typ == "OK", data
n = int(data[0])
typ, data = m.fetch(str(n), "(BODY.PEEK[] RFC822.SIZE)")
assert typ == "OK", data
body = data[0][1]
print(n, base64.b64encode(body).decode())
typ, data = m.store(str(n), "+FLAGS", "(\\Flagged)")
assert typ == "OK", data
m.logout()
`, tn.IMAP)
	var count int
	var imapB64 string
	if _, err := fmt.Sscan(imapOut, &count, &imapB64); err != nil || count != 1 {
		t.Fatalf("imaplib output %q: %v", imapOut, err)
	}
	imapMsg, _ := base64.StdEncoding.DecodeString(imapB64)
	checkDelivered(t, "IMAP", string(imapMsg))

	popOut := python(t, `
import poplib, sys, base64
host, port = sys.argv[1].rsplit(":", 1)
p = poplib.POP3(host, int(port), timeout=30)
p.user("demo")
p.pass_("demo")
count, size = p.stat()
resp, lines, octets = p.retr(count)
uidl = p.uidl(count)
p.quit()
print(count, base64.b64encode(b"\r\n".join(lines) + b"\r\n").decode())
`, tn.POP3)
	var popB64 string
	if _, err := fmt.Sscan(popOut, &count, &popB64); err != nil || count != 1 {
		t.Fatalf("poplib output %q: %v", popOut, err)
	}
	popMsg, _ := base64.StdEncoding.DecodeString(popB64)
	checkDelivered(t, "POP3", string(popMsg))
	if string(popMsg) != string(imapMsg) {
		t.Errorf("IMAP and POP3 returned different bytes:\nIMAP %q\nPOP3 %q", imapMsg, popMsg)
	}

	// The message sits in the Maildir as one ordinary file any Maildir tool
	// can read, and nothing is left behind in tmp/.
	files := maildirFiles(t, tn.Maildir("demo"))
	if len(files) != 1 {
		t.Fatalf("Maildir holds %v, want one message", files)
	}
	if tmp, _ := os.ReadDir(filepath.Join(tn.Maildir("demo"), "tmp")); len(tmp) != 0 {
		t.Errorf("tmp/ not empty: %v", tmp)
	}
}

// checkDelivered checks that what a client read is the message sent, after
// the trace headers the server adds in front of it.
func checkDelivered(t *testing.T, via, got string) {
	t.Helper()
	if !strings.HasSuffix(got, roundTripMessage) {
		t.Fatalf("%s returned a different message:\n%q\nwant it to end with\n%q", via, got, roundTripMessage)
	}
	trace := strings.TrimSuffix(got, roundTripMessage)
	for _, h := range []string{"Return-Path: <alice@example.test>\r\n", "Delivered-To: demo@example.test\r\n", "Received: from "} {
		if !strings.Contains(trace, h) {
			t.Errorf("%s: trace headers lack %q:\n%s", via, h, trace)
		}
	}
}

// maildirFiles lists the message files of a Maildir folder (new/ and cur/).
func maildirFiles(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	for _, sub := range []string{"new", "cur"} {
		es, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		for _, e := range es {
			files = append(files, filepath.Join(sub, e.Name()))
		}
	}
	return files
}

// TestSMTPRefusals checks the walking skeleton's RCPT rules on the MX port:
// unknown local users and relaying are refused with the right codes.
func TestSMTPRefusals(t *testing.T) {
	tn := StartTern(t)
	c := Dial(t, tn.MX)
	if l := c.SMTPReply(); !strings.HasPrefix(l, "220 ") {
		t.Fatalf("greeting %q", l)
	}
	steps := []struct{ send, want string }{
		{"EHLO client.example.test\r\n", "250 "},
		{"MAIL FROM:<someone@remote.test>\r\n", "250 "},
		{"RCPT TO:<nobody@example.test>\r\n", "550 5.1.1"},
		{"RCPT TO:<victim@elsewhere.test>\r\n", "554 5.7.1"},
		{"RCPT TO:<demo@example.test>\r\n", "250 "},
		{"RSET\r\n", "250 "},
		{"NOOP\r\n", "250 "},
		{"FROB\r\n", "500 5.5.1"},
		{"QUIT\r\n", "221 "},
	}
	for _, s := range steps {
		c.Send(s.send)
		if l := c.SMTPReply(); !strings.HasPrefix(l, s.want) {
			t.Errorf("%q: got %q, want %q", strings.TrimSpace(s.send), l, s.want)
		}
	}
}

// TestSIGTERM checks that every daemon stops within 5 s of SIGTERM, and that
// smtpd answers a session in the middle of a transaction with 421.
func TestSIGTERM(t *testing.T) {
	tn := StartTern(t)
	c := Dial(t, tn.MX)
	c.SMTPReply()
	c.Send("EHLO client.example.test\r\nMAIL FROM:<a@remote.test>\r\n")
	c.SMTPReply()
	c.SMTPReply()

	imap := Dial(t, tn.IMAP)
	imap.Line()
	pop := Dial(t, tn.POP3)
	pop.Line()

	if d := tn.Stop(t, "smtpd"); d > 5*time.Second {
		t.Errorf("smtpd took %v to stop", d)
	}
	if l := c.SMTPReply(); !strings.HasPrefix(l, "421") {
		t.Errorf("in-flight SMTP session got %q, want 421", l)
	}
	for _, d := range []string{"imapd", "pop3d", "lmtpd"} {
		if took := tn.Stop(t, d); took > 5*time.Second {
			t.Errorf("%s took %v to stop", d, took)
		}
	}
	if l := imap.Line(); !strings.HasPrefix(l, "* BYE") {
		t.Errorf("IMAP session got %q at shutdown, want * BYE", l)
	}
	// After shutdown the ports are free again.
	if c, err := net.DialTimeout("tcp", tn.MX, time.Second); err == nil {
		c.Close()
		t.Error("smtpd still listening after SIGTERM")
	}
}
