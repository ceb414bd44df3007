package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The first acceptance point: a script's message with -t reaches
// lmtpd, with CRLF line ends, its Subject, a From: naming the caller, a
// Received field naming the uid, and no Bcc.
func TestSendmailT(t *testing.T) {
	e := newEnv(t)
	r := e.sendmail("To: demo@example.test\nBcc: alice@example.test\nSubject: hi\n\nbody\n.. dot\n", "-t")
	if r.code != 0 {
		t.Fatalf("sendmail -t: exit %d: %s", r.code, r.stderr)
	}
	waitFor(t, 5*time.Second, "delivery to lmtp", func() bool { return len(e.lmtp.Messages()) == 1 })
	m := e.lmtp.Messages()[0]
	if m.From != "root@mail.example.test" || strings.Join(m.To, ",") != "demo@example.test,alice@example.test" {
		t.Errorf("envelope from %q to %q", m.From, m.To)
	}
	for _, want := range []string{"Subject: hi\r\n", "\r\n\r\nbody\r\n.. dot\r\n", "From: <root@mail.example.test>\r\n", "(tern, from userid 0 root)"} {
		if !strings.Contains(m.Data, want) {
			t.Errorf("message lacks %q:\n%s", want, m.Data)
		}
	}
	if strings.Contains(m.Data, "Bcc") || strings.Contains(m.Data, "\n\n") {
		t.Errorf("Bcc kept or bare LF:\n%q", m.Data)
	}
	if files := e.queueFiles(); len(files) != 0 {
		t.Errorf("queue not empty after local delivery: %v", files)
	}
}

// Without -i a line with a lone dot ends the input; with -i (or -oi) it
// is content. -F names the sender when the message has no From:.
func TestSendmailDotsAndFullName(t *testing.T) {
	e := newEnv(t)
	if r := e.sendmail("Subject: a\n\none\n.\nlost\n", "-F", "Jo Doe", "demo@example.test"); r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if r := e.sendmail("Subject: b\n\none\n.\nkept\n", "-oi", "demo"); r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	waitFor(t, 5*time.Second, "two deliveries", func() bool { return len(e.lmtp.Messages()) == 2 })
	msgs := e.lmtp.Messages()
	a, b := msgs[0].Data, msgs[1].Data
	if !strings.Contains(a, "Subject: a") {
		a, b = b, a
	}
	if strings.Contains(a, "lost") || !strings.Contains(a, `From: "Jo Doe" <root@mail.example.test>`) {
		t.Errorf("without -i:\n%s", a)
	}
	if !strings.Contains(b, "one\r\n..\r\nkept\r\n") && !strings.Contains(b, "one\r\n.\r\nkept\r\n") {
		t.Errorf("with -oi the dot line is content:\n%q", b)
	}
}

// Bad input is refused with a clear message and a sysexits code, before
// anything reaches the queue.
func TestSendmailBadInput(t *testing.T) {
	e := newEnv(t)
	for _, c := range []struct {
		name  string
		stdin string
		args  []string
		code  int
		want  string
	}{
		{"no recipients", "Subject: x\n\nbody\n", nil, exUsage, "no recipients"},
		{"no recipients with -t", "Subject: x\n\nbody\n", []string{"-t"}, exUsage, "no recipients"},
		{"empty message", "", []string{"demo@example.test"}, exDataErr, "empty"},
		{"binary message", "Subject: x\n\n\x00\x01\x02\xff\n", []string{"demo@example.test"}, exDataErr, "NUL"},
		{"bare CR", "Subject: x\n\na\rb\n", []string{"demo@example.test"}, exDataErr, "carriage return"},
		{"unknown flag", "Subject: x\n\nbody\n", []string{"-Z", "demo@example.test"}, exUsage, "unknown option -Z"},
		{"unknown user", "Subject: x\n\nbody\n", []string{"demo@example.test", "nobody-here@example.test"}, exNoUser, "nobody-here@example.test"},
		{"bad To header", "To: <<<\nSubject: x\n\nbody\n", []string{"-t"}, exDataErr, "To: <<<"},
		{"bad address", "Subject: x\n\nbody\n", []string{"a b@example.test"}, exUsage, "malformed address"},
		{"daemon mode", "", []string{"-bd"}, exUsage, "tern-smtpd is the daemon"},
	} {
		r := e.sendmail(c.stdin, c.args...)
		if r.code != c.code || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%s: exit %d, stderr %q; want exit %d mentioning %q", c.name, r.code, r.stderr, c.code, c.want)
		}
	}
	time.Sleep(200 * time.Millisecond)
	if n := len(e.lmtp.Messages()); n != 0 {
		t.Errorf("%d messages delivered from bad input", n)
	}
	if files := e.queueFiles(); len(files) != 0 {
		t.Errorf("bad input left queue files: %v", files)
	}
}

// Harmless options of the old sendmail and Postfix are accepted.
func TestSendmailIgnoredOptions(t *testing.T) {
	e := newEnv(t)
	r := e.sendmail("Subject: opts\n\nbody\n", "-oem", "-odi", "-oQ/var/spool", "-B8BITMIME", "-Nnever", "-Rhdrs",
		"-X", "/dev/null", "-Lfoo", "-h", "5", "-Ooption=x", "-U", "-ti", "demo@example.test")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	waitFor(t, 5*time.Second, "delivery", func() bool { return len(e.lmtp.Messages()) == 1 })
}

// When smtpd is not running, sendmail says so and exits 75, so that the
// caller keeps the message.
func TestSendmailSMTPDDown(t *testing.T) {
	e := newEnv(t)
	e.smtpd.Process.Kill()
	e.smtpd.Wait()
	r := e.sendmail("Subject: x\n\nbody\n", "demo@example.test")
	if r.code != exTempFail || !strings.Contains(r.stderr, "is it running?") || !strings.Contains(r.stderr, "not sent") {
		t.Fatalf("exit %d, stderr %q; want 75 and a clear message", r.code, r.stderr)
	}
	r = e.sendmail("EHLO x\n", "-bs")
	if r.code != exTempFail || !strings.HasPrefix(r.stdout, "421 ") {
		t.Fatalf("-bs with smtpd down: exit %d, stdout %q", r.code, r.stdout)
	}
}

// A user who is not trusted cannot set another envelope sender with -f:
// the message is refused (77) and nothing is delivered; without -f the
// sender is the user's own.
func TestSendmailForgeryAsNobody(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run sendmail as nobody")
	}
	e := newEnv(t)
	for _, from := range []string{"demo@example.test", "<>", "root@mail.example.test"} {
		r := e.run("sendmail", "Subject: forged\n\nbody\n", true, "-config", e.config, "-f", from, "demo@example.test")
		if r.code != exNoPerm || !strings.Contains(r.stderr, "Only trusted users may set the envelope sender") {
			t.Errorf("nobody -f %s: exit %d, stderr %q; want 77", from, r.code, r.stderr)
		}
	}
	r := e.run("sendmail", "Subject: own\n\nbody\n", true, "-config", e.config, "demo@example.test")
	if r.code != 0 {
		t.Fatalf("nobody without -f: exit %d: %s", r.code, r.stderr)
	}
	waitFor(t, 5*time.Second, "delivery", func() bool { return len(e.lmtp.Messages()) == 1 })
	m := e.lmtp.Messages()[0]
	if m.From != "nobody@mail.example.test" || !strings.Contains(m.Data, "Subject: own") ||
		!strings.Contains(m.Data, "from userid 65534 nobody") {
		t.Fatalf("nobody's message: from %q\n%s", m.From, m.Data)
	}
	// Root may.
	if r := e.sendmail("Subject: root\n\nbody\n", "-f", "alice@example.test", "demo@example.test"); r.code != 0 {
		t.Fatalf("root -f: exit %d: %s", r.code, r.stderr)
	}
	waitFor(t, 5*time.Second, "root's delivery", func() bool { return len(e.lmtp.Messages()) == 2 })
	if m := e.lmtp.Messages()[1]; m.From != "alice@example.test" {
		t.Fatalf("root -f alice: envelope from %q", m.From)
	}
}

// sendmail -bs speaks SMTP on standard input and output, LF line ends
// accepted.
func TestSendmailBS(t *testing.T) {
	e := newEnv(t)
	in := "EHLO client\nMAIL FROM:<root@mail.example.test>\nRCPT TO:<demo@example.test>\nDATA\nSubject: bs\n\nhello\n.\nQUIT\n"
	r := e.sendmail(in, "-bs")
	if r.code != 0 {
		t.Fatalf("-bs: exit %d: %s", r.code, r.stderr)
	}
	for _, want := range []string{"220 ", "354 ", "250 2.0.0", "221 "} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("-bs output lacks %q:\n%s", want, r.stdout)
		}
	}
	waitFor(t, 5*time.Second, "delivery", func() bool { return len(e.lmtp.Messages()) == 1 })
}

// mail(1) from bsd-mailx, calling sendmail as Postfix's.
func TestMailx(t *testing.T) {
	mailx, err := lookPath("bsd-mailx", "mailx")
	if err != nil {
		t.Skip("bsd-mailx is not installed (apt-get install bsd-mailx)")
	}
	e := newEnv(t)
	// mailx runs "sendmail" with its own arguments; a wrapper adds the
	// test's config.
	wrapper := filepath.Join(e.dir, "sendmail-wrapper")
	writeFile(t, wrapper, "#!/bin/sh\nexec "+filepath.Join(binDir, "sendmail")+" -config "+e.config+" \"$@\"\n", 0o755)
	rc := filepath.Join(e.dir, "mailrc")
	writeFile(t, rc, "set sendmail="+wrapper+"\n", 0o644)
	cmd := execCommand(mailx, "-s", "from mailx", "demo@example.test")
	cmd.Env = append(os.Environ(), "MAILRC="+rc, "HOME="+e.dir)
	cmd.Stdin = strings.NewReader("hello from mailx\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mailx: %v\n%s", err, out)
	}
	waitFor(t, 10*time.Second, "mailx's message", func() bool { return len(e.lmtp.Messages()) == 1 })
	m := e.lmtp.Messages()[0]
	if !strings.Contains(m.Data, "Subject: from mailx") || !strings.Contains(m.Data, "hello from mailx") {
		t.Fatalf("mailx message:\n%s", m.Data)
	}
}

func TestNewaliases(t *testing.T) {
	e := newEnv(t)
	r := e.run("newaliases", "", false, "-config", e.config)
	if r.code != 0 || !strings.Contains(r.stdout, "no database build") {
		t.Fatalf("newaliases: exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	writeFile(t, filepath.Join(e.dir, "aliases"), "root: demo\nbroken line without colon\n", 0o644)
	r = e.run("newaliases", "", false, "-config", e.config)
	if r.code != exDataErr || !strings.Contains(r.stderr, "aliases:2:") {
		t.Fatalf("broken aliases: exit %d: %s", r.code, r.stderr)
	}
	if r := e.sendmail("", "-bi"); r.code != exDataErr {
		t.Fatalf("sendmail -bi on a broken file: exit %d", r.code)
	}
}
