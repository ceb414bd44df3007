package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

const testMessage = "From: sender@remote.test\r\nTo: demo@example.test\r\nSubject: hello\r\nMessage-ID: <m1@remote.test>\r\n\r\nHello, world.\r\n.. a dot-stuffed line\r\n"

// TestAcceptanceTransaction is the acceptance case of the LMTP issue: one
// transaction, five recipients (two valid users, one unknown, one over
// quota, one alias of two users), pipelined; exactly the right replies in
// RCPT order, and exactly the right mailboxes filled.
func TestAcceptanceTransaction(t *testing.T) {
	for _, network := range []string{"unix", "tcp"} {
		t.Run(network, func(t *testing.T) {
			e := startServer(t, nil)
			addr := e.unix
			if network == "tcp" {
				addr = e.tcp
			}
			c := dialRaw(t, network, addr)
			c.send("LHLO client.test")
			c.expect("250 ")
			// RFC 2920: the whole envelope in one write.
			c.send("MAIL FROM:<sender@remote.test>",
				"RCPT TO:<demo@example.test>",
				"RCPT TO:<Alice@Example.Test>",
				"RCPT TO:<nobody@example.test>",
				"RCPT TO:<carol@example.test>",
				"RCPT TO:<team@example.test>",
				"DATA")
			c.expect("250 ")
			c.expect("250 ")
			c.expect("250 ")
			c.expect("550 5.1.1 ")
			c.expect("250 ")
			c.expect("250 ")
			c.expect("354 ")
			c.send(strings.TrimSuffix(testMessage, "\r\n"), ".")
			// RFC 2033 4.2: one reply per accepted recipient, in order.
			c.expect("250 2.0.0 <demo@example.test>")
			c.expect("250 2.0.0 <Alice@Example.Test>")
			c.expect("552 5.2.2 <carol@example.test>")
			c.expect("250 2.0.0 <team@example.test>")
			c.send("QUIT")
			c.expect("221 ")

			stored := "Return-Path: <sender@remote.test>\r\nDelivered-To: %s\r\n" +
				strings.Replace(testMessage, "\r\n.. a", "\r\n. a", 1)
			for _, u := range []string{"demo", "alice", "bob", "dave"} {
				user := u + "@example.test"
				got := e.messages(t, user, "INBOX")
				if len(got) != 1 || got[0] != fmt.Sprintf(stored, user) {
					t.Errorf("%s INBOX = %q, want one copy %q", user, got, fmt.Sprintf(stored, user))
				}
			}
			if got := e.messages(t, "carol@example.test", "INBOX"); len(got) != 0 {
				t.Errorf("carol (over quota) got %d messages", len(got))
			}
		})
	}
}

func TestGoSMTPClient(t *testing.T) {
	e := startServer(t, nil)
	conn, err := net.Dial("tcp", e.tcp)
	if err != nil {
		t.Fatal(err)
	}
	c := smtp.NewClientLMTP(conn)
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	for _, ext := range []string{"PIPELINING", "ENHANCEDSTATUSCODES", "8BITMIME", "SMTPUTF8", "CHUNKING", "SIZE"} {
		if ok, _ := c.Extension(ext); !ok {
			t.Errorf("extension %s not offered", ext)
		}
	}
	if err := c.Mail("sender@remote.test", &smtp.MailOptions{UTF8: true}); err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{"demo@example.test", "demo+nofolder@example.test"} {
		if err := c.Rcpt(r, nil); err != nil {
			t.Fatalf("RCPT %s: %v", r, err)
		}
	}
	err = c.Rcpt("x@remote.test", nil)
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 550 || se.EnhancedCode != (smtp.EnhancedCode{5, 1, 2}) {
		t.Errorf("RCPT to a remote domain: %v, want 550 5.1.2", err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(w, "Subject: caf\u00e9\r\n\r\n8-bit body: \u00e9t\u00e9\r\n")
	resp, err := w.CloseWithLMTPResponse()
	if err != nil {
		t.Fatalf("DATA: %v", err)
	}
	if len(resp) != 2 {
		t.Errorf("responses = %v, want 2", resp)
	}
	// The same user reached twice in one transaction gets one copy.
	if got := e.messages(t, "demo@example.test", "INBOX"); len(got) != 1 || !strings.Contains(got[0], "\u00e9t\u00e9") {
		t.Errorf("demo INBOX = %q, want one 8-bit copy", got)
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}
}

// TestChunking sends the message with BDAT (RFC 3030) over LMTP.
func TestChunking(t *testing.T) {
	e := startServer(t, nil)
	c := dialRaw(t, "unix", e.unix)
	c.send("LHLO client.test")
	c.expect("250 ")
	body := "Subject: chunks\r\n\r\nfirst "
	body2 := "second\r\n"
	c.send("MAIL FROM:<>", "RCPT TO:<alice@example.test>", "RCPT TO:<nobody@example.test>")
	c.expect("250 ")
	c.expect("250 ")
	c.expect("550 5.1.1")
	fmt.Fprintf(c.conn, "BDAT %d\r\n%s", len(body), body)
	c.expect("250 ")
	fmt.Fprintf(c.conn, "BDAT %d LAST\r\n%s", len(body2), body2)
	c.expect("250 2.0.0 <alice@example.test>")
	got := e.messages(t, "alice@example.test", "INBOX")
	want := "Return-Path: <>\r\nDelivered-To: alice@example.test\r\n" + body + body2
	if len(got) != 1 || got[0] != want {
		t.Errorf("alice INBOX = %q, want %q", got, want)
	}
}

func TestBadInput(t *testing.T) {
	e := startServer(t, func(c *configT) { c.LMTPD.MaxLineLength = 600 })
	c := dialRaw(t, "tcp", e.tcp)
	c.send("HELO client.test")
	c.expect("500 5.5.1")
	c.send("LHLO client.test")
	c.expect("250 ")
	c.send("FROB x")
	c.expect("500 5.5.1 ")
	// RFC 5321 4.1.4: DATA before MAIL and RCPT is out of sequence.
	c.send("DATA")
	c.expect("503 5.5.1")
	c.send("MAIL FROM:<a@b>", "RCPT TO:<demo@example.test>")
	c.expect("250 ")
	c.expect("250 ")
	c.send("RCPT TO:<" + strings.Repeat("x", 700) + "@example.test>")
	c.expect("500 5.5.2")
	// The server closes the connection after a too-long line.
	if _, err := c.r.ReadLine(); err == nil {
		t.Error("connection still open after a too-long line")
	}

	// A message line over the limit refuses the message, with one reply
	// per recipient and nothing more (RFC 5321 4.2.5); the data is still
	// read to its end, so the session goes on.
	c = dialRaw(t, "tcp", e.tcp)
	c.send("LHLO client.test", "MAIL FROM:<a@b>", "RCPT TO:<demo@example.test>", "DATA")
	c.expect("250 ")
	c.expect("250 ")
	c.expect("250 ")
	c.expect("354 ")
	c.send("Subject: long", "", strings.Repeat("z", 700), ".")
	c.expect("554 5.6.0 <demo@example.test>")
	c.send("NOOP")
	c.expect("250 2.0.0")
	if got := e.messages(t, "demo@example.test", "INBOX"); len(got) != 0 {
		t.Errorf("message with a too-long line was stored")
	}
}

func TestMessageTooLarge(t *testing.T) {
	e := startServer(t, func(c *configT) { c.LMTPD.MaxMessageSize = 1000 })
	c := dialRaw(t, "tcp", e.tcp)
	c.send("LHLO client.test")
	c.expect("250 ")
	c.send("MAIL FROM:<a@b> SIZE=5000")
	c.expect("552 5.3.4")
	c.send("MAIL FROM:<a@b>", "RCPT TO:<demo@example.test>", "RCPT TO:<alice@example.test>", "DATA")
	c.expect("250 ")
	c.expect("250 ")
	c.expect("250 ")
	c.expect("354 ")
	c.send("Subject: big", "", strings.Repeat("y", 2000), ".")
	c.expect("552 5.3.4 <demo@example.test>")
	c.expect("552 5.3.4 <alice@example.test>")
	if got := e.messages(t, "demo@example.test", "INBOX"); len(got) != 0 {
		t.Errorf("demo got %d messages, want none", len(got))
	}
	// The session goes on.
	c.send("NOOP")
	c.expect("250 ")
}

// TestShutdown checks that an idle session is told 421 at shutdown, and
// that a session in the middle of DATA gets its replies first.
func TestShutdown(t *testing.T) {
	e := startServer(t, nil)
	idle := dialRaw(t, "tcp", e.tcp)
	idle.send("LHLO idle.test")
	idle.expect("250 ")

	busy := dialRaw(t, "unix", e.unix)
	busy.send("LHLO busy.test", "MAIL FROM:<a@remote.test>", "RCPT TO:<demo@example.test>", "DATA")
	busy.expect("250 ")
	busy.expect("250 ")
	busy.expect("250 ")
	busy.expect("354 ")
	busy.send("Subject: in flight", "")
	time.Sleep(100 * time.Millisecond) // let LMTPData start

	done := make(chan struct{})
	start := time.Now()
	go func() { e.srv.shutdown(3 * time.Second); close(done) }()
	idle.expect("421 4.3.2")
	busy.send("body", ".")
	busy.expect("250 2.0.0 <demo@example.test>")
	busy.expect("421 4.3.2")
	<-done
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("shutdown took %v", d)
	}
	if got := e.messages(t, "demo@example.test", "INBOX"); len(got) != 1 {
		t.Errorf("demo INBOX has %d messages, want the one in flight", len(got))
	}
	if _, err := net.Dial("tcp", e.tcp); err == nil {
		t.Error("still accepting after shutdown")
	}
}

// TestPythonLMTP delivers with Python's smtplib.LMTP over the unix socket.
func TestPythonLMTP(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	e := startServer(t, nil)
	script := `
import smtplib, sys
c = smtplib.LMTP(sys.argv[1])
refused = c.sendmail("py@remote.test", ["demo@example.test", "nobody@example.test", "team@example.test"],
    b"Subject: from python\r\n\r\nbody\r\n")
print(sorted(refused.items()))
c.quit()
`
	out, err := exec.Command(py, "-c", script, e.unix).CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "nobody@example.test") || !strings.Contains(string(out), "550") {
		t.Errorf("python refused = %s, want nobody@example.test with 550", out)
	}
	for _, u := range []string{"demo", "bob", "dave"} {
		if got := e.messages(t, u+"@example.test", "INBOX"); len(got) != 1 || !strings.Contains(got[0], "from python") {
			t.Errorf("%s INBOX = %q", u, got)
		}
	}
}

func TestPlusTagAndSpam(t *testing.T) {
	e := startServer(t, nil)
	if err := os.MkdirAll(filepath.Join(e.maildirRoot("demo@example.test"), ".Lists", "new"), 0o755); err != nil {
		t.Fatal(err)
	}
	deliver := func(rcpt, msg string) {
		t.Helper()
		c := dialRaw(t, "unix", e.unix)
		c.send("LHLO c", "MAIL FROM:<s@remote.test>", "RCPT TO:<"+rcpt+">", "DATA")
		c.expect("250 ")
		c.expect("250 ")
		c.expect("250 ")
		c.expect("354 ")
		c.send(msg, ".")
		c.expect("250 2.0.0")
	}
	// Folders are matched without regard to case.
	deliver("demo+lists@example.test", "Subject: list mail\r\n\r\nx")
	deliver("demo+missing@example.test", "Subject: no such folder\r\n\r\nx")
	deliver("demo@example.test", "X-Spam: YES \r\nSubject: spam\r\n\r\nx")
	deliver("demo+lists@example.test", "X-Spam: no\r\nSubject: not spam\r\n\r\nx")
	if got := e.messages(t, "demo@example.test", "Lists"); len(got) != 2 {
		t.Errorf("Lists = %q, want 2", got)
	}
	if got := e.messages(t, "demo@example.test", "INBOX"); len(got) != 1 || !strings.Contains(got[0], "no such folder") {
		t.Errorf("INBOX = %q, want the message to the missing folder", got)
	}
	if got := e.messages(t, "demo@example.test", "Junk"); len(got) != 1 || !strings.Contains(got[0], "Subject: spam") {
		t.Errorf("Junk = %q, want the spam", got)
	}
}
