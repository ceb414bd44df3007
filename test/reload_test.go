package e2e

import (
	"errors"
	"fmt"
	"net"
	"net/smtp"
	"net/textproto"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-milter"
)

// refuseMilter is a real milter (go-milter's server side) that refuses
// every message at the end of its body.
type refuseMilter struct{ milter.NoOpMilter }

func (refuseMilter) Body(*milter.Modifier) (milter.Response, error) {
	return milter.NewResponseStr(byte(milter.ActReplyCode), "550 5.7.1 refused by the reload milter"), nil
}

// startRefuseMilter serves refuseMilter on loopback and returns its
// address in tern.toml's syntax.
func startRefuseMilter(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &milter.Server{NewMilter: func() milter.Milter { return refuseMilter{} }}
	go s.Serve(l)
	t.Cleanup(func() { l.Close() })
	return "inet:" + l.Addr().String()
}

// rewriteSMTPD writes tn's tern.toml with lines added at the top of its
// [smtpd] section and [log] level set to level, without restarting.
func rewriteSMTPD(t *testing.T, tn *Tern, orig, level string, lines ...string) {
	t.Helper()
	cfg := strings.Replace(orig, "\n[smtpd]\n", "\n[smtpd]\n"+strings.Join(lines, "\n")+"\n", 1)
	cfg = strings.Replace(cfg, "level = \"debug\"", fmt.Sprintf("level = %q", level), 1)
	if err := os.WriteFile(tn.Config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
}

// hup sends SIGHUP to daemon and waits until it has logged want one more
// time than before.
func hup(t *testing.T, tn *Tern, daemon, want string) {
	t.Helper()
	before := strings.Count(tn.Log(daemon), want)
	tn.procs[daemon].Process.Signal(syscall.SIGHUP)
	deadline := time.Now().Add(5 * time.Second)
	for strings.Count(tn.Log(daemon), want) <= before {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not log %q after SIGHUP", daemon, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// mxTry sends one message to rcpts on the MX in a new session and returns
// the EHLO's LIMITS keyword and the first refusal (nil when accepted).
func mxTry(t *testing.T, tn *Tern, rcpts ...string) (limits string, err error) {
	t.Helper()
	c, err := smtp.Dial(tn.MX)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.example.test"); err != nil {
		t.Fatal(err)
	}
	_, limits = c.Extension("LIMITS")
	if err := c.Mail("alice@remote.test"); err != nil {
		return limits, err
	}
	for _, r := range rcpts {
		if err := c.Rcpt(r); err != nil {
			return limits, err
		}
	}
	w, err := c.Data()
	if err != nil {
		return limits, err
	}
	fmt.Fprintf(w, "From: alice@remote.test\r\nTo: %s\r\nSubject: reload\r\nMessage-ID: <%d@remote.test>\r\n\r\nhello\r\n",
		rcpts[0], time.Now().UnixNano())
	if err := w.Close(); err != nil {
		return limits, err
	}
	c.Quit()
	return limits, nil
}

func wantCode(t *testing.T, err error, code int, what string) {
	t.Helper()
	var te *textproto.Error
	if !errors.As(err, &te) || te.Code != code {
		t.Fatalf("%s: got %v, want %d", what, err, code)
	}
}

// TestSIGHUPReloadsConfig: SIGHUP puts a changed limit, a new milter and
// a new log level in force for new sessions while an IMAP session opened
// before continues; a key that needs a restart (a listener) is logged and
// kept; a broken tern.toml is refused with its file and line, and the
// configuration in force keeps serving.
func TestSIGHUPReloadsConfig(t *testing.T) {
	tn := StartTern(t)
	orig, err := os.ReadFile(tn.Config)
	if err != nil {
		t.Fatal(err)
	}
	three := []string{"demo@example.test", "alice@example.test", "team@example.test"}
	if limits, err := mxTry(t, tn, three...); err != nil || !strings.Contains(limits, "RCPTMAX=100") {
		t.Fatalf("before SIGHUP: LIMITS %q, %v", limits, err)
	}
	imap := dialIMAP(t, tn)
	if _, err := imap.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}

	m := startRefuseMilter(t)
	newMX := freePort(t)
	rewriteSMTPD(t, tn, string(orig), "debug", "max_recipients = 2", fmt.Sprintf("milters = [%q]", m),
		fmt.Sprintf("mx = [%q]", newMX))
	// The [smtpd] section of the test config already has mx; a second one
	// is a duplicate key, so take the original line out.
	b, _ := os.ReadFile(tn.Config)
	cfg := strings.Replace(string(b), fmt.Sprintf("mx = [%q]\n", tn.MX), "", 1)
	os.WriteFile(tn.Config, []byte(cfg), 0o600)
	hup(t, tn, "smtpd", "configuration re-read")
	hup(t, tn, "imapd", "configuration re-read")

	limits, err := mxTry(t, tn, three...)
	if !strings.Contains(limits, "RCPTMAX=2") {
		t.Errorf("after SIGHUP: LIMITS %q, want RCPTMAX=2", limits)
	}
	wantCode(t, err, 452, "third recipient after SIGHUP")
	_, err = mxTry(t, tn, "demo@example.test")
	wantCode(t, err, 550, "message after SIGHUP added a refusing milter")
	log := tn.Log("smtpd")
	if !strings.Contains(log, "key=smtpd.mx") || !strings.Contains(log, "takes effect at restart") {
		t.Error("the changed listener is not logged as needing a restart")
	}
	if c, err := net.Dial("tcp", newMX); err == nil {
		c.Close()
		t.Error("smtpd listens on the new mx address without a restart")
	}
	if err := imap.Noop().Wait(); err != nil {
		t.Errorf("IMAP session opened before SIGHUP: %v", err)
	}

	// lmtpd and imapd: a new session gets the new limit.
	b, _ = os.ReadFile(tn.Config)
	cfg = strings.Replace(string(b), "\n[lmtpd]\n", "\n[lmtpd]\nmax_recipients = 3\n", 1)
	cfg = strings.Replace(cfg, "\n[imapd]\n", "\n[imapd]\nmax_literal_size = \"1M\"\n", 1)
	os.WriteFile(tn.Config, []byte(cfg), 0o600)
	hup(t, tn, "lmtpd", "configuration re-read")
	hup(t, tn, "imapd", "configuration re-read")
	if got := lhloLimits(t, tn); !strings.Contains(got, "RCPTMAX=3") {
		t.Errorf("lmtpd after SIGHUP: LHLO says %q, want RCPTMAX=3", got)
	}
	caps, err := dialIMAP(t, tn).Capability().Wait()
	if err != nil {
		t.Fatal(err)
	}
	if n, ok := caps.AppendLimit(); !ok || n == nil || *n != 1<<20 {
		t.Errorf("imapd after SIGHUP: APPENDLIMIT %v, want %d", n, 1<<20)
	}

	// Broken files, a bad value and an unknown key: each refused with
	// its file and line, and the configuration in force keeps serving.
	for _, bad := range []struct{ line, want string }{
		{`max_recipients = "lots"`, "smtpd.max_recipients"},
		{"no_such_key = 1", "no_such_key"},
	} {
		rewriteSMTPD(t, tn, string(orig), "debug", bad.line)
		hup(t, tn, "smtpd", "configuration refused")
		log = tn.Log("smtpd")
		refusal := log[strings.LastIndex(log, "configuration refused"):]
		refusal, _, _ = strings.Cut(refusal, "\n")
		if !strings.Contains(refusal, "tern.toml") || !(strings.Contains(refusal, "tern.toml:16:") || strings.Contains(refusal, "line 16")) || !strings.Contains(refusal, bad.want) {
			t.Errorf("refusal of %q does not name file, line and key: %s", bad.line, refusal)
		}
	}
	limits, err = mxTry(t, tn, three...)
	if !strings.Contains(limits, "RCPTMAX=2") {
		t.Errorf("after a refused SIGHUP: LIMITS %q, want RCPTMAX=2 still", limits)
	}
	wantCode(t, err, 452, "third recipient after a refused SIGHUP")
	_, err = mxTry(t, tn, "demo@example.test")
	wantCode(t, err, 550, "milter after a refused SIGHUP")

	// Back to the original file at level warn: the milter is gone, the
	// limit is back, and the new session's debug and info lines are not
	// logged (lines of the sessions before may still be).
	rewriteSMTPD(t, tn, string(orig), "warn")
	hup(t, tn, "smtpd", "configuration re-read")
	mark := len(tn.Log("smtpd"))
	if _, err := mxTry(t, tn, three...); err != nil {
		t.Errorf("after the original file is back: %v", err)
	}
	if after := tn.Log("smtpd")[mark:]; strings.Contains(after, "level=DEBUG msg=connect") ||
		strings.Contains(after, "level=DEBUG msg=session") || strings.Contains(after, `level=INFO msg="mail authentication"`) {
		t.Errorf("log level warn not in force:\n%s", after)
	}
	if err := imap.Noop().Wait(); err != nil {
		t.Errorf("IMAP session after the reloads: %v", err)
	}
}

// lhloLimits opens an LMTP session with lmtpd and returns its LIMITS line.
func lhloLimits(t *testing.T, tn *Tern) string {
	t.Helper()
	nc, err := net.Dial("unix", strings.TrimPrefix(tn.LMTP, "unix:"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	c := textproto.NewConn(nc)
	if _, _, err := c.ReadResponse(220); err != nil {
		t.Fatal(err)
	}
	if err := c.PrintfLine("LHLO client.example.test"); err != nil {
		t.Fatal(err)
	}
	_, msg, err := c.ReadResponse(250)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(msg, "\n") {
		if strings.HasPrefix(l, "LIMITS") {
			return l
		}
	}
	return ""
}
