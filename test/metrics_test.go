package e2e

import (
	"io"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestMetrics scrapes the daemons' Prometheus endpoints while mail flows:
// the connection gauge follows an SMTP session, a message moves smtpd's and
// lmtpd's event counters and delivery histograms, a failed IMAP login
// counts as auth_failed, and a message queued while lmtpd is down shows in
// the queue gauges. The scrapes are also fed to promtool when installed.
func TestMetrics(t *testing.T) {
	tn := StartTern(t)

	// Only GET /metrics is served.
	resp, err := http.Get("http://" + tn.Metrics["smtpd"] + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /: %d, want 404", resp.StatusCode)
	}

	// An open SMTP session is one open connection of kind mx; the probes
	// StartTern made to see the listeners up are closed by now or soon.
	mxOpen := `tern_connections_open{daemon="smtpd",kind="mx"}`
	waitMetric(t, tn, "smtpd", mxOpen, func(v float64) bool { return v == 0 })
	c := Dial(t, tn.MX)
	if l := c.SMTPReply(); !strings.HasPrefix(l, "220") {
		t.Fatalf("greeting %q", l)
	}
	waitMetric(t, tn, "smtpd", mxOpen, func(v float64) bool { return v == 1 })
	c.Send("QUIT\r\n")
	c.SMTPReply()
	waitMetric(t, tn, "smtpd", mxOpen, func(v float64) bool { return v == 0 })
	waitMetric(t, tn, "smtpd", `tern_connections_total{daemon="smtpd",kind="mx"}`, func(v float64) bool { return v >= 1 })

	sendMail(t, tn, "metrics one")
	for _, m := range []struct{ daemon, series string }{
		{"smtpd", `tern_events_total{daemon="smtpd",event="received"}`},
		{"smtpd", `tern_events_total{daemon="smtpd",event="delivered"}`},
		{"smtpd", `tern_delivery_seconds_count{daemon="smtpd",via="lmtp"}`},
		{"lmtpd", `tern_events_total{daemon="lmtpd",event="delivered"}`},
		{"lmtpd", `tern_delivery_seconds_count{daemon="lmtpd",via="maildir"}`},
	} {
		waitMetric(t, tn, m.daemon, m.series, func(v float64) bool { return v == 1 })
	}
	// smtpd's connection to lmtpd (besides StartTern's probe), kept open
	// in smtpd's pool for the next message.
	waitMetric(t, tn, "lmtpd", `tern_connections_total{daemon="lmtpd",kind="lmtp"}`, func(v float64) bool { return v >= 2 })
	waitMetric(t, tn, "lmtpd", `tern_connections_open{daemon="lmtpd",kind="lmtp"}`, func(v float64) bool { return v >= 1 })
	waitMetric(t, tn, "smtpd", `tern_queue_messages{daemon="smtpd"}`, func(v float64) bool { return v == 0 })

	// A failed IMAP login.
	out := python(t, `
import imaplib, sys
host, port = sys.argv[1].rsplit(":", 1)
m = imaplib.IMAP4(host, int(port), timeout=30)
try:
    m.login("demo", "wrong password")
    print("logged in")
except imaplib.IMAP4.error as e:
    print("refused", e)
`, tn.IMAP)
	if !strings.HasPrefix(out, "refused") {
		t.Fatalf("imaplib: %s", out)
	}
	waitMetric(t, tn, "imapd", `tern_events_total{daemon="imapd",event="auth_failed"}`, func(v float64) bool { return v == 1 })

	// With lmtpd down, the next message waits in the queue.
	tn.Stop(t, "lmtpd")
	sendMail(t, tn, "metrics two")
	waitMetric(t, tn, "smtpd", `tern_queue_messages{daemon="smtpd"}`, func(v float64) bool { return v == 1 })
	waitMetric(t, tn, "smtpd", `tern_queue_oldest_seconds{daemon="smtpd"}`, func(v float64) bool { return v > 0 })
	waitMetric(t, tn, "smtpd", `tern_events_total{daemon="smtpd",event="deferred"}`, func(v float64) bool { return v >= 1 })
}

func sendMail(t *testing.T, tn *Tern, subject string) {
	t.Helper()
	out := python(t, `
import smtplib, sys
host, port = sys.argv[1].rsplit(":", 1)
msg = "From: alice@example.test\r\nTo: demo@example.test\r\nSubject: %s\r\n\r\nhello\r\n" % sys.argv[2]
with smtplib.SMTP(host, int(port), timeout=30) as s:
    print("refused", s.sendmail("alice@example.test", ["demo@example.test"], msg))
`, tn.MX, subject)
	if !strings.Contains(out, "refused {}") {
		t.Fatalf("smtplib: %s", out)
	}
}

// scrapeMetrics reads a daemon's /metrics.
func scrapeMetrics(t *testing.T, tn *Tern, daemon string) string {
	t.Helper()
	resp, err := http.Get("http://" + tn.Metrics[daemon] + "/metrics")
	if err != nil {
		t.Fatalf("scrape %s: %v", daemon, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: %d %v", daemon, resp.StatusCode, err)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("scrape %s: Content-Type %q", daemon, ct)
	}
	return string(body)
}

// promtoolCheck feeds a scrape to `promtool check metrics` when it is
// installed (Debian's prometheus package).
func promtoolCheck(t *testing.T, daemon, text string) {
	t.Helper()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		return
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics on %s: %v\n%s", daemon, err, out)
	}
}

// metricValue finds one series (name and labels, exactly as exposed).
func metricValue(text, series string) (float64, bool) {
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return f, err == nil
		}
	}
	return 0, false
}

// waitMetric scrapes until the series exists and ok accepts its value:
// counters move when the daemons log, a moment after the client's reply.
func waitMetric(t *testing.T, tn *Tern, daemon, series string, ok func(float64) bool) {
	t.Helper()
	var text string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		text = scrapeMetrics(t, tn, daemon)
		if v, found := metricValue(text, series); found && ok(v) {
			promtoolCheck(t, daemon, text)
			return
		}
	}
	v, found := metricValue(text, series)
	t.Fatalf("%s: %s = %v (present: %v); last scrape:\n%s", daemon, series, v, found, text)
}
