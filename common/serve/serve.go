// Package serve is how every tern daemon serves a connection: the accept
// loop, admission (connections in total, per client address, sessions per
// user after login), connection ids, the login and TLS handshake
// deadlines, and the graceful shutdown with the protocol's goodbye and a
// bounded drain.
//
// A daemon makes one Server per protocol it speaks (smtpd: SMTP; lmtpd:
// LMTP and ManageSieve; imapd: IMAP; pop3d: POP3), gives it its limits
// (read from the configuration in force for each new connection, so that
// SIGHUP reaches new connections), the line that refuses a connection and
// a handler, and calls Run. The handler's protocol loop reads through the
// *Conn it is given; at shutdown that read fails with ErrShutdown between
// two commands (never inside a transaction marked with SetBusy, until the
// drain's deadline) and the loop answers with its protocol's goodbye on
// its own transport, TLS included: 421 4.3.2 (SMTP, LMTP; RFC 5321 3.8),
// "* BYE" (IMAP; RFC 9051 7.1.5), "-ERR [SYS/TEMP]" (POP3; RFC 2449 8.1.2)
// and BYE (ManageSieve; RFC 5804 1.3).
package serve

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"tern/common/listen"
	"tern/common/maillog"
)

// Limits are what a new connection is admitted and served under. A zero
// field is no limit.
type Limits struct {
	// MaxConnections is the most connections at once, in total.
	MaxConnections int
	// PerAddr is the most connections at once from one client address
	// (Server.Addr says what an address is).
	PerAddr int
	// PerUser is the most logged-in sessions at once of one user (Login).
	PerUser int
	// LoginTimeout caps every read deadline of the connection until
	// Login, the TLS handshake included ([login] timeout).
	LoginTimeout time.Duration
	// HandshakeTimeout bounds a TLS handshake (implicit TLS, STARTTLS),
	// within LoginTimeout.
	HandshakeTimeout time.Duration
}

// Refusal is why a connection or login is refused.
type Refusal int

const (
	TooMany         Refusal = iota // MaxConnections reached
	TooManyFromAddr                // PerAddr reached
	TooManyForUser                 // PerUser reached (Login)
	ShuttingDown                   // accepted while shutting down
)

func (r Refusal) String() string {
	switch r {
	case TooMany:
		return "too many connections"
	case TooManyFromAddr:
		return "too many connections from the address"
	case TooManyForUser:
		return "too many connections of the user"
	}
	return "shutting down"
}

// ErrShutdown is the error of a read on a Conn once the server is
// shutting down: the protocol loop answers it with its goodbye. It is a
// net.Error whose Timeout is true, so that a loop that only knows
// timeouts still ends the session.
var ErrShutdown error = shutdownError{}

type shutdownError struct{}

func (shutdownError) Error() string   { return "serve: server shutting down" }
func (shutdownError) Timeout() bool   { return true }
func (shutdownError) Temporary() bool { return true }

// Server serves the connections of one protocol of a daemon.
type Server struct {
	// Name names the server in logs and metrics: the daemon's name, or
	// the protocol's where a daemon has two (lmtpd's "managesieve").
	Name string
	Log  *slog.Logger
	// Limits gives the limits a new connection gets (nil: none): it is
	// called at each accept, so that SIGHUP's changes apply to new
	// connections while open ones keep theirs.
	Limits func() Limits
	// Refuse is the protocol's line (without CRLF) to a connection that
	// is not admitted; it is not written on implicit-TLS listeners, where
	// the connection is closed without a word (a plaintext line would
	// only break the client's handshake).
	Refuse func(Refusal) string
	// Addr is the key of a connection's client for PerAddr; nil: the IP
	// of a TCP client, "local" for a unix one. An error refuses the
	// connection and is logged.
	Addr func(kind string, c net.Conn) (string, error)
	// Handle serves a connection. The connection stays open, and counts,
	// until its Close; Handle may return before (imapd's sessions wait in
	// goroutines of their own).
	Handle func(*Conn)
	// IDPrefix starts every connection id (ids are unique per Server).
	IDPrefix string

	nextID atomic.Uint64

	mu        sync.Mutex
	listeners []*Listener
	conns     map[*Conn]struct{}
	addrs     map[string]int
	users     map[string]int
	stopping  bool
	drained   chan struct{} // closed once stopping and conns is empty
	ctx       context.Context
	cancel    context.CancelFunc
}

// Listener is one listening socket of a Server.
type Listener struct {
	net.Listener
	// Kind is the listener's kind ("mx", "imaps", …), for logs and for
	// the handler.
	Kind string
	// TLS, when set, makes the listener implicit TLS (RFC 8314): the
	// handshake is done, under HandshakeTimeout, before Handle.
	TLS *tls.Config
}

func (s *Server) init() {
	if s.conns == nil {
		s.conns = map[*Conn]struct{}{}
		s.addrs = map[string]int{}
		s.users = map[string]int{}
		s.drained = make(chan struct{})
		s.ctx, s.cancel = context.WithCancel(context.Background())
	}
}

// Context ends when Shutdown begins: a session's waits that are not reads
// (a login delay) end with it.
func (s *Server) Context() context.Context {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.init()
	return s.ctx
}

// Listen opens every address of a kind of listener (listen.Listen); on an
// error the listeners opened so far stay with the Server (Close closes
// them). tlsConfig, when set, makes them implicit TLS.
func (s *Server) Listen(kind string, addrs []string, tlsConfig *tls.Config) error {
	for _, a := range addrs {
		l, err := listen.Listen(a)
		if err != nil {
			return err
		}
		s.Log.Info("listening", "kind", kind, "addr", a, "implicit_tls", tlsConfig != nil)
		s.Add(&Listener{Listener: l, Kind: kind, TLS: tlsConfig})
	}
	return nil
}

// Add adds an open listener, served by Serve.
func (s *Server) Add(l *Listener) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.init()
	if s.stopping {
		l.Close()
	}
	s.listeners = append(s.listeners, l)
}

// Addrs are the bound addresses of the listeners of a kind.
func (s *Server) Addrs(kind string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, l := range s.listeners {
		if l.Kind == kind {
			out = append(out, l.Addr().String())
		}
	}
	return out
}

// Close closes the listeners (a start that fails after Listen).
func (s *Server) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.listeners {
		l.Close()
	}
}

// Serve accepts on every listener until Shutdown (or Close), and returns
// the first error that ended an accept loop otherwise.
func (s *Server) Serve() error {
	s.mu.Lock()
	s.init()
	ls := append([]*Listener(nil), s.listeners...)
	s.mu.Unlock()
	g := listen.Group{Log: s.Log}
	for _, l := range ls {
		g.Go(s.Name+" "+l.Kind+" "+l.Addr().String(), func() error { return s.accept(l) })
	}
	return g.Wait()
}

// ServeListener adds l and accepts on it until Shutdown (or its Close).
func (s *Server) ServeListener(l *Listener) error {
	s.Add(l)
	return s.accept(l)
}

// ServeConn admits and serves a connection accepted elsewhere as one of
// a plain listener of kind.
func (s *Server) ServeConn(kind string, c net.Conn) {
	s.mu.Lock()
	s.init()
	s.mu.Unlock()
	s.start(&Listener{Kind: kind}, c)
}

func (s *Server) accept(l *Listener) error {
	return Accept(l, s.Log, func(c net.Conn) { s.start(l, c) })
}

// Accept is the accept loop: it hands each connection to handle until l
// is closed. Errors that pass (out of file descriptors and the like) are
// retried with a growing pause, as net/http does, rather than spun on or
// given up.
func Accept(l net.Listener, log *slog.Logger, handle func(net.Conn)) error {
	var delay time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			var temp interface{ Temporary() bool }
			if errors.As(err, &ne) && ne.Timeout() || errors.As(err, &temp) && temp.Temporary() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				log.Warn("accept", "addr", l.Addr().String(), "err", err, "retry_in", delay)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		handle(c)
	}
}

// start admits c in a goroutine of its own (a refusal's write must not
// hold the accept loop) and runs the handler.
func (s *Server) start(l *Listener, raw net.Conn) {
	go func() {
		defer listen.Recover(s.Log, s.Name+" connection")
		c, ok := s.admit(l, raw)
		if !ok {
			return
		}
		defer func() {
			if r := recover(); r != nil {
				c.Close()
				panic(r)
			}
		}()
		if l.TLS != nil {
			if _, err := c.handshake(tls.Server(c, l.TLS)); err != nil {
				c.Log.Debug("TLS handshake failed", "err", err)
				c.Close()
				return
			}
		}
		s.Handle(c)
	}()
}

// admit counts the connection against the limits, or refuses it.
func (s *Server) admit(l *Listener, raw net.Conn) (*Conn, bool) {
	var lim Limits
	if s.Limits != nil {
		lim = s.Limits()
	}
	id := s.IDPrefix + strconv.FormatUint(s.nextID.Add(1), 36)
	addr, err := s.addrOf(l.Kind, raw)
	log := s.Log.With("conn", id, "ip", addr)
	if err != nil {
		maillog.Rejected(log, maillog.Rejection{Stage: "connect", Reason: err.Error()})
		raw.Close()
		return nil, false
	}
	c := &Conn{Conn: raw, Log: log, srv: s, id: id, kind: l.Kind, addr: addr, limits: lim}
	s.mu.Lock()
	admitted, why := false, ShuttingDown
	switch {
	case s.stopping:
	case lim.MaxConnections > 0 && len(s.conns) >= lim.MaxConnections:
		why = TooMany
	case lim.PerAddr > 0 && s.addrs[addr] >= lim.PerAddr:
		why = TooManyFromAddr
	default:
		admitted = true
		s.conns[c] = struct{}{}
		s.addrs[addr]++
	}
	s.mu.Unlock()
	if !admitted {
		refused.count(s.Name, why)
		line := ""
		if s.Refuse != nil && l.TLS == nil {
			line = s.Refuse(why)
		}
		maillog.Rejected(log, maillog.Rejection{Stage: "connect", Code: replyCode(line), Reason: why.String()})
		if line != "" {
			raw.SetWriteDeadline(time.Now().Add(goodbyeTime))
			io.WriteString(raw, line+"\r\n")
		}
		raw.Close()
		return nil, false
	}
	log.Debug("connect", "listener", l.Kind)
	return c, true
}

// replyCode is the number a refusal line starts with (SMTP's 421), for
// the mail log; 0 for the other protocols.
func replyCode(line string) int {
	if len(line) >= 3 {
		if n, err := strconv.Atoi(line[:3]); err == nil {
			return n
		}
	}
	return 0
}

func (s *Server) addrOf(kind string, c net.Conn) (string, error) {
	if s.Addr != nil {
		return s.Addr(kind, c)
	}
	return AddrOf(c), nil
}

// AddrOf is the client address of c as limits and logs name it: the IP of
// a TCP peer, "local" for a unix socket's.
func AddrOf(c net.Conn) string {
	switch a := c.RemoteAddr().(type) {
	case *net.TCPAddr:
		return a.IP.String()
	case *net.UnixAddr:
		return "local"
	case nil:
		return "local"
	default:
		if h, _, err := net.SplitHostPort(a.String()); err == nil {
			return h
		}
		return a.String()
	}
}

// remove forgets a closed connection and gives back its slots.
func (s *Server) remove(c *Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.conns[c]; !ok {
		return
	}
	delete(s.conns, c)
	if s.addrs[c.addr]--; s.addrs[c.addr] <= 0 {
		delete(s.addrs, c.addr)
	}
	if c.user != "" {
		if s.users[c.user]--; s.users[c.user] <= 0 {
			delete(s.users, c.user)
		}
	}
	if s.stopping && len(s.conns) == 0 {
		close(s.drained)
	}
}

// Open is how many connections are open.
func (s *Server) Open() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

func (s *Server) list() []*Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*Conn, 0, len(s.conns))
	for c := range s.conns {
		out = append(out, c)
	}
	return out
}

// Shutdown stops accepting and ends every connection within grace: each
// session's next read (at once for one waiting for its client) fails with
// ErrShutdown and its loop says the protocol's goodbye; a session inside a
// transaction (SetBusy) finishes it first. At grace the reads of busy
// sessions fail too, and a moment later whatever is still open is closed.
// It returns once every connection is closed.
func (s *Server) Shutdown(grace time.Duration) {
	deadline := time.Now().Add(grace)
	s.mu.Lock()
	s.init()
	if s.stopping {
		s.mu.Unlock()
		<-s.drained
		return
	}
	s.stopping = true
	s.cancel()
	if len(s.conns) == 0 {
		close(s.drained)
	}
	for _, l := range s.listeners {
		l.Close()
	}
	s.mu.Unlock()
	for _, c := range s.list() {
		c.stop(false)
	}
	if !s.wait(deadline) {
		s.Log.Warn("shutdown grace over; ending busy sessions", "open", s.Open())
		for _, c := range s.list() {
			c.stop(true)
		}
		// Time for the goodbye of a session whose read was just cut.
		if !s.wait(time.Now().Add(goodbyeTime)) {
			for _, c := range s.list() {
				c.Close()
			}
		}
	}
	<-s.drained
}

// goodbyeTime bounds the last write of a session: the goodbye after a cut
// read, and the refusal of a connection.
const goodbyeTime = time.Second

func (s *Server) wait(deadline time.Time) bool {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-s.drained:
		return true
	case <-t.C:
		return false
	}
}

// Stopping reports whether Shutdown has begun.
func (s *Server) Stopping() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopping
}

// Run serves until done is closed, then shuts down within grace. It
// returns the error of an accept loop that failed, if any.
func (s *Server) Run(done <-chan struct{}, grace time.Duration) error {
	errc := make(chan error, 1)
	go func() { errc <- s.Serve() }()
	var err error
	select {
	case <-done:
	case err = <-errc:
		errc = nil
		if err != nil {
			err = fmt.Errorf("%s: %w", s.Name, err)
		}
	}
	s.Shutdown(grace)
	if errc != nil {
		<-errc
	}
	return err
}
