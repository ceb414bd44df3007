package main

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"tern/common/config"
)

// destination_concurrency bounds the deliveries at once to one MX host
// and to one address, not per domain: three domains whose next hops are
// one host (127.0.0.1:port) or one address (localhost:port) share the
// limit of 2.
func TestPerHostConcurrency(t *testing.T) {
	mx := startRemoteMX(t, "")
	hold := make(chan struct{})
	mx.mu.Lock()
	mx.hold = hold
	mx.mu.Unlock()
	released := false
	defer func() {
		if !released {
			close(hold)
		}
	}()
	_, port, _ := net.SplitHostPort(mx.addr)
	cfg := newTestConfig(t, fmt.Sprintf(
		"transport = { \"a.test\" = %q, \"b.test\" = %q, \"c.test\" = \"localhost:%s\" }\ndestination_concurrency = 2\n",
		mx.addr, mx.addr, port))
	startLMTP(t, cfg)
	e := startSMTPD(t, cfg)
	for i := range 9 {
		to := fmt.Sprintf("u%d@%c.test", i, 'a'+i%3)
		if err := submit(t, e.addr(kindSubmission), "demo", "demo", "demo@example.test",
			[]string{to}, "Subject: many\r\n\r\nx\r\n", nil); err != nil {
			t.Fatal(err)
		}
	}
	active := func() (int, int) {
		mx.mu.Lock()
		defer mx.mu.Unlock()
		return mx.active, mx.maxActive
	}
	waitFor(t, 10*time.Second, "two deliveries in DATA", func() bool { a, _ := active(); return a == 2 })
	time.Sleep(time.Second) // time for a third to start, if the limit leaked
	if a, m := active(); m != 2 {
		t.Errorf("at most %d deliveries at once to the shared MX (now %d), want 2", m, a)
	}
	released = true
	close(hold)
	waitFor(t, 20*time.Second, "all nine delivered", func() bool { return len(mx.messages()) == 9 })
	if _, m := active(); m != 2 {
		t.Errorf("at most %d deliveries at once, want 2", m)
	}
}

// A host whose connection fails is in backoff for every domain it serves:
// a message for a second domain on it is deferred without a connection,
// with the reason in its envelope; mailq -flush (queue.Flush) ends it.
func TestHostBackoff(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var accepts atomic.Int32
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepts.Add(1)
			c.Close() // no greeting: the connection fails
		}
	}()
	cfg := newTestConfig(t, fmt.Sprintf("transport = { \"a.test\" = %q, \"b.test\" = %q }\n", l.Addr(), l.Addr()))
	cfg.SMTPD.RetryMin = config.Duration(time.Minute)
	cfg.SMTPD.RetryMax = config.Duration(time.Hour)
	startLMTP(t, cfg)
	e := startSMTPD(t, cfg)
	tried := func(n int) func() bool {
		return func() bool {
			envs, _ := e.srv.queue.List()
			return len(envs) == n && len(envs[n-1].Recipients[0].Attempts) > 0
		}
	}
	if err := submit(t, e.addr(kindSubmission), "demo", "demo", "demo@example.test", []string{"x@a.test"}, "x\r\n", nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the first attempt", tried(1))
	if err := submit(t, e.addr(kindSubmission), "demo", "demo", "demo@example.test", []string{"y@b.test"}, "x\r\n", nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the second message's attempt", tried(2))
	if n := accepts.Load(); n != 1 {
		t.Errorf("%d connections, want 1: the host was in backoff", n)
	}
	envs, _ := e.srv.queue.List()
	last, _ := envs[1].Recipients[0].LastAttempt()
	if !strings.Contains(last.Reply, "not tried before") {
		t.Errorf("the deferred message's reason: %q", last.Reply)
	}
	if err := e.srv.queue.Flush(""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "connections after the flush", func() bool { return accepts.Load() >= 2 })
}

// smtpd.submission_rate: past the count, RCPT gets 451 4.7.1, per user
// (whatever sender it uses) and per sender; other users are not charged.
func TestSubmissionRate(t *testing.T) {
	cfg := newTestConfig(t, "submission_rate = \"3/1h\"\n")
	sink := startLMTP(t, cfg)
	e := startSMTPD(t, cfg)
	send := func(user, from string, to ...string) error {
		return submit(t, e.addr(kindSubmission), user, user, from, to, "Subject: rate\r\n\r\nx\r\n", nil)
	}
	if err := send("demo", "demo@example.test", "alice@example.test", "sales@example.test"); err != nil {
		t.Fatal(err)
	}
	// The third recipient is within the limit, the fourth is not, even
	// under another sender address of the same user.
	if err := send("demo", "postmaster@example.test", "alice@example.test"); err != nil {
		t.Fatal(err)
	}
	err := send("demo", "postmaster@example.test", "alice@example.test")
	if !isReply(err, 451, smtp.EnhancedCode{4, 7, 1}) {
		t.Fatalf("the fourth recipient: %v, want 451 4.7.1", err)
	}
	// On implicit TLS (port 465) too.
	tc, err := smtp.DialTLS(e.addr(kindSubmissions), clientTLS)
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	if err := tc.Auth(sasl.NewPlainClient("", "demo", "demo")); err != nil {
		t.Fatal(err)
	}
	if err := tc.Mail("demo@example.test", nil); err != nil {
		t.Fatal(err)
	}
	if err := tc.Rcpt("alice@example.test", nil); !isReply(err, 451, smtp.EnhancedCode{4, 7, 1}) {
		t.Errorf("RCPT on 465 past the limit: %v", err)
	}
	// And in clear on loopback, where AUTH is allowed without TLS.
	c := dialRaw(t, e.addr(kindSubmission))
	c.cmd("EHLO rate.test", "250")
	c.cmd("AUTH PLAIN AGRlbW9AZXhhbXBsZS50ZXN0AGRlbW8=", "235")
	c.cmd("MAIL FROM:<demo@example.test>", "250")
	c.cmd("RCPT TO:<alice@example.test>", "451 4.7.1")
	// alice is not charged for demo's mail.
	if err := send("alice", "alice@example.test", "demo@example.test"); err != nil {
		t.Errorf("another user: %v", err)
	}
	if n := len(sink.messages("alice@example.test")); n != 2 {
		t.Errorf("alice got %d messages, want 2", n)
	}
}

func isReply(err error, code int, enh smtp.EnhancedCode) bool {
	var se *smtp.SMTPError
	return errors.As(err, &se) && se.Code == code && se.EnhancedCode == enh
}
