package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Maildir as other tools read and write it: tern stores LF line ends, as
// procmail, maildrop, Postfix local(8) and Dovecot do, so that mutt,
// formail and grep read its files as their own; and it serves trees those
// tools wrote (and CRLF trees older tern wrote) byte for byte over IMAP
// and POP3, with sizes equal to the bytes served.

// wireForm is a message as IMAP and POP3 serve it: each LF not preceded by
// CR becomes CRLF (tern-maildir(5)).
func wireForm(b []byte) []byte {
	var out []byte
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			out = append(out, '\r')
		}
		out = append(out, c)
	}
	return out
}

func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s is not installed (CI installs it: .ci/run)", name)
	}
	return p
}

// TestMaildirToolsReadTernsFiles: messages delivered over SMTP and LMTP
// and APPENDed over IMAP are stored with LF, and formail, grep and mutt
// read their Subject as "x", without a CR.
func TestMaildirToolsReadTernsFiles(t *testing.T) {
	formail := needTool(t, "formail")
	tn := StartTern(t)
	msg := "From: Alice <alice@example.test>\r\nTo: demo@example.test\r\nSubject: x\r\n" +
		"Date: Sun, 22 Nov 2026 10:00:00 +0000\r\nMessage-ID: <{id}@example.test>\r\n\r\nbody of {id}\r\n"
	out := python(t, `
import imaplib, smtplib, sys
mx, lmtp, imap, msg = sys.argv[1:5]
host, port = mx.rsplit(":", 1)
with smtplib.SMTP(host, int(port), timeout=30) as s:
    print("smtp", s.sendmail("alice@example.test", ["demo@example.test"], msg.replace("{id}", "smtp").encode()))
with smtplib.LMTP(lmtp, timeout=30) as s:
    print("lmtp", s.sendmail("demo@example.test", ["alice@example.test"], msg.replace("{id}", "lmtp").encode()))
host, port = imap.rsplit(":", 1)
m = imaplib.IMAP4(host, int(port), timeout=30)
m.login("demo", "demo")
typ, data = m.append("Drafts", "(\\Draft)", None, msg.replace("{id}", "append").encode())
print("append", typ)
m.logout()
`, tn.MX, strings.TrimPrefix(tn.LMTP, "unix:"), tn.IMAP, msg)
	if !strings.Contains(out, "smtp {}") || !strings.Contains(out, "lmtp {}") || !strings.Contains(out, "append OK") {
		t.Fatalf("clients: %s", out)
	}
	files := map[string]string{}
	for via, dir := range map[string]string{
		"smtp": tn.Maildir("demo"), "lmtp": tn.Maildir("alice"), "append": filepath.Join(tn.Maildir("demo"), ".Drafts"),
	} {
		var found []string
		for _, f := range maildirFiles(t, dir) {
			b, err := os.ReadFile(filepath.Join(dir, f))
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(b, []byte("body of "+via)) {
				found = append(found, filepath.Join(dir, f))
			}
		}
		if len(found) != 1 {
			t.Fatalf("%s: %d files with the message in %s", via, len(found), dir)
		}
		files[via] = found[0]
	}
	for via, path := range files {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.IndexByte(b, '\r') >= 0 {
			t.Errorf("%s: the file has CRs: %q", via, b)
		}
		// The name records the size of what IMAP and POP3 serve.
		if w := fmt.Sprintf(",W=%d", len(wireForm(b))); !strings.Contains(filepath.Base(path), w) {
			t.Errorf("%s: %s does not record %s", via, filepath.Base(path), w)
		}
		cmd := exec.Command(formail, "-x", "Subject:")
		cmd.Stdin = bytes.NewReader(b)
		got, err := cmd.Output()
		if err != nil || string(got) != " x\n" {
			t.Errorf("%s: formail -x Subject: gives %q (%v), want \" x\\n\"", via, got, err)
		}
		got, _ = exec.Command("grep", "-c", "^Subject: x$", path).Output()
		if strings.TrimSpace(string(got)) != "1" {
			t.Errorf("%s: grep '^Subject: x$' counts %q, want 1", via, got)
		}
		if pane := muttShows(t, b); pane != "" && (!muttSubject.MatchString(pane) || strings.Contains(pane, "^M")) {
			t.Errorf("%s: mutt shows\n%s", via, pane)
		}
	}
	// The check above can fail: mutt shows a CRLF file's CRs.
	crlf := []byte(strings.ReplaceAll(msg, "{id}", "crlf"))
	if pane := muttShows(t, crlf); pane != "" && !strings.Contains(pane, "Subject: x^M") {
		t.Errorf("mutt does not show the CR of a CRLF file, so it cannot test the LF ones:\n%s", pane)
	}
}

// muttSubject is the header line mutt's pager shows for Subject "x".
var muttSubject = regexp.MustCompile(`(?m)^Subject: x\s*$`)

// muttShows displays msg with mutt (headless, in a tmux session) and
// returns the screen; "" when mutt or tmux is not installed.
func muttShows(t *testing.T, msg []byte) string {
	t.Helper()
	mutt, err1 := exec.LookPath("mutt")
	tmux, err2 := exec.LookPath("tmux")
	if err1 != nil || err2 != nil {
		t.Log("mutt or tmux not installed: mutt check skipped")
		return ""
	}
	home := t.TempDir()
	md := filepath.Join(home, "Maildir")
	for _, sub := range []string{"cur", "new", "tmp"} {
		os.MkdirAll(filepath.Join(md, sub), 0o700)
	}
	writeFile(t, filepath.Join(md, "new", "1700000000.M1P1.host"), string(msg))
	session := fmt.Sprintf("tern-mutt-%d", time.Now().UnixNano())
	shell := fmt.Sprintf("env TERM=xterm HOME=%s %s -R -n -F /dev/null -e 'set folder=%s' -e 'set weed=no' -e 'push <display-message>' -f %s; sleep 30",
		home, mutt, home, md)
	if out, err := exec.Command(tmux, "-L", session, "new-session", "-d", "-s", session, "-x", "120", "-y", "40", shell).CombinedOutput(); err != nil {
		t.Fatalf("tmux: %v %s", err, out)
	}
	defer exec.Command(tmux, "-L", session, "kill-server").Run()
	deadline := time.Now().Add(15 * time.Second)
	for {
		out, _ := exec.Command(tmux, "-L", session, "capture-pane", "-p", "-t", session).Output()
		if strings.Contains(string(out), "Subject: x") || time.Now().After(deadline) {
			return string(out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestMaildirTreesServedExactly: a tree of CRLF files as older tern wrote
// them, messages written by a real procmail and a real maildrop (LF, and
// one with mixed line ends), and files with names tern cannot keep (255
// bytes, two colons) dropped into new/: IMAP BODY[] and POP3 RETR serve
// each byte for byte in CRLF form, RFC822.SIZE, LIST and RETR's octets
// equal the bytes served, and SELECT and POP3 login work.
func TestMaildirTreesServedExactly(t *testing.T) {
	procmail := needTool(t, "procmail")
	maildrop := needTool(t, "maildrop")
	tn := StartTern(t)
	md := tn.Maildir("demo")
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(md, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	msg := func(subject, eol, body string) string {
		return strings.ReplaceAll("From: someone@example.test\nTo: demo@example.test\nSubject: "+subject+
			"\nDate: Sun, 22 Nov 2026 10:00:00 +0000\n\n"+body, "\n", eol)
	}
	// Older tern: CRLF, with ,S= and ,W= both the file's size.
	for i, m := range []string{
		msg("crlf one", "\r\n", ".starts with a dot\nend\n"),
		msg("crlf two", "\r\n", "no final line end"),
	} {
		name := fmt.Sprintf("1700000%03d.M%dP1Q1R00.oldhost,S=%d,W=%[3]d:2,S", i, i, len(m))
		writeFile(t, filepath.Join(md, "cur", name), m)
	}
	// procmail and maildrop, run for real, write into the same INBOX.
	rc := filepath.Join(tn.Dir, "procmailrc")
	writeFile(t, rc, "DEFAULT="+md+"/\nLOGFILE="+filepath.Join(tn.Dir, "procmail.log")+"\n")
	filter := filepath.Join(tn.Dir, "mailfilter")
	writeFile(t, filter, "to \""+md+"/\"\n")
	os.Chmod(filter, 0o600)
	for _, d := range []struct {
		cmd  *exec.Cmd
		text string
	}{
		{exec.Command(procmail, "-m", rc), msg("procmail lf", "\n", "line one\n..two dots\nlast\n")},
		{exec.Command(procmail, "-m", rc), msg("procmail mixed", "\n", "crlf line\r\nlf line\nbare\rcr\n")},
		{exec.Command(maildrop, filter), msg("maildrop lf", "\n", strings.Repeat("a long line ", 800)+"\n.\n")},
	} {
		d.cmd.Stdin = strings.NewReader(d.text)
		if out, err := d.cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v %s", d.cmd.Path, err, out)
		}
	}
	// Names tern cannot keep as they are.
	long := "1700000100.M1P1." + strings.Repeat("h", 255-len("1700000100.M1P1."))
	writeFile(t, filepath.Join(md, "new", long), msg("name of 255 bytes", "\n", "kept\n"))
	writeFile(t, filepath.Join(md, "new", "1700000101.M1P1.host:2,S:x"), msg("two colons", "\n", "kept too\n"))

	// What each should serve: the wire form of the file as written.
	want := map[string][]byte{}
	for _, f := range maildirFiles(t, md) {
		b, err := os.ReadFile(filepath.Join(md, f))
		if err != nil {
			t.Fatal(err)
		}
		i := bytes.Index(b, []byte("Subject: "))
		subject := string(b[i+9 : i+9+bytes.IndexAny(b[i+9:], "\r\n")])
		want[subject] = wireForm(b)
	}
	if len(want) != 7 {
		t.Fatalf("%d messages in the tree, want 7: %v", len(want), want)
	}

	out := python(t, `
import base64, imaplib, json, poplib, sys
host, port = sys.argv[1].rsplit(":", 1)
m = imaplib.IMAP4(host, int(port), timeout=30)
m.login("demo", "demo")
typ, data = m.select("INBOX")
assert typ == "OK", data
typ, data = m.fetch("1:*", "(RFC822.SIZE BODY.PEEK[])")
assert typ == "OK", data
imap = []
for item in data:
    if isinstance(item, tuple):
        size = int(item[0].split(b"RFC822.SIZE ")[1].split()[0].rstrip(b")"))
        imap.append({"size": size, "body": base64.b64encode(item[1]).decode()})
m.logout()
host, port = sys.argv[2].rsplit(":", 1)
poplib._MAXLINE = 1 << 20  # the maildrop message has a 9,600-byte line
p = poplib.POP3(host, int(port), timeout=30)
p.user("demo")
p.pass_("demo")
pop = []
for entry in p.list()[1]:
    n, octets = entry.split()
    resp, lines, got = p.retr(int(n))
    pop.append({"list": int(octets), "status": int(resp.split()[1]), "octets": got,
                "body": base64.b64encode(b"\r\n".join(lines) + b"\r\n").decode()})
p.quit()
print(json.dumps({"imap": imap, "pop": pop}))
`, tn.IMAP, tn.POP3)
	var got struct {
		IMAP []struct {
			Size int
			Body []byte
		}
		POP []struct {
			List, Status, Octets int
			Body                 []byte
		}
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("client output %q: %v", out, err)
	}
	if len(got.IMAP) != len(want) || len(got.POP) != len(want) {
		t.Fatalf("IMAP lists %d messages, POP3 %d, want %d", len(got.IMAP), len(got.POP), len(want))
	}
	subjectOf := func(b []byte) string {
		i := bytes.Index(b, []byte("Subject: "))
		if i < 0 {
			return ""
		}
		return string(b[i+9 : i+9+bytes.IndexByte(b[i+9:], '\r')])
	}
	for _, m := range got.IMAP {
		s := subjectOf(m.Body)
		w, ok := want[s]
		switch {
		case !ok:
			t.Errorf("IMAP serves an unknown message %q", m.Body)
		case !bytes.Equal(m.Body, w):
			t.Errorf("IMAP BODY[] of %q:\n%q\nwant\n%q", s, m.Body, w)
		case m.Size != len(w):
			t.Errorf("IMAP RFC822.SIZE of %q is %d, serves %d bytes", s, m.Size, len(w))
		}
	}
	for _, m := range got.POP {
		s := subjectOf(m.Body)
		w, ok := want[s]
		if !ok {
			t.Errorf("POP3 serves an unknown message %q", m.Body)
			continue
		}
		// poplib's lines lose the line end the last line lacks; a
		// message that ends without one is sent with one, as part of
		// the terminator.
		body := m.Body
		if !bytes.HasSuffix(w, []byte("\n")) {
			body = bytes.TrimSuffix(body, []byte("\r\n"))
		}
		if !bytes.Equal(body, w) {
			t.Errorf("POP3 RETR of %q:\n%q\nwant\n%q", s, body, w)
		}
		if m.List != len(w) || m.Status != len(w) {
			t.Errorf("POP3 of %q: LIST %d, RETR says %d octets, serves %d bytes", s, m.List, m.Status, len(w))
		}
		if bytes.HasSuffix(w, []byte("\n")) && m.Octets != len(w) {
			t.Errorf("POP3 of %q: poplib counted %d octets, want %d", s, m.Octets, len(w))
		}
	}
}
