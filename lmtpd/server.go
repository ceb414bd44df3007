package main

import (
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"

	"tern/common/config"
	"tern/common/smtpserver"
)

// server is tern's SMTP server (common/smtpserver) in LMTP mode, the one
// smtpd runs too, plus a registry of open connections, so that a shutdown
// can answer each with 421 (RFC 5321 3.8) once its transaction is over.
type server struct {
	smtp  *smtpserver.Server
	agent *agent
	log   *slog.Logger

	nextID atomic.Uint64

	mu       sync.Mutex
	ls       []net.Listener
	conns    map[*conn]struct{}
	stopping bool
	drained  chan struct{} // closed when stopping and conns is empty
}

func newServer(cfg *config.Config, a *agent, log *slog.Logger) *server {
	s := &server{agent: a, log: log, conns: map[*conn]struct{}{}, drained: make(chan struct{})}
	s.smtp = lmtpSettings(cfg, s, log)
	// Each new connection gets the limits and timeouts in force when it
	// is accepted (SIGHUP may have changed them).
	s.smtp.Settings = func() *smtpserver.Server { return lmtpSettings(a.cfg(), s, log) }
	return s
}

// lmtpSettings configures the protocol loop from cfg.
func lmtpSettings(cfg *config.Config, s *server, log *slog.Logger) *smtpserver.Server {
	return &smtpserver.Server{
		Backend:         s,
		LMTP:            true,
		Domain:          cfg.Hostname,
		MaxMessageBytes: int64(cfg.LMTPD.MaxMessageSize),
		MaxRecipients:   cfg.LMTPD.MaxRecipients,
		MaxLineLength:   cfg.LMTPD.MaxLineLength,
		MaxErrors:       cfg.LMTPD.MaxErrors,
		ReadTimeout:     cfg.LMTPD.ReadTimeout.D(),
		WriteTimeout:    cfg.LMTPD.WriteTimeout.D(),
		// The message is stored as received, so 8-bit and UTF-8 content
		// and addresses need nothing more (RFC 6152, RFC 6531).
		EnableSMTPUTF8:   true,
		EnableBINARYMIME: true,
		Log:              log,
	}
}

// serve accepts connections on l until the server shuts down.
func (s *server) serve(l net.Listener) error {
	s.mu.Lock()
	s.ls = append(s.ls, l)
	s.mu.Unlock()
	return s.smtp.Serve(&trackingListener{Listener: l, s: s})
}

// NewSession implements smtpserver.Backend; it is called at LHLO.
func (s *server) NewSession(c *smtpserver.Conn) (smtp.Session, error) {
	tc, _ := c.Conn().(*conn)
	sess := &session{s: s, conn: tc, log: s.log}
	if tc != nil {
		sess.log = s.log.With("conn", tc.id, "ip", tc.RemoteAddr().String())
		tc.mu.Lock()
		tc.sess = sess
		tc.mu.Unlock()
	}
	sess.log.Debug("session started", "lhlo", c.Hostname())
	return sess, nil
}

// shutdown stops accepting, answers 421 to every idle connection at once
// and to busy ones when their transaction ends, and closes whatever is
// still open after grace.
func (s *server) shutdown(grace time.Duration) {
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		return
	}
	s.stopping = true
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	if len(s.conns) == 0 {
		close(s.drained)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.goodbyeIfIdle()
	}
	// Stop accepting, so that no new session starts during the grace
	// period; the server's Close at the end closes what is left.
	for _, l := range s.listeners() {
		l.Close()
	}
	select {
	case <-s.drained:
	case <-time.After(grace):
		s.log.Warn("shutdown grace expired, closing busy connections")
	}
	s.close()
}

func (s *server) listeners() []net.Listener {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]net.Listener(nil), s.ls...)
}

func (s *server) close() {
	s.smtp.Close()
	s.agent.close()
}

func (s *server) add(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *server) remove(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.conns[c]; !ok {
		return
	}
	delete(s.conns, c)
	if s.stopping && len(s.conns) == 0 {
		close(s.drained)
	}
}

func (s *server) isStopping() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopping
}

// trackingListener registers every accepted connection with the server.
type trackingListener struct {
	net.Listener
	s *server
}

func (l *trackingListener) Accept() (net.Conn, error) {
	for {
		nc, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		c := &conn{Conn: nc, s: l.s, id: l.s.nextID.Add(1)}
		if !l.s.add(c) {
			c.writeLine("421 4.3.2 " + l.s.smtp.Domain + " shutting down")
			nc.Close()
			continue
		}
		return c, nil
	}
}

// conn wraps a client connection: writes are serialised so that a 421
// from shutdown never interleaves with a reply, and closing unregisters it.
type conn struct {
	net.Conn
	s  *server
	id uint64

	mu     sync.Mutex // guards writes, sess, busy, closed
	sess   *session
	busy   bool // a message is being received or delivered
	closed bool
}

// Write serialises replies with the 421 of shutdown.
func (c *conn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.Conn.Write(p)
}

// CloseWrite shuts the server's side of the connection, so that the
// protocol loop can end a session without a reset.
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (c *conn) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.s.remove(c)
	return c.Conn.Close()
}

// writeLine writes one reply line, bypassing the protocol loop (used only
// when it is not about to write: at accept or between commands).
func (c *conn) writeLine(line string) {
	c.Conn.SetWriteDeadline(time.Now().Add(time.Second))
	c.Conn.Write([]byte(line + "\r\n"))
}

// goodbyeIfIdle answers 421 and closes the connection unless a message is
// in flight; the session does it itself when that message is done.
func (c *conn) goodbyeIfIdle() {
	c.mu.Lock()
	if c.busy || c.closed {
		c.mu.Unlock()
		return
	}
	c.writeLine(fmt.Sprintf("421 4.3.2 %s shutting down", c.s.smtp.Domain))
	c.mu.Unlock()
	c.Close()
}

// setBusy marks whether a message is in flight.
func (c *conn) setBusy(b bool) {
	c.mu.Lock()
	c.busy = b
	c.mu.Unlock()
}
