package main

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

// submitSink stands for smtpd's local submission socket: the same loop
// (common/smtpserver) with its rules, keeping what it is given.
type submitSink struct {
	mu   sync.Mutex
	msgs []string
}

type submitSession struct {
	k    *submitSink
	from string
	to   []string
}

func (s *submitSession) Reset()        { s.from, s.to = "", nil }
func (s *submitSession) Logout() error { return nil }
func (s *submitSession) Mail(from string, _ *smtp.MailOptions) error {
	s.from = from
	return nil
}
func (s *submitSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}
func (s *submitSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.k.mu.Lock()
	s.k.msgs = append(s.k.msgs, s.from+" -> "+strings.Join(s.to, ",")+"\n"+string(b))
	s.k.mu.Unlock()
	return nil
}

// TestForwardUTF8Sender: a message from a UTF-8 sender (RFC 6531),
// forwarded by an alias to a remote address, is handed to smtpd with
// SMTPUTF8, which smtpd requires for a non-ASCII address (RFC 6531 3.4).
func TestForwardUTF8Sender(t *testing.T) {
	e := startServer(t, func(c *configT) {
		write(t, c.Aliases, testAliases+"fwd: out@remote.test, gr\u00fc\u00df@remote.test\n")
	})
	k := &submitSink{}
	ss := &smtpserver.Server{Domain: "smtpd.test", EnableSMTPUTF8: true, MaxLineLength: 1000,
		Backend: smtpserver.BackendFunc(func(*smtpserver.Conn) (smtp.Session, error) { return &submitSession{k: k}, nil })}
	path := strings.TrimPrefix(e.cfg.SMTPD.LocalSubmit, "unix:")
	os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	go ss.Serve(l)
	t.Cleanup(func() { ss.Close() })
	c := dialRaw(t, "unix", e.unix)
	c.send("LHLO client.test")
	c.expect("250 ")
	c.send("MAIL FROM:<j\u00f6rg@remote.test> SMTPUTF8", "RCPT TO:<fwd@example.test>", "DATA")
	c.expect("250 ")
	c.expect("250 ")
	c.expect("354 ")
	c.send("Subject: forwarded\r\n\r\nhi\r\n.")
	c.expect("250 2.0.0 <fwd@example.test>")
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.msgs) != 1 || !strings.HasPrefix(k.msgs[0], "j\u00f6rg@remote.test -> ") ||
		!strings.Contains(k.msgs[0], "gr\u00fc\u00df@remote.test") {
		t.Errorf("submitted: %q", k.msgs)
	}
}
