package serve

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tern/common/testpki"
)

// The tests serve a small line protocol over loopback sockets, written
// the way each daemon's loop is: a greeting, one reply per line, and on
// ErrShutdown the protocol's goodbye on the session's own transport.
//
//	LOGIN name   Login(name): "+OK" or "-LIMIT"
//	BUSY         a transaction: the next line is its body, read while busy
//	STARTTLS     "+OK", then the TLS handshake (StartTLS)
//	anything     echoed as "+OK anything"
//
// A read timeout is answered "-TIMEOUT".

type testServer struct {
	*Server
	addr    string
	tlsAddr string
	limits  atomic.Pointer[Limits]
	client  *tls.Config
}

func startServer(t *testing.T, lim Limits) *testServer {
	t.Helper()
	ca := testpki.New(t, "serve test CA")
	serverTLS := &tls.Config{Certificates: []tls.Certificate{ca.Issue(t, "localhost")}}
	ts := &testServer{client: &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"}}
	ts.limits.Store(&lim)
	log := slog.New(slog.NewTextHandler(newTestWriter(t), &slog.HandlerOptions{Level: slog.LevelDebug}))
	ts.Server = &Server{
		Name:     "test",
		Log:      log,
		IDPrefix: "t",
		Limits:   func() Limits { return *ts.limits.Load() },
		Refuse:   func(r Refusal) string { return "-ERR " + r.String() },
		Handle:   func(c *Conn) { session(c, serverTLS) },
	}
	plain, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	secure, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts.addr, ts.tlsAddr = plain.Addr().String(), secure.Addr().String()
	ts.Add(&Listener{Listener: plain, Kind: "plain"})
	ts.Add(&Listener{Listener: secure, Kind: "tls", TLS: serverTLS})
	served := make(chan error, 1)
	go func() { served <- ts.Serve() }()
	t.Cleanup(func() {
		ts.Shutdown(time.Second)
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ts
}

// testWriter logs through t until the test ends: a connection that a
// bounded drain left behind may still log after that, which t.Log would
// turn into a panic.
type testWriter struct {
	t    *testing.T
	mu   *sync.Mutex
	done *bool
}

func newTestWriter(t *testing.T) testWriter {
	w := testWriter{t: t, mu: new(sync.Mutex), done: new(bool)}
	t.Cleanup(func() {
		w.mu.Lock()
		*w.done = true
		w.mu.Unlock()
	})
	return w
}

func (w testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !*w.done {
		w.t.Log(strings.TrimSpace(string(p)))
	}
	return len(p), nil
}

// session is the protocol loop.
func session(c *Conn, serverTLS *tls.Config) {
	defer c.Close()
	rw := c.Stream()
	r := bufio.NewReader(rw)
	say := func(line string) { io.WriteString(rw, line+"\r\n") }
	say("+OK hello " + c.ID())
	for {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		line, err := r.ReadString('\n')
		if errors.Is(err, ErrShutdown) {
			c.Goodbye("-BYE shutting down")
			return
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			say("-TIMEOUT")
			return
		}
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		switch verb, arg, _ := strings.Cut(line, " "); verb {
		case "LOGIN":
			if !c.Login(arg) {
				say("-LIMIT")
				continue
			}
			say("+OK")
		case "BUSY":
			c.SetBusy(true)
			say("+OK go on")
			body, err := r.ReadString('\n')
			c.SetBusy(false)
			if err != nil {
				return
			}
			say("+OK stored " + strings.TrimSpace(body))
		case "STARTTLS":
			say("+OK")
			tc, err := c.StartTLS(serverTLS)
			if err != nil {
				return
			}
			rw, r = tc, bufio.NewReader(tc)
		default:
			say("+OK " + line)
		}
	}
}

// client is a test's end of a connection.
type client struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dialFrom(t *testing.T, local, addr string) *client {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if local != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return &client{t: t, c: c, r: bufio.NewReader(c)}
}

func dial(t *testing.T, addr string) *client { return dialFrom(t, "", addr) }

// dialTLS connects to the implicit-TLS listener and does the handshake.
func (ts *testServer) dialTLS(t *testing.T) *client {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ts.tlsAddr, ts.client)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return &client{t: t, c: c, r: bufio.NewReader(c)}
}

func (cl *client) line() string {
	cl.t.Helper()
	l, err := cl.r.ReadString('\n')
	if err != nil {
		return "error: " + err.Error()
	}
	return strings.TrimRight(l, "\r\n")
}

func (cl *client) expect(prefix string) {
	cl.t.Helper()
	if l := cl.line(); !strings.HasPrefix(l, prefix) {
		cl.t.Fatalf("got %q, want %q…", l, prefix)
	}
}

func (cl *client) send(line string) {
	cl.t.Helper()
	if _, err := io.WriteString(cl.c, line+"\r\n"); err != nil {
		cl.t.Fatal(err)
	}
}

func (cl *client) cmd(line, want string) {
	cl.t.Helper()
	cl.send(line)
	cl.expect(want)
}

// waitOpen waits until the server counts n connections.
func waitOpen(t *testing.T, s *Server, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for s.Open() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections open, want %d", s.Open(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestAdmissionTotal(t *testing.T) {
	ts := startServer(t, Limits{MaxConnections: 2})
	a := dial(t, ts.addr)
	a.expect("+OK hello t")
	dial(t, ts.addr).expect("+OK hello")
	dial(t, ts.addr).expect("-ERR too many connections")
	a.c.Close()
	waitOpen(t, ts.Server, 1)
	dial(t, ts.addr).expect("+OK hello")
}

// The per-address limit counts each client address apart: 127.0.0.2 is
// another client on the same loopback interface.
func TestAdmissionPerAddress(t *testing.T) {
	ts := startServer(t, Limits{PerAddr: 2})
	dialFrom(t, "127.0.0.1", ts.addr).expect("+OK hello")
	dialFrom(t, "127.0.0.1", ts.addr).expect("+OK hello")
	dialFrom(t, "127.0.0.1", ts.addr).expect("-ERR too many connections from the address")
	dialFrom(t, "127.0.0.2", ts.addr).expect("+OK hello")
	// Implicit TLS counts in the same table, and its refusal says
	// nothing in plaintext: the connection is closed.
	c := dialFrom(t, "127.0.0.1", ts.tlsAddr)
	if l := c.line(); l != "error: EOF" {
		t.Errorf("refused implicit-TLS connection read %q, want EOF", l)
	}
}

func TestAdmissionPerUser(t *testing.T) {
	ts := startServer(t, Limits{PerUser: 1})
	a := dial(t, ts.addr)
	a.expect("+OK hello")
	a.cmd("LOGIN alice", "+OK")
	b := dial(t, ts.addr)
	b.expect("+OK hello")
	b.cmd("LOGIN alice", "-LIMIT")
	b.cmd("LOGIN bob", "+OK")
	// Logging in again as oneself takes no second slot.
	a.cmd("LOGIN alice", "+OK")
	a.c.Close()
	waitOpen(t, ts.Server, 1)
	c := dial(t, ts.addr)
	c.expect("+OK hello")
	c.cmd("LOGIN alice", "+OK")
}

// New limits (SIGHUP) apply to new connections; open ones stay.
func TestLimitsApplyToNewConnections(t *testing.T) {
	ts := startServer(t, Limits{PerAddr: 1})
	a := dial(t, ts.addr)
	a.expect("+OK hello")
	dial(t, ts.addr).expect("-ERR too many connections from the address")
	ts.limits.Store(&Limits{PerAddr: 3})
	dial(t, ts.addr).expect("+OK hello")
	dial(t, ts.addr).expect("+OK hello")
	dial(t, ts.addr).expect("-ERR too many connections from the address")
	a.cmd("NOOP", "+OK NOOP")
}

// Before login every read waits at most LoginTimeout, whatever deadline
// the protocol sets; after it, the protocol's own.
func TestLoginDeadline(t *testing.T) {
	ts := startServer(t, Limits{LoginTimeout: 300 * time.Millisecond})
	silent := dial(t, ts.addr)
	silent.expect("+OK hello")
	start := time.Now()
	silent.expect("-TIMEOUT")
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("cut after %v, want about 300ms", d)
	}
	in := dial(t, ts.addr)
	in.expect("+OK hello")
	in.cmd("LOGIN alice", "+OK")
	time.Sleep(600 * time.Millisecond)
	in.cmd("NOOP", "+OK NOOP")
}

// A client that opens an implicit-TLS connection and says nothing is cut
// at HandshakeTimeout, and its slot given back.
func TestHandshakeDeadline(t *testing.T) {
	ts := startServer(t, Limits{HandshakeTimeout: 300 * time.Millisecond, MaxConnections: 1})
	c := dial(t, ts.tlsAddr)
	start := time.Now()
	if l := c.line(); !strings.HasPrefix(l, "error: ") {
		t.Fatalf("read %q from a server waiting for a handshake", l)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("handshake wait cut after %v, want about 300ms", d)
	}
	waitOpen(t, ts.Server, 0)
	ts.dialTLS(t).expect("+OK hello")
}

// At shutdown an idle session is told goodbye at once, a busy one when
// its transaction is over, each on its transport (plain, after STARTTLS,
// implicit TLS); nothing new is accepted and Shutdown returns once all
// are closed, within the grace.
func TestShutdownGoodbye(t *testing.T) {
	ts := startServer(t, Limits{})
	idle := dial(t, ts.addr)
	idle.expect("+OK hello")
	starttls := dial(t, ts.addr)
	starttls.expect("+OK hello")
	starttls.cmd("STARTTLS", "+OK")
	tc := tls.Client(starttls.c, ts.client)
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	starttls = &client{t: t, c: tc, r: bufio.NewReader(tc)}
	starttls.cmd("NOOP", "+OK NOOP")
	implicit := ts.dialTLS(t)
	implicit.expect("+OK hello")
	busy := dial(t, ts.addr)
	busy.expect("+OK hello")
	busy.cmd("BUSY", "+OK go on")
	waitOpen(t, ts.Server, 4)

	start := time.Now()
	done := make(chan struct{})
	go func() { ts.Shutdown(3 * time.Second); close(done) }()
	idle.expect("-BYE shutting down")
	starttls.expect("-BYE shutting down")
	implicit.expect("-BYE shutting down")
	time.Sleep(100 * time.Millisecond)
	busy.send("the body")
	busy.expect("+OK stored the body")
	busy.expect("-BYE shutting down")
	<-done
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Shutdown took %v", d)
	}
	if c, err := net.Dial("tcp", ts.addr); err == nil {
		c.Close()
		t.Error("still accepting after Shutdown")
	}
	if err := ts.Context().Err(); err == nil {
		t.Error("Context not done after Shutdown")
	}
}

// The drain is bounded: a transaction that does not end by the grace has
// its read cut and is told goodbye, and Shutdown returns.
func TestShutdownDrainBounded(t *testing.T) {
	ts := startServer(t, Limits{})
	busy := dial(t, ts.addr)
	busy.expect("+OK hello")
	busy.cmd("BUSY", "+OK go on")
	waitOpen(t, ts.Server, 1)
	start := time.Now()
	ts.Shutdown(300 * time.Millisecond)
	if d := time.Since(start); d < 300*time.Millisecond || d > 2*time.Second {
		t.Errorf("Shutdown took %v, want the grace and at most a second more", d)
	}
	// The body read was cut: the loop ends without a reply to it.
	if l := busy.line(); !strings.HasPrefix(l, "error: ") {
		t.Errorf("after the grace: %q", l)
	}
}

// A connection that arrives while shutting down is refused with the
// protocol's line, and ids are unique.
func TestShutdownRefusesAndIDs(t *testing.T) {
	ts := startServer(t, Limits{})
	a := dial(t, ts.addr)
	b := dial(t, ts.addr)
	la, lb := a.line(), b.line()
	if la == lb || !strings.HasPrefix(la, "+OK hello t") {
		t.Errorf("greetings %q and %q: want distinct ids", la, lb)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ts.Shutdown(time.Second)
	// A connection handed over after Shutdown (ServeConn) is refused.
	go func() {
		c, err := l.Accept()
		if err == nil {
			ts.ServeConn("plain", c)
		}
	}()
	late := dial(t, l.Addr().String())
	late.expect("-ERR shutting down")
}
