package main

import (
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"tern/common/queue"
)

// remoteMX is a second SMTP server on loopback standing in for another
// domain's MX, reached through the transport map.
type remoteMX struct {
	srv  *smtp.Server
	addr string

	mu      sync.Mutex
	reject  *smtp.SMTPError // answer to every RCPT when set
	msgs    []string
	notify  [][]smtp.DSNNotify
	orcpts  []string
	rets    []smtp.DSNReturn
	envids  []string
	gotTLS  []bool
	fromArg []string
	// requireTLS records the REQUIRETLS parameter of each message.
	requireTLS []bool

	// hold, when set, keeps each DATA waiting until it is closed; active
	// counts the transactions waiting, maxActive the most at once.
	hold      chan struct{}
	active    int
	maxActive int
}

func startRemoteMX(t testing.TB, addr string) *remoteMX {
	t.Helper()
	return startRemoteMXWith(t, addr, nil)
}

// startRemoteMXWith starts a remote MX after setup has changed its server
// (e.g. turned the DSN extension off).
func startRemoteMXWith(t testing.TB, addr string, setup func(*smtp.Server)) *remoteMX {
	t.Helper()
	m := &remoteMX{}
	m.srv = smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		_, tlsOn := c.TLSConnectionState()
		return &remoteSession{m: m, tls: tlsOn}, nil
	}))
	m.srv.Domain = "mx.remote.test"
	m.srv.EnableDSN = true
	m.srv.TLSConfig = serverTLS(t)
	if setup != nil {
		setup(m.srv)
	}
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	m.addr = l.Addr().String()
	go m.srv.Serve(l)
	t.Cleanup(func() { m.srv.Close() })
	return m
}

func (m *remoteMX) messages() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.msgs...)
}

type remoteSession struct {
	m     *remoteMX
	tls   bool
	opts  smtp.MailOptions
	rcpt  []smtp.DSNNotify
	orcpt string
	from  string
}

func (s *remoteSession) Reset()        {}
func (s *remoteSession) Logout() error { return nil }
func (s *remoteSession) Mail(f string, o *smtp.MailOptions) error {
	s.from, s.opts = f, *o
	return nil
}
func (s *remoteSession) Rcpt(to string, o *smtp.RcptOptions) error {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	if s.m.reject != nil {
		return s.m.reject
	}
	s.rcpt = o.Notify
	if o.OriginalRecipient != "" {
		s.orcpt = string(o.OriginalRecipientType) + ";" + o.OriginalRecipient
	}
	return nil
}
func (s *remoteSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	if hold := s.m.hold; hold != nil {
		s.m.active++
		s.m.maxActive = max(s.m.maxActive, s.m.active)
		s.m.mu.Unlock()
		<-hold
		s.m.mu.Lock()
		s.m.active--
	}
	s.m.msgs = append(s.m.msgs, string(b))
	s.m.notify = append(s.m.notify, s.rcpt)
	s.m.orcpts = append(s.m.orcpts, s.orcpt)
	s.m.rets = append(s.m.rets, s.opts.Return)
	s.m.envids = append(s.m.envids, s.opts.EnvelopeID)
	s.m.gotTLS = append(s.m.gotTLS, s.tls)
	s.m.requireTLS = append(s.m.requireTLS, s.opts.RequireTLS)
	s.m.fromArg = append(s.m.fromArg, s.from)
	return nil
}

// submit sends one message on the submission port with STARTTLS and AUTH.
func submit(t testing.TB, addr, user, pass, from string, to []string, body string, rcptOpts *smtp.RcptOptions) error {
	t.Helper()
	return submitWith(t, addr, user, pass, from, to, body, &smtp.MailOptions{EnvelopeID: "env-42"}, rcptOpts)
}

// submitWith is submit with the MAIL parameters given.
func submitWith(t testing.TB, addr, user, pass, from string, to []string, body string,
	mailOpts *smtp.MailOptions, rcptOpts *smtp.RcptOptions) error {
	t.Helper()
	opts := make([]*smtp.RcptOptions, len(to))
	for i := range opts {
		opts[i] = rcptOpts
	}
	return submitEach(t, addr, user, pass, from, to, body, mailOpts, opts)
}

// submitEach is submitWith with each recipient's own RCPT parameters.
func submitEach(t testing.TB, addr, user, pass, from string, to []string, body string,
	mailOpts *smtp.MailOptions, rcptOpts []*smtp.RcptOptions) error {
	t.Helper()
	c, err := smtp.DialStartTLS(addr, clientTLS)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", user, pass)); err != nil {
		return err
	}
	if err := c.Mail(from, mailOpts); err != nil {
		return err
	}
	for i, r := range to {
		if err := c.Rcpt(r, rcptOpts[i]); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	io.WriteString(w, body)
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func TestSubmissionToRemote(t *testing.T) {
	mx := startRemoteMX(t, "")
	cfg := newTestConfig(t, fmt.Sprintf("transport = { \"remote.test\" = %q }\n", mx.addr))
	startLMTP(t, cfg)
	e := startSMTPD(t, cfg)
	err := submit(t, e.addr(kindSubmission), "demo", "demo", "demo@example.test",
		[]string{"bob@remote.test"}, "Subject: out\r\n\r\nhello remote\r\n",
		&smtp.RcptOptions{Notify: []smtp.DSNNotify{smtp.DSNNotifyFailure}})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "delivery to the remote MX", func() bool { return len(mx.messages()) == 1 })
	m := mx.messages()[0]
	for _, want := range []string{"with ESMTPSA", "Date: ", "Message-ID: <", "Subject: out\r\n", "\r\n\r\nhello remote\r\n"} {
		if !strings.Contains(m, want) {
			t.Errorf("relayed message lacks %q:\n%s", want, m)
		}
	}
	mx.mu.Lock()
	if !mx.gotTLS[0] || mx.envids[0] != "env-42" || len(mx.notify[0]) != 1 || mx.fromArg[0] != "demo@example.test" {
		t.Errorf("tls %v envid %q notify %v from %q", mx.gotTLS[0], mx.envids[0], mx.notify[0], mx.fromArg[0])
	}
	mx.mu.Unlock()
	waitFor(t, 5*time.Second, "the queue to empty", func() bool { ids, _ := e.srv.queue.IDs(); return len(ids) == 0 })
}

func TestSubmissionPolicy(t *testing.T) {
	cfg := newTestConfig(t, "")
	startLMTP(t, cfg)
	e := startSMTPD(t, cfg)
	c := dialRaw(t, e.addr(kindSubmission))
	c.cmd("EHLO sub.test", "250")
	c.cmd("MAIL FROM:<demo@example.test>", "530 5.7.0")
	err := submit(t, e.addr(kindSubmission), "demo", "wrong", "demo@example.test", []string{"alice@example.test"}, "x\r\n", nil)
	if err == nil || !strings.Contains(err.Error(), "535") {
		t.Errorf("bad password: %v", err)
	}
	err = submit(t, e.addr(kindSubmission), "demo", "demo", "alice@example.test", []string{"alice@example.test"}, "x\r\n", nil)
	if err == nil || !strings.Contains(err.Error(), "553") {
		t.Errorf("foreign sender: %v", err)
	}
	// postmaster is an alias of demo, so demo may send as it.
	if err := submit(t, e.addr(kindSubmission), "demo@example.test", "demo", "postmaster@example.test",
		[]string{"alice@example.test"}, "Subject: s\r\n\r\nx\r\n", nil); err != nil {
		t.Errorf("alias sender: %v", err)
	}
	// Implicit TLS (RFC 8314) with AUTH LOGIN.
	tc, err := smtp.DialTLS(e.addr(kindSubmissions), clientTLS)
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	if ok, mechs := tc.Extension("AUTH"); !ok || !strings.Contains(mechs, "LOGIN") {
		t.Errorf("465 AUTH: %v %q", ok, mechs)
	}
	if err := tc.Auth(sasl.NewLoginClient("alice@example.test", "alice")); err != nil {
		t.Errorf("AUTH LOGIN on 465: %v", err)
	}
}

func TestRemoteDownThenBack(t *testing.T) {
	addr := freeAddr(t)
	cfg := newTestConfig(t, fmt.Sprintf("transport = { \"remote.test\" = %q }\n", addr))
	startLMTP(t, cfg)
	e := startSMTPD(t, cfg)
	if err := submit(t, e.addr(kindSubmission), "demo", "demo", "demo@example.test",
		[]string{"bob@remote.test"}, "Subject: later\r\n\r\nx\r\n", nil); err != nil {
		t.Fatal(err)
	}
	var env *queue.Envelope
	waitFor(t, 10*time.Second, "a deferred attempt", func() bool {
		envs, _ := e.srv.queue.List()
		if len(envs) == 1 && len(envs[0].Recipients[0].Attempts) > 0 {
			env = envs[0]
			return true
		}
		return false
	})
	if r := env.Recipients[0]; r.State != queue.Pending || !strings.Contains(r.Attempts[0].Reply, "connect") {
		t.Fatalf("after a failed attempt: %+v", r)
	}
	mx := startRemoteMX(t, addr)
	if err := e.srv.queue.Flush(""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "delivery on retry", func() bool { return len(mx.messages()) == 1 })
	waitFor(t, 5*time.Second, "the queue to empty", func() bool { ids, _ := e.srv.queue.IDs(); return len(ids) == 0 })
}

func TestRemote550Bounces(t *testing.T) {
	mx := startRemoteMX(t, "")
	mx.reject = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
	cfg := newTestConfig(t, fmt.Sprintf("transport = { \"remote.test\" = %q }\n", mx.addr))
	sink := startLMTP(t, cfg)
	e := startSMTPD(t, cfg)
	if err := submit(t, e.addr(kindSubmission), "demo", "demo", "demo@example.test",
		[]string{"nobody@remote.test"}, "Subject: doomed\r\n\r\nx\r\n", nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the DSN", func() bool { return len(sink.messages("demo@example.test")) == 1 })
	time.Sleep(1500 * time.Millisecond) // one more runner pass: still one DSN
	dsns := sink.messages("demo@example.test")
	if len(dsns) != 1 {
		t.Fatalf("want one DSN, got %d", len(dsns))
	}
	for _, want := range []string{"multipart/report; report-type=delivery-status", "Final-Recipient: rfc822; nobody@remote.test",
		"Action: failed", "Status: 5.1.1", "Diagnostic-Code: smtp; 550 5.1.1 no such user", "Original-Envelope-Id: env-42",
		"Subject: doomed"} {
		if !strings.Contains(dsns[0], want) {
			t.Errorf("DSN lacks %q:\n%s", want, dsns[0])
		}
	}
	waitFor(t, 5*time.Second, "the queue to empty", func() bool { ids, _ := e.srv.queue.IDs(); return len(ids) == 0 })
}

func TestLMTPDownThenBack(t *testing.T) {
	cfg := newTestConfig(t, "")
	e := startSMTPD(t, cfg)
	c := dialRaw(t, e.addr(kindMX))
	c.cmd("EHLO client.test", "250")
	c.cmd("MAIL FROM:<x@remote.test>", "250")
	c.cmd("RCPT TO:<demo@example.test>", "250")
	c.cmd("DATA", "354")
	c.send("Subject: wait\r\n\r\nx\r\n.\r\n")
	c.expect("250 2.0.0 OK: queued as")
	ids, _ := e.srv.queue.IDs()
	if len(ids) != 1 {
		t.Fatalf("want the message queued, queue has %d", len(ids))
	}
	sink := startLMTP(t, cfg)
	waitFor(t, 10*time.Second, "delivery once lmtpd is back", func() bool { return len(sink.messages("demo@example.test")) == 1 })
	waitFor(t, 5*time.Second, "the queue to empty", func() bool { ids, _ := e.srv.queue.IDs(); return len(ids) == 0 })
}

func TestLoopRefused(t *testing.T) {
	cfg := newTestConfig(t, "")
	sink := startLMTP(t, cfg)
	e := startSMTPD(t, cfg)
	c := dialRaw(t, e.addr(kindMX))
	c.cmd("EHLO client.test", "250")
	c.cmd("MAIL FROM:<x@remote.test>", "250")
	c.cmd("RCPT TO:<demo@example.test>", "250")
	c.cmd("DATA", "354")
	c.send(strings.Repeat("Received: from a by b; Mon, 1 Jan 2024 00:00:00 +0000\r\n", 100) + "\r\nx\r\n.\r\n")
	c.expect("554 5.4.6")
	c.cmd("NOOP", "250")
	if n := len(sink.messages("demo@example.test")); n != 0 {
		t.Errorf("looping message delivered")
	}
}
