package e2e

import (
	"bufio"
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestOverQuotaReply: a recipient over quota is refused by lmtpd with
// 552 5.2.2 as the reply's own enhanced status code (RFC 3463 3.3), and a
// sender reaching it through smtpd, on 25 or 465, sees the same code, not
// 5.0.0 with 5.2.2 inside the text.
func TestOverQuotaReply(t *testing.T) {
	tn := StartTern(t)
	users := filepath.Join(tn.Dir, "users")
	b, err := os.ReadFile(users)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if strings.HasPrefix(l, "alice@") {
			l += "::::::userdb_quota_rule=*:storage=10"
		}
		lines = append(lines, l)
	}
	writeFile(t, users, strings.Join(lines, "\n")+"\n")
	for _, d := range []string{"lmtpd", "smtpd"} {
		tn.procs[d].Process.Signal(syscall.SIGHUP)
	}
	time.Sleep(500 * time.Millisecond)
	msg := "Subject: too big for alice\r\n\r\n" + strings.Repeat("x", 100) + "\r\n.\r\n"

	t.Run("lmtpd", func(t *testing.T) {
		nc, err := net.DialTimeout("unix", strings.TrimPrefix(tn.LMTP, "unix:"), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c := &Conn{t: t, c: nc, r: bufio.NewReader(nc)}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(30 * time.Second))
		c.SMTPReply()
		c.Send("LHLO quota.test\r\nMAIL FROM:<a@remote.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n")
		for _, want := range []string{"250 ", "250 ", "250 ", "354 "} {
			if r := c.SMTPReply(); !strings.HasPrefix(r, want) {
				t.Fatalf("got %q, want %q", r, want)
			}
		}
		c.Send(msg)
		if r := c.SMTPReply(); !strings.HasPrefix(r, "552 5.2.2 <alice@example.test>") {
			t.Errorf("over quota: %q", r)
		}
	})
	for _, tr := range []struct {
		name, addr string
		tls        bool
	}{{"25", tn.MX, false}, {"465", tn.Submissions, true}} {
		t.Run(tr.name, func(t *testing.T) {
			c := Dial(t, tr.addr)
			if tr.tls {
				tc := tls.Client(c.c, &tls.Config{InsecureSkipVerify: true})
				c = &Conn{t: t, c: tc, r: bufio.NewReader(tc)}
			}
			c.SMTPReply()
			c.Send("EHLO quota.test\r\n")
			c.SMTPReply()
			from := "a@remote.test"
			if tr.tls {
				// AUTH PLAIN demo@example.test / demo.
				c.Send("AUTH PLAIN AGRlbW9AZXhhbXBsZS50ZXN0AGRlbW8=\r\n")
				if r := c.SMTPReply(); !strings.HasPrefix(r, "235") {
					t.Fatalf("AUTH: %q", r)
				}
				from = "demo@example.test"
			}
			c.Send("MAIL FROM:<" + from + ">\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n")
			for _, want := range []string{"250 ", "250 ", "354 "} {
				if r := c.SMTPReply(); !strings.HasPrefix(r, want) {
					t.Fatalf("got %q, want %q", r, want)
				}
			}
			c.Send(msg)
			r := c.SMTPReply()
			if !strings.HasPrefix(r, "552 5.2.2 ") || strings.Contains(r[len("552 5.2.2 "):], "5.2.2") {
				t.Errorf("over quota through smtpd: %q", r)
			}
		})
	}
}
