package e2e

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

// imapLines is a raw IMAP session: commands as written, responses as
// lines.
type imapLines struct {
	*Conn
	n int
}

func dialIMAPLines(t *testing.T, tn *Tern, useTLS bool) *imapLines {
	t.Helper()
	var c *Conn
	if useTLS {
		tc, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", tn.IMAPS, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tc.Close() })
		tc.SetDeadline(time.Now().Add(30 * time.Second))
		c = &Conn{t: t, c: tc, r: bufio.NewReader(tc)}
	} else {
		c = Dial(t, tn.IMAP)
	}
	s := &imapLines{Conn: c}
	s.Line() // greeting
	s.cmd("LOGIN demo demo")
	return s
}

// cmd sends a command and returns its untagged lines; it fails unless
// the command is answered OK.
func (s *imapLines) cmd(cmd string) []string {
	s.t.Helper()
	s.n++
	tag := fmt.Sprintf("q%d", s.n)
	s.Send(tag + " " + cmd + "\r\n")
	var out []string
	for {
		l := s.Line()
		if strings.HasPrefix(l, tag+" ") {
			if !strings.HasPrefix(l, tag+" OK") {
				s.t.Fatalf("%s: %s (after %q)", cmd, l, out)
			}
			return out
		}
		out = append(out, l)
	}
}

var (
	highestRE  = regexp.MustCompile(`^\* OK \[HIGHESTMODSEQ (\d+)\]`)
	validityRE = regexp.MustCompile(`^\* OK \[UIDVALIDITY (\d+)\]`)
)

func find(t *testing.T, lines []string, re *regexp.Regexp) string {
	t.Helper()
	for _, l := range lines {
		if m := re.FindStringSubmatch(l); m != nil {
			return m[1]
		}
	}
	t.Fatalf("no %v in %q", re, lines)
	return ""
}

// messageFile finds the file of the message with subject in a Maildir.
func messageFile(t *testing.T, root, subject string) string {
	t.Helper()
	for _, sub := range []string{"cur", "new"} {
		names, _ := filepath.Glob(filepath.Join(root, sub, "*"))
		for _, p := range names {
			data, err := os.ReadFile(p)
			if err == nil && strings.Contains(string(data), "\r\nSubject: "+subject+"\r\n") ||
				err == nil && strings.Contains(string(data), "\nSubject: "+subject+"\n") {
				return p
			}
		}
	}
	t.Fatalf("no message %q in %s", subject, root)
	return ""
}

// RFC 7162 3.2.5.2 across processes: between a client's two connections
// pop3d deletes a message (DELE, QUIT), lmtpd delivers one, a file is
// renamed by hand to change its flags and another removed by hand. The
// QRESYNC SELECT of the second connection, over TLS and over plain,
// reports exactly the flag change and the two vanished UIDs.
func TestQResyncAfterOtherProcesses(t *testing.T) {
	tn := StartTern(t)
	for i := 1; i <= 4; i++ {
		sendSMTP(t, tn, "demo@example.test", fmt.Sprintf("m%d", i))
	}
	c1 := dialIMAPLines(t, tn, false)
	c1.cmd("ENABLE QRESYNC")
	sel := c1.cmd("SELECT INBOX")
	h0, validity := find(t, sel, highestRE), find(t, sel, validityRE)
	uids := c1.cmd("UID FETCH 1:* (UID)")
	if len(uids) != 4 || !strings.Contains(uids[3], "UID 4)") {
		t.Fatalf("UIDs: %q", uids)
	}
	c1.cmd("LOGOUT")

	python(t, `
import poplib, sys
host, port = sys.argv[1].rsplit(":", 1)
p = poplib.POP3(host, int(port), timeout=30)
p.user("demo"); p.pass_("demo")
p.dele(1)
p.quit()
`, tn.POP3)
	sendSMTP(t, tn, "demo@example.test", "m5")
	root := tn.Maildir("demo")
	p3 := messageFile(t, root, "m3")
	key := filepath.Base(p3)
	if i := strings.Index(key, ":2,"); i >= 0 {
		key = key[:i]
	}
	if err := os.Rename(p3, filepath.Join(root, "cur", key+":2,F")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(messageFile(t, root, "m4")); err != nil {
		t.Fatal(err)
	}

	for _, useTLS := range []bool{true, false} {
		c2 := dialIMAPLines(t, tn, useTLS)
		c2.cmd("ENABLE QRESYNC")
		out := c2.cmd(fmt.Sprintf("SELECT INBOX (QRESYNC (%s %s 1:4))", validity, h0))
		var vanished, fetches []string
		for _, l := range out {
			switch {
			case strings.HasPrefix(l, "* VANISHED"):
				vanished = append(vanished, l)
			case strings.Contains(l, " FETCH "):
				fetches = append(fetches, regexp.MustCompile(`MODSEQ \(\d+\)`).ReplaceAllString(l, "MODSEQ (n)"))
			}
		}
		if len(vanished) != 1 || vanished[0] != "* VANISHED (EARLIER) 1,4" {
			t.Errorf("TLS %v: VANISHED %q, want [* VANISHED (EARLIER) 1,4]", useTLS, vanished)
		}
		want := []string{`* 2 FETCH (UID 3 FLAGS (\Flagged) MODSEQ (n))`}
		if fmt.Sprint(fetches) != fmt.Sprint(want) {
			t.Errorf("TLS %v: FETCH %q, want %q", useTLS, fetches, want)
		}
		if !contains(out, "* 3 EXISTS") {
			t.Errorf("TLS %v: %q lacks * 3 EXISTS", useTLS, out)
		}
		// Without known UIDs, the new message's flags come too.
		out = c2.cmd(fmt.Sprintf("EXAMINE INBOX (QRESYNC (%s %s))", validity, h0))
		var got []string
		for _, l := range out {
			if strings.HasPrefix(l, "* VANISHED") || strings.Contains(l, " FETCH ") {
				got = append(got, regexp.MustCompile(`MODSEQ \(\d+\)`).ReplaceAllString(l, "MODSEQ (n)"))
			}
		}
		sort.Strings(got)
		want = []string{`* 2 FETCH (UID 3 FLAGS (\Flagged) MODSEQ (n))`, `* 3 FETCH (UID 5 FLAGS () MODSEQ (n))`, "* VANISHED (EARLIER) 1,4"}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("TLS %v: without known UIDs %q, want %q", useTLS, got, want)
		}
		if useTLS {
			c2.cmd("LOGOUT")
		} else {
			unsolicited(t, tn, c2, root)
		}
	}
}

// unsolicited: in a session with QRESYNC enabled and INBOX (UIDs 2, 3,
// 5) selected, pop3d's DELE is reported as VANISHED and a flag change
// made by hand as FETCH with MODSEQ (RFC 7162 3.2.10, 3.1.4.1).
func unsolicited(t *testing.T, tn *Tern, c *imapLines, root string) {
	t.Helper()
	c.cmd("SELECT INBOX")
	python(t, `
import poplib, sys
host, port = sys.argv[1].rsplit(":", 1)
p = poplib.POP3(host, int(port), timeout=30)
p.user("demo"); p.pass_("demo")
p.dele(1)
p.quit()
`, tn.POP3)
	p5 := messageFile(t, root, "m5")
	key := filepath.Base(p5)
	if i := strings.Index(key, ":2,"); i >= 0 {
		key = key[:i]
	}
	if err := os.Rename(p5, filepath.Join(root, "cur", key+":2,S")); err != nil {
		t.Fatal(err)
	}
	out := c.cmd("NOOP")
	if !contains(out, "* VANISHED 2") || len(regexpLines(out, `^\* \d+ EXPUNGE`)) != 0 {
		t.Errorf("pop3d DELE seen as %q, want * VANISHED 2", out)
	}
	if f := regexpLines(out, `^\* 2 FETCH \(UID 5 FLAGS \(\\Seen\) MODSEQ \(\d+\)\)$`); len(f) != 1 {
		t.Errorf("flag change by hand seen as %q", out)
	}
	c.cmd("LOGOUT")
}

func regexpLines(lines []string, re string) []string {
	var out []string
	r := regexp.MustCompile(re)
	for _, l := range lines {
		if r.MatchString(l) {
			out = append(out, l)
		}
	}
	return out
}

func contains(lines []string, s string) bool {
	for _, l := range lines {
		if l == s {
			return true
		}
	}
	return false
}
