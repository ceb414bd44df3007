package main

import (
	"bufio"
	"crypto/tls"
	"fmt"
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

// TestShutdownByeEveryTransport: at shutdown a session waiting for its
// client gets "* BYE" (RFC 9051 7.1.5) on its own transport: in
// plaintext, after STARTTLS and over implicit TLS; a logged-in session
// too.
func TestShutdownByeEveryTransport(t *testing.T) {
	e := startServer(t)
	clientTLS := &tls.Config{InsecureSkipVerify: true}
	_, plain := rawDial(t, e.addr)
	c, r := rawDial(t, e.addr)
	fmt.Fprintf(c, "a STARTTLS\r\n")
	if l, _ := r.ReadString('\n'); !strings.HasPrefix(l, "a OK") {
		t.Fatalf("STARTTLS: %q", l)
	}
	tc := tls.Client(c, clientTLS)
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	starttls := bufio.NewReader(tc)
	fmt.Fprintf(tc, "b LOGIN demo demo\r\n")
	if l, _ := starttls.ReadString('\n'); !strings.HasPrefix(l, "b OK") {
		t.Fatalf("LOGIN after STARTTLS: %q", l)
	}
	ic, err := tls.Dial("tcp", e.tlsAddr, clientTLS)
	if err != nil {
		t.Fatal(err)
	}
	defer ic.Close()
	ic.SetDeadline(time.Now().Add(5 * time.Second))
	implicit := bufio.NewReader(ic)
	if l, _ := implicit.ReadString('\n'); !strings.HasPrefix(l, "* OK") {
		t.Fatalf("greeting over implicit TLS: %q", l)
	}
	go e.srv.shutdown(2 * time.Second)
	for name, r := range map[string]*bufio.Reader{"plain": plain, "starttls": starttls, "implicit": implicit} {
		if l, _ := r.ReadString('\n'); l != "* BYE Server shutting down\r\n" {
			t.Errorf("%s: %q", name, l)
		}
	}
}

// TestShutdownByeInAuthenticate: a session waiting for the client's SASL
// response is told BYE at shutdown too.
func TestShutdownByeInAuthenticate(t *testing.T) {
	e := startServer(t)
	c, r := rawDial(t, e.addr)
	fmt.Fprintf(c, "a AUTHENTICATE PLAIN\r\n")
	if l, _ := r.ReadString('\n'); !strings.HasPrefix(l, "+") {
		t.Fatalf("AUTHENTICATE: %q", l)
	}
	go e.srv.shutdown(2 * time.Second)
	if l, _ := r.ReadString('\n'); l != "* BYE Server shutting down\r\n" {
		t.Errorf("at shutdown: %q", l)
	}
}
