package main

import (
	"strings"
	"testing"
)

// sendOne delivers msg from sender to rcpt and returns the reply after the
// final dot.
func (e *testEnv) sendOne(t testing.TB, sender, rcpt, msg string) string {
	t.Helper()
	c := dialRaw(t, "unix", e.unix)
	c.send("LHLO c", "MAIL FROM:<"+sender+">", "RCPT TO:<"+rcpt+">", "DATA")
	c.expect("250 ")
	c.expect("250 ")
	c.expect("250 ")
	c.expect("354 ")
	c.send(msg, ".")
	r := c.reply()
	c.send("QUIT")
	return r
}

func TestSieveFileinto(t *testing.T) {
	e := startServer(t, nil)
	e.writeSieve(t, "demo@example.test", `require ["fileinto", "mailbox", "imap4flags", "envelope", "body"];
if header :contains "subject" "invoice" { fileinto :create "Bills"; stop; }
if envelope :is "from" "boss@remote.test" { addflag "\\Flagged"; keep; stop; }
if body :contains "unsubscribe" { fileinto "INBOX.Newsletters"; stop; }
if header :contains "subject" "trash" { discard; stop; }
if header :contains "subject" "nofolder" { fileinto "DoesNotExist"; stop; }
`)
	for _, m := range []struct{ from, subject, body string }{
		{"a@remote.test", "Your invoice", "pay"},
		{"boss@remote.test", "urgent", "now"},
		{"news@remote.test", "weekly", "click to unsubscribe"},
		{"x@remote.test", "trash me", "x"},
		{"y@remote.test", "nofolder", "y"},
		{"z@remote.test", "plain", "z"},
	} {
		r := e.sendOne(t, m.from, "demo@example.test", "Subject: "+m.subject+"\r\n\r\n"+m.body)
		if !strings.HasPrefix(r, "250 ") {
			t.Errorf("%s: reply %q", m.subject, r)
		}
	}
	if got := e.messages(t, "demo@example.test", "Bills"); len(got) != 1 || !strings.Contains(got[0], "invoice") {
		t.Errorf("Bills = %q", got)
	}
	// Newsletters did not exist and had no :create: the message is kept.
	inbox := e.messages(t, "demo@example.test", "INBOX")
	if len(inbox) != 4 {
		t.Errorf("INBOX has %d messages, want 4 (boss, newsletter, nofolder, plain): %q", len(inbox), inbox)
	}
	// The flagged keep lands in cur/ with the F flag.
	flagged := false
	for _, name := range listNames(t, e.maildirRoot("demo@example.test")+"/cur") {
		if strings.HasSuffix(name, ":2,F") {
			flagged = true
		}
	}
	if !flagged {
		t.Error("no message with the Flagged flag in cur/")
	}
	for _, m := range inbox {
		if strings.Contains(m, "trash me") {
			t.Error("discarded message was delivered")
		}
	}
}

func TestSieveReject(t *testing.T) {
	e := startServer(t, nil)
	e.writeSieve(t, "alice@example.test", `require "reject";
if header :contains "subject" "spam" { reject "No thanks.
Really."; }
`)
	c := dialRaw(t, "unix", e.unix)
	c.send("LHLO c", "MAIL FROM:<s@remote.test>", "RCPT TO:<alice@example.test>", "RCPT TO:<demo@example.test>", "DATA")
	for range 4 {
		c.expect("250 ")
	}
	c.expect("354 ")
	c.send("Subject: buy spam", "", "x", ".")
	c.expect("550 5.7.1 <alice@example.test> No thanks. Really.")
	c.expect("250 2.0.0 <demo@example.test>")
	if got := e.messages(t, "alice@example.test", "INBOX"); len(got) != 0 {
		t.Errorf("alice got the rejected message")
	}
	if got := e.messages(t, "demo@example.test", "INBOX"); len(got) != 1 {
		t.Errorf("demo INBOX = %d messages, want 1", len(got))
	}
	// reject without require is a broken script: the mail is kept.
	e.writeSieve(t, "alice@example.test", `reject "no";`)
	if r := e.sendOne(t, "s@remote.test", "alice@example.test", "Subject: x\r\n\r\nx"); !strings.HasPrefix(r, "250 ") {
		t.Errorf("reply %q, want 250 (broken script keeps)", r)
	}
}

func TestSieveBrokenScript(t *testing.T) {
	e := startServer(t, nil)
	e.writeSieve(t, "demo@example.test", `require "fileinto"; if header :contains "subject" { fileinto "X" `)
	// A message marked as spam still goes to INBOX: a broken script
	// means INBOX, nothing cleverer.
	r := e.sendOne(t, "s@remote.test", "demo@example.test", "X-Spam: yes\r\nSubject: x\r\n\r\nbody")
	if !strings.HasPrefix(r, "250 ") {
		t.Fatalf("reply %q", r)
	}
	if got := e.messages(t, "demo@example.test", "INBOX"); len(got) != 1 {
		t.Errorf("INBOX = %d messages, want 1", len(got))
	}
	// An unknown extension is broken too.
	e.writeSieve(t, "demo@example.test", `require "vnd.unknown"; discard;`)
	e.sendOne(t, "s@remote.test", "demo@example.test", "Subject: y\r\n\r\nbody")
	if got := e.messages(t, "demo@example.test", "INBOX"); len(got) != 2 {
		t.Errorf("INBOX = %d messages, want 2", len(got))
	}
}

func TestSieveSpamOverride(t *testing.T) {
	e := startServer(t, nil)
	e.writeSieve(t, "demo@example.test", `if header :contains "from" "friend" { keep; }`)
	e.sendOne(t, "s@remote.test", "demo@example.test", "X-Spam: yes\r\nFrom: friend@remote.test\r\n\r\nx")
	e.sendOne(t, "s@remote.test", "demo@example.test", "X-Spam: yes\r\nFrom: other@remote.test\r\n\r\nx")
	if got := e.messages(t, "demo@example.test", "INBOX"); len(got) != 1 || !strings.Contains(got[0], "friend") {
		t.Errorf("INBOX = %q, want the friend's message (explicit keep)", got)
	}
	if got := e.messages(t, "demo@example.test", "Junk"); len(got) != 1 || !strings.Contains(got[0], "other") {
		t.Errorf("Junk = %q, want the other spam (implicit keep)", got)
	}
}

func TestSieveVacation(t *testing.T) {
	e := startServer(t, nil)
	e.writeSieve(t, "demo@example.test", `require "vacation";
vacation :days 1 :subject "Away" "I am away until Monday.";
`)
	msg := "From: alice@example.test\r\nTo: demo@example.test\r\nSubject: hi\r\nMessage-ID: <q1@example.test>\r\n\r\nhello"
	for range 2 {
		if r := e.sendOne(t, "alice@example.test", "demo@example.test", msg); !strings.HasPrefix(r, "250 ") {
			t.Fatalf("reply %q", r)
		}
	}
	replies := e.messages(t, "alice@example.test", "INBOX")
	if len(replies) != 1 {
		t.Fatalf("alice got %d vacation replies, want exactly 1", len(replies))
	}
	for _, want := range []string{"Return-Path: <>", "Subject: Away", "Auto-Submitted: auto-replied", "In-Reply-To: <q1@example.test>", "I am away until Monday."} {
		if !strings.Contains(replies[0], want) {
			t.Errorf("reply lacks %q:\n%s", want, replies[0])
		}
	}
	if got := e.messages(t, "demo@example.test", "INBOX"); len(got) != 2 {
		t.Errorf("demo INBOX = %d, want 2 (vacation keeps)", len(got))
	}
	// No replies to the null sender, to lists, or when not addressed.
	e.sendOne(t, "", "demo@example.test", "From: bob@example.test\r\nTo: demo@example.test\r\n\r\nbounce")
	e.sendOne(t, "bob@example.test", "demo@example.test", "From: bob@example.test\r\nTo: demo@example.test\r\nList-Id: <l.example.test>\r\n\r\nlist")
	e.sendOne(t, "bob@example.test", "demo@example.test", "From: bob@example.test\r\nTo: someone@example.test\r\n\r\nbcc")
	e.sendOne(t, "bob@example.test", "demo@example.test", "From: bob@example.test\r\nTo: demo@example.test\r\nAuto-Submitted: auto-generated\r\n\r\nauto")
	if got := e.messages(t, "bob@example.test", "INBOX"); len(got) != 0 {
		t.Errorf("bob got %d vacation replies, want none", len(got))
	}
	// A remote sender cannot be answered yet; the mail is still delivered.
	e.sendOne(t, "x@remote.test", "demo@example.test", "From: x@remote.test\r\nTo: demo@example.test\r\n\r\nremote")
	if got := e.messages(t, "demo@example.test", "INBOX"); len(got) != 7 {
		t.Errorf("demo INBOX = %d, want 7", len(got))
	}
}

func TestSieveRedirect(t *testing.T) {
	e := startServer(t, nil)
	e.writeSieve(t, "demo@example.test", `require "copy";
if header :contains "subject" "fwd" { redirect "alice@example.test"; }
if header :contains "subject" "copy" { redirect :copy "bob@example.test"; }
if header :contains "subject" "far" { redirect "x@remote.test"; }
`)
	e.sendOne(t, "s@remote.test", "demo@example.test", "Subject: fwd\r\n\r\n1")
	e.sendOne(t, "s@remote.test", "demo@example.test", "Subject: copy\r\n\r\n2")
	e.sendOne(t, "s@remote.test", "demo@example.test", "Subject: far\r\n\r\n3")
	if got := e.messages(t, "alice@example.test", "INBOX"); len(got) != 1 || !strings.Contains(got[0], "Return-Path: <s@remote.test>") {
		t.Errorf("alice = %q, want the redirected message with its sender", got)
	}
	if got := e.messages(t, "bob@example.test", "INBOX"); len(got) != 1 {
		t.Errorf("bob = %d messages, want the :copy", len(got))
	}
	// demo keeps the :copy one and the one that could not be redirected.
	if got := e.messages(t, "demo@example.test", "INBOX"); len(got) != 2 {
		t.Errorf("demo = %q, want 2", got)
	}
}

func FuzzLoadScript(f *testing.F) {
	for _, s := range []string{
		`require "reject"; reject "x";`,
		`require ["fileinto","reject"]; if true { reject "a"; } else { fileinto "b"; }`,
		`require "vacation"; vacation "away";`,
		`if header :is "a" "b" { discard; }`,
		`require`,
	} {
		f.Add([]byte(s), false)
	}
	f.Fuzz(func(t *testing.T, src []byte, noVacation bool) {
		loadScript(src, noVacation)
	})
}
