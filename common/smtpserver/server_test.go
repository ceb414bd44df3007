package smtpserver

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// sink is a small backend that keeps what it is given.
type sink struct {
	mu       sync.Mutex
	messages []string
	sessions int
	logouts  int
}

func (k *sink) NewSession(c *Conn) (smtp.Session, error) {
	k.mu.Lock()
	k.sessions++
	k.mu.Unlock()
	return &sinkSession{k: k, c: c}, nil
}

type sinkSession struct {
	k     *sink
	c     *Conn
	rcpts []string
}

func (s *sinkSession) Reset()        { s.rcpts = nil }
func (s *sinkSession) Logout() error { s.k.mu.Lock(); s.k.logouts++; s.k.mu.Unlock(); return nil }
func (s *sinkSession) Mail(from string, _ *smtp.MailOptions) error {
	if from == "refused@x.test" {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "No"}
	}
	return nil
}
func (s *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if strings.HasPrefix(to, "nobody@") {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user"}
	}
	if strings.HasPrefix(to, "panic@") {
		panic("session bug")
	}
	if strings.HasPrefix(to, "broken@") {
		return errors.New("internal detail that must not reach the client")
	}
	s.rcpts = append(s.rcpts, to)
	return nil
}
func (s *sinkSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if strings.Contains(string(b), "PANIC") {
		panic("session bug in Data")
	}
	s.k.mu.Lock()
	s.k.messages = append(s.k.messages, string(b))
	s.k.mu.Unlock()
	return nil
}

// LMTPData refuses recipients named full@ with 552 5.2.2.
func (s *sinkSession) LMTPData(r io.Reader, st smtp.StatusCollector) error {
	if err := s.Data(r); err != nil {
		return err
	}
	for _, to := range s.rcpts {
		if strings.HasPrefix(to, "full@") {
			st.SetStatus(to, &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 2, 2}, Message: "Mailbox full"})
		} else {
			st.SetStatus(to, nil)
		}
	}
	return nil
}
func (s *sinkSession) AuthMechanisms() []string { return []string{sasl.Plain} }
func (s *sinkSession) Auth(mech string) (sasl.Server, error) {
	if mech != sasl.Plain {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user == "u" && pass == "p" {
			return nil
		}
		return errors.New("bad password")
	}), nil
}

func selfSigned(t *testing.T) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), DNSNames: []string{"test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

func startServer(t *testing.T, edit func(*Server)) (*Server, *sink, string) {
	t.Helper()
	k := &sink{}
	s := &Server{Backend: k, Domain: "test", MaxMessageBytes: 1000, MaxRecipients: 3, MaxLineLength: 200,
		MaxErrors: 20, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second,
		EnableSMTPUTF8: true, EnableDSN: true, TLSConfig: selfSigned(t)}
	if edit != nil {
		edit(s)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return s, k, l.Addr().String()
}

type client struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { c.Close() })
	cl := &client{t: t, c: c, r: bufio.NewReader(c)}
	cl.want("220 test ")
	return cl
}

// reply reads one reply, all its lines joined by "\n".
func (c *client) reply() string {
	c.t.Helper()
	var lines []string
	for {
		l, err := c.r.ReadString('\n')
		if err != nil {
			return strings.Join(append(lines, "EOF"), "\n")
		}
		if !strings.HasSuffix(l, "\r\n") {
			c.t.Fatalf("reply line without CRLF: %q", l)
		}
		lines = append(lines, strings.TrimSuffix(l, "\r\n"))
		if len(l) < 4 || l[3] != '-' {
			return strings.Join(lines, "\n")
		}
	}
}

func (c *client) want(prefix string) string {
	c.t.Helper()
	r := c.reply()
	if !strings.HasPrefix(r[strings.LastIndex(r, "\n")+1:], prefix) {
		c.t.Fatalf("got %q, want %q", r, prefix)
	}
	return r
}

func (c *client) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.c, s); err != nil {
		c.t.Fatal(err)
	}
}

// exchange sends each command and checks its reply.
func (c *client) exchange(steps ...string) {
	c.t.Helper()
	for i := 0; i+1 < len(steps); i += 2 {
		c.send(steps[i] + "\r\n")
		c.want(steps[i+1])
	}
}

func TestCommands(t *testing.T) {
	_, k, addr := startServer(t, nil)
	c := dial(t, addr)
	c.exchange("EHLO client.test", "250 ")
	c.send("EHLO client.test\r\n")
	caps := c.reply()
	for _, want := range []string{"250-test Hello client.test", "PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES",
		"CHUNKING", "STARTTLS", "AUTH PLAIN", "SMTPUTF8", "DSN", "SIZE 1000", "LIMITS RCPTMAX=3"} {
		if !strings.Contains(caps, want) {
			t.Errorf("EHLO reply lacks %q: %q", want, caps)
		}
	}
	c.exchange(
		"HELO", "501 5.5.4",
		"LHLO x", "500 5.5.1",
		"VRFY someone", "252 2.5.0",
		"EXPN list", "502 5.5.1",
		"FROB", "500 5.5.1 Command FROB unrecognized",
		"MAIL FROM:<a@b.test> FROB=1", "555 5.5.4",
		"MAIL FROM:<a@b.test> SIZE=1 SIZE=2", "501 5.5.4",
		"MAIL FROM:<a@b.test> SIZE=5000", "552 5.3.4",
		"MAIL FROM:<a@b.test> BODY=BINARYMIME", "555 5.5.4",
		"MAIL FROM:<a@b.test> ENVID=x+2", "501 5.5.4",
		"MAIL FROM:a@b.test", "250 2.1.0",
		"RSET", "250 2.0.0",
		"MAIL FROM:<refused@x.test>", "550 5.7.1 No",
		"MAIL FROM:<@route.test:a@b.test> SIZE=10 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=a+2Bb", "250 2.1.0 Sender <a@b.test>",
		"RCPT TO:<nobody@b.test>", "550 5.1.1",
		"RCPT TO:<broken@b.test>", "451 4.3.0 Local error",
		"RCPT TO:<x@b.test> NOTIFY=NEVER,SUCCESS", "501 5.5.4",
		"RCPT TO:<x@b.test> ORCPT=rfc822;x+40b.test NOTIFY=FAILURE,DELAY", "250 2.1.5",
		"RCPT TO:<y@b.test> ORCPT=utf-8;y\\x{E9}@b.test", "250",
		"RCPT TO:<v@b.test> ORCPT=utf-8;y\\x{D800}@b.test", "501 5.5.4",
		"RCPT TO:<v@b.test> ORCPT=utf-8;y+@b.test", "501 5.5.4",
		"RCPT TO:<z@b.test>", "250",
		"RCPT TO:<w@b.test>", "452 4.5.3",
		"DATA x", "501 5.5.4",
		"DATA", "354 ",
	)
	c.send("Subject: hi\r\n\r\n..dot\r\n.\r\n")
	c.want("250 2.0.0")
	if len(k.messages) != 1 || k.messages[0] != "Subject: hi\r\n\r\n.dot\r\n" {
		t.Errorf("messages %q", k.messages)
	}
	c.exchange("HELO client.test", "250 test Hello client.test",
		"MAIL FROM:<a@b.test> SIZE=10", "555 5.5.4",
		"MAIL FROM:<a@b.test>", "250",
		"QUIT", "221 2.0.0")
	if r := c.reply(); r != "EOF" {
		t.Errorf("after QUIT: %q", r)
	}
}

func TestPipelining(t *testing.T) {
	_, k, addr := startServer(t, nil)
	c := dial(t, addr)
	// RFC 2920: the whole transaction in one write, replies in order.
	c.send("EHLO c.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<x@b.test>\r\nRCPT TO:<nobody@b.test>\r\nDATA\r\n")
	for _, w := range []string{"250-", "250 2.1.0", "250 2.1.5", "550 5.1.1", "354 "} {
		c.want(w[:3])
	}
	c.send("body\r\n.\r\nBDAT 5\r\nhello")
	c.want("250 2.0.0 OK")
	c.want("503 5.5.1") // BDAT after the transaction ended: out of sequence
	c.send("MAIL FROM:<a@b.test>\r\nRCPT TO:<x@b.test>\r\nBDAT 6\r\nchunk1BDAT 8 LAST\r\n, chunk2NOOP\r\n")
	for _, w := range []string{"250 2.1.0", "250 2.1.5", "250 2.0.0 6 octets", "250 2.0.0 OK", "250 2.0.0"} {
		c.want(w)
	}
	if len(k.messages) != 2 || k.messages[1] != "chunk1, chunk2" {
		t.Errorf("messages %q", k.messages)
	}
}

func TestAuth(t *testing.T) {
	_, _, addr := startServer(t, nil)
	c := dial(t, addr)
	c.exchange(
		"AUTH PLAIN", "503 5.5.1",
		"EHLO c.test", "250 ",
		"AUTH", "501 5.5.4",
		"AUTH CRAM-MD5", "504 5.7.4",
		"AUTH PLAIN !!!", "501 5.5.2",
		"AUTH PLAIN", "334 ",
		"*", "501 5.0.0",
		"AUTH PLAIN", "334 ",
		"AHUAeA==", "535 5.7.8",
		"MAIL FROM:<a@b.test>", "250",
		"AUTH PLAIN AHUAcA==", "503 5.5.1", // not in a transaction (RFC 4954 4)
		"RSET", "250",
		"AUTH PLAIN AHUAcA==", "235 2.7.0",
		"AUTH PLAIN AHUAcA==", "503 5.5.1",
	)
}

func TestStartTLSResets(t *testing.T) {
	_, k, addr := startServer(t, nil)
	c := dial(t, addr)
	c.exchange("EHLO c.test", "250 ", "MAIL FROM:<a@b.test>", "250", "STARTTLS", "503 5.5.1", "RSET", "250")
	// RFC 3207 4.2: a command pipelined behind STARTTLS is discarded.
	c.send("STARTTLS\r\nMAIL FROM:<a@b.test>\r\n")
	c.want("220 2.0.0")
	tc := tls.Client(c.c, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	c = &client{t: t, c: tc, r: bufio.NewReader(tc)}
	c.exchange("MAIL FROM:<a@b.test>", "503 5.5.1", "EHLO c.test", "250 ", "RCPT TO:<x@b.test>", "503 5.5.1",
		"STARTTLS", "503 5.5.1")
	c.send("EHLO again.test\r\n")
	if r := c.reply(); strings.Contains(r, "STARTTLS") {
		t.Errorf("STARTTLS offered under TLS: %q", r)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.sessions != 2 || k.logouts != 1 {
		t.Errorf("sessions %d, logouts %d: want a new session after STARTTLS", k.sessions, k.logouts)
	}
}

func TestLMTP(t *testing.T) {
	_, _, addr := startServer(t, func(s *Server) { s.LMTP = true; s.MaxRecipients = 10 })
	c := dial(t, addr)
	c.exchange("EHLO c.test", "500 5.5.1", "LHLO c.test", "250 ",
		"MAIL FROM:<a@b.test>", "250", "RCPT TO:<x@b.test>", "250", "RCPT TO:<full@b.test>", "250",
		"RCPT TO:<x@b.test>", "250", "DATA", "354")
	c.send("hi\r\n.\r\n")
	// RFC 2033 4.2: one reply per accepted RCPT, in order.
	for _, w := range []string{"250 2.0.0 <x@b.test>", "552 5.2.2 <full@b.test> Mailbox full", "250 2.0.0 <x@b.test>"} {
		c.want(w)
	}
	c.exchange("MAIL FROM:<a@b.test>", "250", "RCPT TO:<full@b.test>", "250", "RCPT TO:<x@b.test>", "250")
	c.send("BDAT 3 LAST\r\nhi\n")
	// A bare LF refuses the message for every recipient, once each.
	for _, w := range []string{"554 5.6.0 <full@b.test>", "554 5.6.0 <x@b.test>"} {
		c.want(w)
	}
	c.exchange("NOOP", "250 2.0.0")
}

func TestMaxErrorsAndClose(t *testing.T) {
	s, _, addr := startServer(t, func(s *Server) { s.MaxErrors = 2 })
	c := dial(t, addr)
	c.exchange("EHLO c.test", "250", "FROB", "500", "RCPT TO:<x@b.test>", "503", "NOOP", "250", "DATA", "421 4.7.0")
	if r := c.reply(); r != "EOF" {
		t.Errorf("after 421: %q", r)
	}
	// Close ends open sessions.
	c = dial(t, addr)
	s.Close()
	c.c.SetReadDeadline(time.Now().Add(3 * time.Second))
	if r := c.reply(); r != "EOF" {
		t.Errorf("after Close: %q", r)
	}
}

func TestReplyLinesSafe(t *testing.T) {
	_, _, addr := startServer(t, nil)
	c := dial(t, addr)
	c.send("EHLO c\x01\x7f.test\r\nMAIL FROM:<a@b\x01.test>\r\nMAIL FROM:<a\x01@b.test>\r\n")
	if r := c.reply(); !strings.HasPrefix(r, "250-test Hello c??.test") || strings.ContainsAny(r, "\x01\x7f") {
		t.Errorf("control byte echoed: %q", r)
	}
	c.want("501 5.1.7")
	c.want("501 5.1.7")
}

func TestIdleTimeout(t *testing.T) {
	_, _, addr := startServer(t, func(s *Server) { s.ReadTimeout = 300 * time.Millisecond })
	c := dial(t, addr)
	c.send("EHLO c.test\r\nNO")
	c.want("250")
	c.want("421 4.4.2")
}
