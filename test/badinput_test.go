package e2e

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckFlag runs every daemon's -check on the shipped configs (exit 0)
// and on a config with a misspelt key (exit 1, naming the key).
func TestCheckFlag(t *testing.T) {
	root := repoRoot(t)
	bad := filepath.Join(t.TempDir(), "bad.toml")
	writeFile(t, bad, "domains = [\"example.test\"]\n\n[imapd]\nlisen = [\"127.0.0.1:143\"]\n")
	for _, d := range []string{"smtpd", "lmtpd", "imapd", "pop3d"} {
		for _, cfg := range []string{"etc/dev.toml", "etc/tern.toml"} {
			cmd := exec.Command(filepath.Join(binDir, d), "-check", "-config", filepath.Join(root, cfg))
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("%s -check %s: %v\n%s", d, cfg, err, out)
			}
		}
		cmd := exec.Command(filepath.Join(binDir, d), "-check", "-config", bad)
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
			t.Errorf("%s -check on a misspelt key: %v, want exit 1", d, err)
		}
		if !strings.Contains(string(out), `"imapd.lisen"`) || !strings.Contains(string(out), "bad.toml:4") {
			t.Errorf("%s -check does not name the key and line: %s", d, out)
		}
		out, err = exec.Command(filepath.Join(binDir, d), "-version").CombinedOutput()
		if err != nil || !strings.HasPrefix(string(out), "tern "+d) {
			t.Errorf("%s -version: %v %q", d, err, out)
		}
	}
}

// TestBadInput sends unknown commands and over-long lines to every
// protocol: each gets its protocol's error, and the daemon keeps serving.
func TestBadInput(t *testing.T) {
	tn := StartTern(t)
	long := strings.Repeat("A", 100_000)

	smtp := Dial(t, tn.MX)
	smtp.SMTPReply()
	smtp.Send("XYZZY\r\n")
	if l := smtp.SMTPReply(); !strings.HasPrefix(l, "500 5.5.1") {
		t.Errorf("SMTP unknown command: %q", l)
	}
	smtp.Send("NOOP " + long + "\r\n")
	if l := smtp.SMTPReply(); !strings.HasPrefix(l, "500") {
		t.Errorf("SMTP long line: %q", l)
	}

	imap := Dial(t, tn.IMAP)
	imap.Line()
	imap.Send("a1 XYZZY\r\n")
	if l := imap.Line(); !strings.HasPrefix(l, "a1 BAD") {
		t.Errorf("IMAP unknown command: %q", l)
	}
	// Before login one unknown command also ends the session (BAD, then
	// BYE): a defence against cross-protocol attacks. The long line goes
	// on a fresh connection.
	imap = Dial(t, tn.IMAP)
	imap.Line()
	imap.Send("a2 NOOP " + long + "\r\n")
	if l := imap.Line(); !strings.Contains(l, "BAD") {
		t.Errorf("IMAP long line: %q", l)
	}

	pop := Dial(t, tn.POP3)
	pop.Line()
	pop.Send("XYZZY\r\n")
	if l := pop.Line(); !strings.HasPrefix(l, "-ERR") {
		t.Errorf("POP3 unknown command: %q", l)
	}
	pop.Send("NOOP " + long + "\r\n")
	if l := pop.Line(); !strings.HasPrefix(l, "-ERR") {
		t.Errorf("POP3 long line: %q", l)
	}

	// Every daemon still serves a fresh client.
	for _, a := range []string{tn.MX, tn.IMAP, tn.POP3} {
		c := Dial(t, a)
		if l := c.Line(); !strings.HasPrefix(l, "220") && !strings.HasPrefix(l, "* OK") && !strings.HasPrefix(l, "+OK") {
			t.Errorf("%s greeting after bad input: %q", a, l)
		}
	}
}
