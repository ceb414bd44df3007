package e2e

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// captureMX is a remote MX on loopback that keeps every message it is
// given, for what smtpd's queue sends out.
type captureMX struct {
	Addr string
	mu   sync.Mutex
	msgs []capturedMsg
}

type capturedMsg struct{ from, to, data string }

type captureSession struct {
	mx   *captureMX
	from string
	to   []string
}

func (s *captureSession) Reset()        { s.from, s.to = "", nil }
func (s *captureSession) Logout() error { return nil }
func (s *captureSession) Mail(from string, _ *smtp.MailOptions) error {
	s.from = from
	return nil
}
func (s *captureSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}
func (s *captureSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.mx.mu.Lock()
	s.mx.msgs = append(s.mx.msgs, capturedMsg{s.from, strings.Join(s.to, ","), string(b)})
	s.mx.mu.Unlock()
	return nil
}

func startCaptureMX(t testing.TB) *captureMX {
	t.Helper()
	mx := &captureMX{}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &captureSession{mx: mx}, nil }))
	srv.Domain = "mx.remote.test"
	srv.AllowInsecureAuth = true
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mx.Addr = l.Addr().String()
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return mx
}

// waitFor returns the first message to rcpt, waiting up to timeout.
func (mx *captureMX) waitFor(t testing.TB, rcpt string, timeout time.Duration, explain func() string) capturedMsg {
	t.Helper()
	var got capturedMsg
	if !mtaPoll(timeout, func() bool {
		mx.mu.Lock()
		defer mx.mu.Unlock()
		for _, m := range mx.msgs {
			if m.to == rcpt {
				got = m
				return true
			}
		}
		return false
	}) {
		t.Fatalf("no message to <%s> reached the remote MX\n%s", rcpt, explain())
	}
	return got
}

// TestLMTPDSubmitsThroughSMTPD: what lmtpd sends on (a Sieve redirect to
// a remote address, a vacation reply to a remote sender) goes through
// smtpd's local submission socket (common/submit) into smtpd's queue, and
// from there to the remote MX: the flow lmtpd → smtpd of HACKING.md.
func TestLMTPDSubmitsThroughSMTPD(t *testing.T) {
	tn := StartTern(t)
	mx := startCaptureMX(t)
	mtaReconfigureSMTPD(t, tn, fmt.Sprintf(`transport = { "remote.test" = %q }`, mx.Addr))
	script := filepath.Join(tn.Dir, "vmail", "example.test", "demo", "sieve", "active.sieve")
	if err := os.MkdirAll(filepath.Dir(script), 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, script, `require "vacation";
vacation :days 1 :subject "Away" "I am away until Monday.";
redirect "carol@remote.test";
`)
	c := Dial(t, tn.MX)
	c.SMTPReply()
	for _, cmd := range []string{"EHLO client.remote.test", "MAIL FROM:<bob@remote.test>", "RCPT TO:<demo@example.test>", "DATA"} {
		c.Send(cmd + "\r\n")
		c.SMTPReply()
	}
	c.Send("From: Bob <bob@remote.test>\r\nTo: demo@example.test\r\nSubject: lunch\r\nMessage-ID: <lunch@remote.test>\r\n\r\nLunch today?\r\n.\r\n")
	if r := c.SMTPReply(); !strings.HasPrefix(r, "250") {
		t.Fatalf("DATA: %s", r)
	}
	c.Send("QUIT\r\n")
	logs := func() string { return "smtpd:\n" + tn.Log("smtpd") + "\nlmtpd:\n" + tn.Log("lmtpd") }

	fwd := mx.waitFor(t, "carol@remote.test", 20*time.Second, logs)
	if fwd.from != "bob@remote.test" {
		t.Errorf("redirect: envelope sender %q, want the original bob@remote.test (RFC 5228 4.2)", fwd.from)
	}
	if !strings.Contains(fwd.data, "Subject: lunch") {
		t.Errorf("redirect: message %q", fwd.data)
	}
	reply := mx.waitFor(t, "bob@remote.test", 20*time.Second, logs)
	if reply.from != "" {
		t.Errorf("vacation: envelope sender %q, want <> (RFC 5230 5.1)", reply.from)
	}
	if !strings.Contains(reply.data, "Subject: Away") || !strings.Contains(reply.data, "I am away until Monday.") {
		t.Errorf("vacation reply: %q", reply.data)
	}
	// Both went in through the local submission socket: smtpd's trace
	// field names the uid, and lmtpd logged the hand-over.
	for _, m := range []capturedMsg{fwd, reply} {
		if !strings.Contains(m.data, "(tern, from userid ") {
			t.Errorf("message to %s did not come through the local submission socket:\n%s", m.to, m.data)
		}
	}
	if l := tn.Log("lmtpd"); strings.Count(l, "event=relayed") < 2 {
		t.Errorf("lmtpd logged %d relayed events, want 2:\n%s", strings.Count(l, "event=relayed"), l)
	}
}
