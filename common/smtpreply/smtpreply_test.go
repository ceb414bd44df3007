package smtpreply

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

type backend struct{}

func (backend) NewSession(*smtp.Conn) (smtp.Session, error) { return nil, smtp.ErrAuthRequired }

// fixConn applies Fix to what the server writes, as the daemons do.
type fixConn struct{ net.Conn }

func (c fixConn) Write(p []byte) (int, error) {
	if _, err := c.Conn.Write(Fix(p)); err != nil {
		return 0, err
	}
	return len(p), nil
}

type fixListener struct{ net.Listener }

func (l fixListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return fixConn{c}, nil
}

// TestAgainstGoSMTP checks the rewrite against the replies the pinned
// go-smtp really writes, so that a library update that changes them makes
// this fail rather than silently undo the fix.
func TestAgainstGoSMTP(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := smtp.NewServer(backend{})
	s.Domain = "test"
	go s.Serve(fixListener{l})
	defer s.Close()

	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	r.ReadString('\n')
	for _, tc := range []struct{ send, want string }{
		{"FROB\r\n", "500 5.5.1 Command FROB unrecognized"},
		{"XYZZY\r\n", "500 5.5.1 Command unrecognized"},
		{"NOOP\r\n", "250 2.0.0"},
	} {
		c.Write([]byte(tc.send))
		got, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(got, tc.want) {
			t.Errorf("%q: got %q, want %q", strings.TrimSpace(tc.send), got, tc.want)
		}
	}
}

func TestOtherRepliesUntouched(t *testing.T) {
	for _, p := range []string{"250 2.0.0 OK\r\n", "500 5.5.2 Syntax errors, x\r\n", "501 5.5.4 Bad\r\n"} {
		if got := string(Fix([]byte(p))); got != p {
			t.Errorf("Fix(%q) = %q", p, got)
		}
	}
}

func FuzzFix(f *testing.F) {
	f.Add([]byte("500 5.5.2 Syntax errors, FROB command unrecognized\r\n"))
	f.Add([]byte("501 5.5.2 Bad command\r\n"))
	// Prefix and suffix overlap here; this once sliced out of range.
	f.Add([]byte("500 5.5.2 Syntax errors, command unrecognized\r\n"))
	f.Fuzz(func(t *testing.T, p []byte) {
		out := Fix(p)
		if string(out) != string(p) && !strings.HasPrefix(string(out), "500 5.5.1 ") {
			t.Fatalf("Fix(%q) = %q", p, out)
		}
	})
}
