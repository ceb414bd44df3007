package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// logField is one key=value field of a log/slog text line: a bare value,
// or a quoted one with \-escapes.
var logField = regexp.MustCompile(`([^\s="]+)=("(?:[^"\\]|\\.)*"|[^\s"]*)`)

// logKeys returns the keys of a text log line in order, and its fields.
func logKeys(line string) ([]string, map[string]string) {
	var keys []string
	vals := map[string]string{}
	for _, m := range logField.FindAllStringSubmatch(line, -1) {
		keys = append(keys, m[1])
		vals[m[1]] = strings.Trim(m[2], `"`)
	}
	return keys, vals
}

// eventLines are the lines of a daemon's log with event=ev.
func eventLines(tn *Tern, daemon, ev string) []string {
	var out []string
	for _, l := range strings.Split(tn.Log(daemon), "\n") {
		if _, v := logKeys(l); v["event"] == ev {
			out = append(out, l)
		}
	}
	return out
}

// TestMailLog drives real daemons over their sockets through each outcome
// an operator watches for, and checks that each is logged as one event
// line with exactly its fixed keys (tern(7), MAIL LOG) and counted as that
// event in the metrics: a Sieve discard is a discard, not a delivery.
func TestMailLog(t *testing.T) {
	tn := StartTern(t)
	sieve := filepath.Join(tn.Dir, "vmail", "example.test", "demo", "sieve", "active.sieve")
	if err := os.MkdirAll(filepath.Dir(sieve), 0o700); err != nil {
		t.Fatal(err)
	}
	script := `require ["reject"];
if header :contains "subject" "discard-me" { discard; stop; }
if header :contains "subject" "reject-me" { reject "not wanted"; stop; }
`
	if err := os.WriteFile(sieve, []byte(script), 0o600); err != nil {
		t.Fatal(err)
	}

	sendMail(t, tn, "kept")
	waitMetric(t, tn, "lmtpd", `tern_events_total{daemon="lmtpd",event="delivered"}`, func(v float64) bool { return v == 1 })
	sendMail(t, tn, "discard-me")
	waitMetric(t, tn, "lmtpd", `tern_events_total{daemon="lmtpd",event="discarded"}`, func(v float64) bool { return v == 1 })
	// Two recipients, one of whom rejects: smtpd accepted the message for
	// both, so demo's copy bounces (to the null sender: no DSN to follow).
	out := python(t, `
import smtplib, sys
host, port = sys.argv[1].rsplit(":", 1)
msg = "From: alice@example.test\r\nTo: demo@example.test\r\nSubject: reject-me\r\n\r\nhello\r\n"
with smtplib.SMTP(host, int(port), timeout=30) as s:
    print("refused", s.sendmail("", ["demo@example.test", "alice@example.test"], msg))
`, tn.MX)
	if !strings.Contains(out, "refused {}") {
		t.Fatalf("smtplib: %s", out)
	}
	waitMetric(t, tn, "smtpd", `tern_events_total{daemon="smtpd",event="bounced"}`, func(v float64) bool { return v == 1 })
	waitMetric(t, tn, "smtpd", `tern_events_total{daemon="smtpd",event="delivered"}`, func(v float64) bool { return v == 3 })
	// The discard is not a delivery in lmtpd's metrics.
	waitMetric(t, tn, "lmtpd", `tern_events_total{daemon="lmtpd",event="delivered"}`, func(v float64) bool { return v == 2 })

	// An unknown recipient, and failed logins on SMTP (SASL PLAIN after
	// STARTTLS), IMAP (LOGIN and AUTHENTICATE PLAIN) and POP3.
	out = python(t, `
import smtplib, imaplib, poplib, ssl, sys, base64
mx, sub, imap, pop = sys.argv[1:5]
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
def hp(a):
    h, p = a.rsplit(":", 1); return h, int(p)
with smtplib.SMTP(*hp(mx), timeout=30) as s:
    s.ehlo(); s.mail("alice@example.test"); print("rcpt", s.rcpt("nobody@example.test")[0])
with smtplib.SMTP(*hp(sub), timeout=30) as s:
    s.starttls(context=ctx)
    try:
        s.login("demo@example.test", "wrong password"); print("smtp logged in")
    except smtplib.SMTPAuthenticationError as e:
        print("smtp refused", e.smtp_code)
m = imaplib.IMAP4(*hp(imap), timeout=30)
try:
    m.login("demo@example.test", "wrong password"); print("imap logged in")
except imaplib.IMAP4.error:
    print("imap refused")
try:
    m.authenticate("PLAIN", lambda _: b"\0alice@example.test\0wrong password"); print("imap sasl logged in")
except imaplib.IMAP4.error:
    print("imap sasl refused")
p = poplib.POP3(*hp(pop), timeout=30)
p.user("demo@example.test")
try:
    p.pass_("wrong password"); print("pop logged in")
except poplib.error_proto:
    print("pop refused")
`, tn.MX, tn.Submission, tn.IMAP, tn.POP3)
	for _, want := range []string{"rcpt 550", "smtp refused 535", "imap refused", "imap sasl refused", "pop refused"} {
		if !strings.Contains(out, want) {
			t.Errorf("python: want %q in:\n%s", want, out)
		}
	}

	// With lmtpd down, the next message is deferred.
	tn.Stop(t, "lmtpd")
	sendMail(t, tn, "while lmtpd is down")
	waitMetric(t, tn, "smtpd", `tern_events_total{daemon="smtpd",event="deferred"}`, func(v float64) bool { return v >= 1 })
	waitMetric(t, tn, "imapd", `tern_events_total{daemon="imapd",event="auth_failed"}`, func(v float64) bool { return v == 2 })
	waitMetric(t, tn, "pop3d", `tern_events_total{daemon="pop3d",event="auth_failed"}`, func(v float64) bool { return v == 1 })
	// smtplib tries PLAIN, then LOGIN.
	waitMetric(t, tn, "smtpd", `tern_events_total{daemon="smtpd",event="auth_failed"}`, func(v float64) bool { return v >= 1 })
	time.Sleep(100 * time.Millisecond) // the last lines of the logs

	// Each case: the daemon, the event, how many lines, and the line's
	// keys in order: the logger's context, then the event's fixed keys.
	base := []string{"time", "level", "msg", "daemon"}
	session := append(slices.Clone(base), "conn", "ip")
	keys := func(ctx []string, fixed ...string) []string {
		return append(append(slices.Clone(ctx), "event"), fixed...)
	}
	delivery := []string{"id", "from", "to", "via", "folder"}
	lmtpUser := append(slices.Clone(session), "user")
	for _, c := range []struct {
		daemon, event string
		n             int
		keys          []string
	}{
		{"smtpd", "delivered", 3, keys(base, append(delivery, "duration")...)},
		{"lmtpd", "delivered", 2, keys(lmtpUser, append(delivery, "duration")...)},
		{"lmtpd", "discarded", 1, keys(lmtpUser, "id", "from", "to", "by")},
		{"lmtpd", "rejected", 1, keys(lmtpUser, "stage", "id", "from", "to", "code", "reason")},
		{"smtpd", "bounced", 1, keys(base, append(delivery, "reason")...)},
		{"smtpd", "deferred", -1, keys(base, append(delivery, "reason")...)},
		{"smtpd", "rejected", 1, keys(session, "stage", "id", "from", "to", "code", "reason")},
		{"smtpd", "auth_failed", -1, keys(session, "user", "reason", "failures", "ip_failures")},
		{"imapd", "auth_failed", 2, keys(session, "user", "reason", "failures", "ip_failures")},
		{"pop3d", "auth_failed", 1, keys(session, "user", "reason", "failures", "ip_failures")},
	} {
		lines := eventLines(tn, c.daemon, c.event)
		if c.n >= 0 && len(lines) != c.n || len(lines) == 0 {
			t.Errorf("%s: %d %s lines, want %d:\n%s", c.daemon, len(lines), c.event, c.n, strings.Join(lines, "\n"))
		}
		for _, l := range lines {
			got, vals := logKeys(l)
			if !slices.Equal(got, c.keys) {
				t.Errorf("%s %s: keys\n  %v\nwant\n  %v\nin %s", c.daemon, c.event, got, c.keys, l)
			}
			if c.event == "auth_failed" && (vals["user"] == "" || vals["user"] == "(sasl)") {
				t.Errorf("%s auth_failed names no user: %s", c.daemon, l)
			}
		}
	}
	// The SASL failure names the account its response named.
	if l := eventLines(tn, "imapd", "auth_failed"); len(l) == 2 && !strings.Contains(l[1], "user=alice@example.test") {
		t.Errorf("imapd SASL failure: %s", l[1])
	}
	// No line of any daemon has a key twice (two msg keys, say).
	for _, d := range []string{"smtpd", "lmtpd", "imapd", "pop3d"} {
		for _, l := range strings.Split(tn.Log(d), "\n") {
			got, _ := logKeys(l)
			seen := map[string]bool{}
			for _, k := range got {
				if seen[k] {
					t.Errorf("%s: key %s twice in %s", d, k, l)
				}
				seen[k] = true
			}
		}
	}

	// The fail2ban filter finds the client's address in every daemon's
	// auth_failed line, as the daemons wrote it.
	t.Run("fail2ban", func(t *testing.T) {
		f2b := opsTool(t, "fail2ban-regex", "fail2ban")
		var lines []string
		for _, d := range []string{"smtpd", "imapd", "pop3d"} {
			lines = append(lines, eventLines(tn, d, "auth_failed")...)
		}
		logFile := filepath.Join(t.TempDir(), "mail.log")
		if err := os.WriteFile(logFile, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		filter := filepath.Join(repoRoot(t), "packaging", "fail2ban", "tern.conf")
		out, errOut, err := opsRun(t, "", nil, f2b, "-o", "ip", logFile, filter)
		if err != nil {
			t.Fatalf("fail2ban-regex: %v\n%s%s", err, out, errOut)
		}
		if got := strings.Fields(out); len(got) != len(lines) || slices.IndexFunc(got, func(ip string) bool { return ip != "127.0.0.1" }) >= 0 {
			t.Errorf("fail2ban-regex found %v in %d lines:\n%s", got, len(lines), strings.Join(lines, "\n"))
		}
		for _, l := range lines[:min(len(lines), 3)] {
			t.Logf("%s", l)
		}
	})
}
