// Package smtptest is a mail sink for tests: a real SMTP or LMTP server
// (go-smtp) on a loopback or unix socket that keeps every message it is
// given, refuses the recipients it is told to and a non-ASCII
// address without SMTPUTF8 (as tern's own servers do), standing for a remote
// MX or for lmtpd in the tests of tern's clients (the courier, lmtpd's
// forwards through smtpd). Only tests import it.
package smtptest

import (
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-smtp"

	"tern/common/smtpserver"
)

// Message is one message as the sink took it.
type Message struct {
	From string
	To   []string // the recipients it accepted
	Data string
	UTF8 bool // MAIL FROM had SMTPUTF8 (RFC 6531 3.4)
}

// Sink is a running server.
type Sink struct {
	// Addr is where it listens: "host:port", or the socket's path.
	Addr string

	srv    *smtp.Server
	mu     sync.Mutex
	msgs   []Message
	refuse map[string]*smtp.SMTPError
}

// Start runs a sink on network ("tcp" or "unix") and addr ("127.0.0.1:0",
// or a socket path, replaced if it exists) until the test ends. With lmtp
// it speaks LMTP (RFC 2033).
func Start(t testing.TB, network, addr string, lmtp bool) *Sink {
	t.Helper()
	return start(t, network, addr, lmtp, true)
}

// StartNoUTF8 is Start for a server that does not announce SMTPUTF8
// (RFC 6531), as many still do not: it refuses the parameter and any
// non-ASCII address.
func StartNoUTF8(t testing.TB, network, addr string, lmtp bool) *Sink {
	t.Helper()
	return start(t, network, addr, lmtp, false)
}

func start(t testing.TB, network, addr string, lmtp, utf8 bool) *Sink {
	t.Helper()
	k := &Sink{refuse: map[string]*smtp.SMTPError{}}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &session{k: k}, nil }))
	srv.LMTP = lmtp
	srv.Domain = "sink.test"
	srv.EnableSMTPUTF8 = utf8
	if network == "unix" {
		os.Remove(addr)
	}
	l, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	k.Addr = l.Addr().String()
	k.srv = srv
	go srv.Serve(l)
	t.Cleanup(k.Close)
	return k
}

// Close stops the sink: a peer that connects then finds nobody listening.
func (k *Sink) Close() { k.srv.Close() }

// Refuse makes RCPT TO:<rcpt> fail with err.
func (k *Sink) Refuse(rcpt string, err *smtp.SMTPError) {
	k.mu.Lock()
	k.refuse[rcpt] = err
	k.mu.Unlock()
}

// Messages is every message taken so far, in order; none for a nil
// Sink (one never started).
func (k *Sink) Messages() []Message {
	if k == nil {
		return nil
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]Message(nil), k.msgs...)
}

// To is every message taken so far for rcpt.
func (k *Sink) To(rcpt string) []Message {
	var out []Message
	for _, m := range k.Messages() {
		for _, to := range m.To {
			if to == rcpt {
				out = append(out, m)
				break
			}
		}
	}
	return out
}

type session struct {
	k    *Sink
	from string
	to   []string
	utf8 bool
}

// errNeedsUTF8: RFC 6531 3.4, a non-ASCII address only in a transaction
// opened with SMTPUTF8, as smtpd and lmtpd answer (common/smtpserver).
var errNeedsUTF8 = &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 6, 7},
	Message: "Non-ASCII address without SMTPUTF8"}

func (s *session) Reset()        { s.from, s.to = "", nil }
func (s *session) Logout() error { return nil }

func (s *session) Mail(from string, o *smtp.MailOptions) error {
	s.utf8 = o != nil && o.UTF8
	if !s.utf8 && !smtpserver.IsASCII(from) {
		return errNeedsUTF8
	}
	s.from = from
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if !s.utf8 && !smtpserver.IsASCII(to) {
		return errNeedsUTF8
	}
	s.k.mu.Lock()
	err := s.k.refuse[to]
	s.k.mu.Unlock()
	if err != nil {
		return err
	}
	s.to = append(s.to, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	var b strings.Builder
	if _, err := io.Copy(&b, r); err != nil {
		return err
	}
	s.k.mu.Lock()
	s.k.msgs = append(s.k.msgs, Message{From: s.from, To: append([]string(nil), s.to...), Data: b.String(), UTF8: s.utf8})
	s.k.mu.Unlock()
	return nil
}
