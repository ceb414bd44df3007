package main

import (
	"bufio"
	"bytes"
	"net"
	"strings"
	"testing"
	"time"

	"tern/common/config"
)

func rawDial(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	if _, err := r.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	return c, r
}

func TestLineTooLong(t *testing.T) {
	e := startServer(t, func(c *config.Config) { c.IMAPD.MaxLineLength = 8192 })
	c, r := rawDial(t, e.addr)
	long := "a1 LOGIN " + strings.Repeat("x", 20000) + " y\r\n"
	if _, err := c.Write([]byte(long)); err != nil {
		t.Fatal(err)
	}
	line, err := r.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "a1 BAD") {
		t.Fatalf("overlong line: %q %v", line, err)
	}
	// The session goes on.
	c.Write([]byte("a2 CAPABILITY\r\n"))
	for {
		line, err = r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(line, "a2 ") {
			break
		}
	}
	if !strings.HasPrefix(line, "a2 OK") {
		t.Fatalf("after overlong line: %q", line)
	}
}

func TestConnectionsPerIP(t *testing.T) {
	e := startServer(t, func(c *config.Config) { c.IMAPD.MaxConnectionsPerIP = 2 })
	rawDial(t, e.addr)
	rawDial(t, e.addr)
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	line, _ := bufio.NewReader(c).ReadString('\n')
	if !strings.HasPrefix(line, "* BYE [LIMIT]") {
		t.Fatalf("third connection: %q", line)
	}
}

func TestConnectionsPerUser(t *testing.T) {
	e := startServer(t, func(c *config.Config) { c.IMAPD.MaxConnectionsPerUser = 1 })
	e.login(t, nil)
	c := e.dial(t, nil)
	err := c.Login("demo", "demo").Wait()
	if err == nil || !strings.Contains(err.Error(), "LIMIT") {
		t.Fatalf("second session of demo: %v", err)
	}
}

// SIGTERM's path: every session gets BYE and the connections close.
func TestShutdownSaysBye(t *testing.T) {
	e := startServer(t)
	cl := e.login(t, nil)
	selectInbox(t, cl)
	idle, err := cl.Idle()
	if err != nil {
		t.Fatal(err)
	}
	c, r := rawDial(t, e.addr)
	_ = c
	start := time.Now()
	e.srv.shutdown(2 * time.Second)
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("shutdown took %v", d)
	}
	line, _ := r.ReadString('\n')
	if !strings.HasPrefix(line, "* BYE") {
		t.Fatalf("raw client got %q", line)
	}
	select {
	case <-cl.Closed():
	case <-time.After(2 * time.Second):
		t.Fatal("idling client not disconnected")
	}
	_ = idle
}

func FuzzLineConn(f *testing.F) {
	f.Add([]byte("a LOGIN x y\r\nb APPEND INBOX {5}\r\nhello\r\nc NOOP\r\n"), 64)
	f.Add([]byte("a STARTTLS\r\n\x16\x03\x01"), 16)
	f.Add([]byte(strings.Repeat("z", 300)+"\r\nq NOOP\r\n"), 32)
	f.Add([]byte("t X {99999999999999999999}\r\n"), 64)
	f.Fuzz(func(t *testing.T, in []byte, max int) {
		if max < 8 || max > 1<<16 {
			return
		}
		a, b := net.Pipe()
		defer a.Close()
		lc := newLineConn(b, max, time.Minute, 1<<20)
		go func() {
			// Swallow replies the limiter writes.
			buf := make([]byte, 4096)
			for {
				if _, err := a.Read(buf); err != nil {
					return
				}
			}
		}()
		go func() {
			a.Write(in)
			a.Close()
		}()
		var out bytes.Buffer
		buf := make([]byte, 100)
		for {
			n, err := lc.Read(buf)
			out.Write(buf[:n])
			if err != nil {
				break
			}
		}
		// What is released does not depend on how the bytes arrive nor
		// on the reader's buffer: whole, or a byte at a time into a
		// buffer of 7.
		released := func(k, rb int) []byte {
			lc := newLineConn(&scriptConn{r: bytes.NewReader(in), k: k}, max, time.Minute, 1<<20)
			var out bytes.Buffer
			buf := make([]byte, rb)
			for {
				n, err := lc.Read(buf)
				out.Write(buf[:n])
				if err != nil {
					return out.Bytes()
				}
			}
		}
		if whole, bytewise := released(len(in)+1, 4096), released(1, 7); !bytes.Equal(whole, bytewise) {
			t.Fatalf("released %q whole, %q byte by byte", whole, bytewise)
		}
		// No released line (outside literals and after STARTTLS) may be
		// longer than the limit.
		if !bytes.Contains(in, []byte("{")) && !bytes.Contains(bytes.ToUpper(in), []byte("STARTTLS")) {
			for _, l := range bytes.SplitAfter(out.Bytes(), []byte("\n")) {
				if len(l) > max {
					t.Fatalf("released %d-byte line with limit %d", len(l), max)
				}
			}
		}
	})
}

// scriptConn is a connection whose peer sends r, at most k bytes per read,
// and takes every reply.
type scriptConn struct {
	net.Conn
	r *bytes.Reader
	k int
}

func (c *scriptConn) Read(p []byte) (int, error) {
	if len(p) > c.k {
		p = p[:c.k]
	}
	return c.r.Read(p)
}

func (c *scriptConn) Write(p []byte) (int, error) { return len(p), nil }
