package serve

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Conn is an admitted connection. It is a net.Conn (the accepted socket)
// whose reads fail with ErrShutdown once the server shuts down and whose
// read deadlines are capped by LoginTimeout until Login; the handler's
// protocol loop reads and writes through it, or through the TLS
// connection over it (TLS, StartTLS).
type Conn struct {
	net.Conn
	// Log is the server's logger with the connection's id and client.
	Log *slog.Logger

	srv    *Server
	id     string
	kind   string
	addr   string
	limits Limits

	// stopping: 0 serving, 1 shutting down (reads fail unless busy), 2
	// the drain is over (every read fails).
	stopping atomic.Int32
	busy     atomic.Bool
	loggedIn atomic.Bool

	mu   sync.Mutex
	tls  *tls.Conn
	user string // guarded by srv.mu

	closeOnce sync.Once
}

// ID is the connection's id in the log.
func (c *Conn) ID() string { return c.id }

// Kind is the kind of listener that accepted the connection.
func (c *Conn) Kind() string { return c.kind }

// Client is the client's address as the limits count it (Server.Addr).
func (c *Conn) Client() string { return c.addr }

// Limits are the limits the connection was admitted under.
func (c *Conn) Limits() Limits { return c.limits }

// Read reads from the connection; once the server shuts down it fails
// with ErrShutdown, except inside a transaction (SetBusy) until the
// drain's deadline.
func (c *Conn) Read(p []byte) (int, error) {
	if c.cut() {
		return 0, ErrShutdown
	}
	n, err := c.Conn.Read(p)
	if err != nil && c.cut() && errors.Is(err, os.ErrDeadlineExceeded) {
		// Shutdown moved the deadline to now to end this wait.
		return n, ErrShutdown
	}
	return n, err
}

// cut reports whether reads fail with ErrShutdown.
func (c *Conn) cut() bool {
	switch c.stopping.Load() {
	case 0:
		return false
	case 1:
		return !c.busy.Load()
	}
	return true
}

// stop is Shutdown's word to the connection: an idle session's pending
// read ends at once; a busy one's next read after its transaction fails
// (force: its pending read too).
func (c *Conn) stop(force bool) {
	if force {
		c.stopping.Store(2)
	} else {
		c.stopping.CompareAndSwap(0, 1)
	}
	// Stored before the deadline moves: a read that starts after this
	// sees the state; one already waiting is woken by the deadline.
	if c.cut() {
		c.Conn.SetReadDeadline(time.Now())
	}
}

// Stopping reports whether the server is shutting down.
func (c *Conn) Stopping() bool { return c.stopping.Load() != 0 }

// SetBusy marks the session as inside a transaction (SMTP's DATA, an
// IMAP APPEND's literal): a shutdown lets it finish before the goodbye.
func (c *Conn) SetBusy(b bool) { c.busy.Store(b) }

// SetReadDeadline sets the read deadline, no later than LoginTimeout from
// now until Login: a client that has not logged in cannot hold a
// connection longer, whatever the protocol's idle timeout.
func (c *Conn) SetReadDeadline(t time.Time) error {
	return c.Conn.SetReadDeadline(c.capped(t))
}

// SetDeadline sets both deadlines, the read one capped as in
// SetReadDeadline.
func (c *Conn) SetDeadline(t time.Time) error {
	if err := c.Conn.SetWriteDeadline(t); err != nil {
		return err
	}
	return c.SetReadDeadline(t)
}

func (c *Conn) capped(t time.Time) time.Time {
	if d := c.limits.LoginTimeout; d > 0 && !c.loggedIn.Load() {
		if max := time.Now().Add(d); t.IsZero() || t.After(max) {
			return max
		}
	}
	return t
}

// Login ends the login stage: read deadlines are no longer capped by
// LoginTimeout. A user ("" for a session that is past login without an
// account, such as an SMTP client after EHLO) takes one of the user's
// PerUser slots until the connection closes or Logout; false, and nothing
// changed, when the user has none left.
func (c *Conn) Login(user string) bool {
	s := c.srv
	s.mu.Lock()
	if _, open := s.conns[c]; open && user != "" && c.user != user {
		if c.limits.PerUser > 0 && s.users[user] >= c.limits.PerUser {
			s.mu.Unlock()
			refused.count(s.Name, TooManyForUser)
			return false
		}
		c.releaseUserLocked()
		s.users[user]++
		c.user = user
	}
	s.mu.Unlock()
	c.loggedIn.Store(true)
	return true
}

// Logout gives back the user's slot and starts the login stage again
// (IMAP UNAUTHENTICATE, RFC 8437).
func (c *Conn) Logout() {
	c.srv.mu.Lock()
	c.releaseUserLocked()
	c.srv.mu.Unlock()
	c.loggedIn.Store(false)
}

func (c *Conn) releaseUserLocked() {
	if c.user == "" {
		return
	}
	s := c.srv
	if s.users[c.user]--; s.users[c.user] <= 0 {
		delete(s.users, c.user)
	}
	c.user = ""
}

// TLS is the TLS connection over c (implicit TLS or after StartTLS), nil
// in the clear.
func (c *Conn) TLS() *tls.Conn {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tls
}

// Stream is what the session reads and writes: the TLS connection, or c.
func (c *Conn) Stream() net.Conn {
	if t := c.TLS(); t != nil {
		return t
	}
	return c
}

// StartTLS runs the server's side of a TLS handshake on c (STARTTLS,
// STLS), under HandshakeTimeout and LoginTimeout. The caller drops what
// it had buffered before (RFC 3207 4.2, RFC 2595 3.1: nothing sent
// before the handshake is acted on).
func (c *Conn) StartTLS(cfg *tls.Config) (*tls.Conn, error) {
	return c.handshake(tls.Server(c, cfg))
}

func (c *Conn) handshake(tc *tls.Conn) (*tls.Conn, error) {
	d := c.limits.HandshakeTimeout
	if l := c.limits.LoginTimeout; d == 0 || l > 0 && l < d {
		d = l
	}
	if d > 0 {
		c.Conn.SetDeadline(time.Now().Add(d))
	}
	err := tc.Handshake()
	c.Conn.SetDeadline(time.Time{})
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.tls = tc
	c.mu.Unlock()
	return tc, nil
}

// CloseWrite shuts the server's side of a TCP or unix connection, so that
// a session can end without a reset.
func (c *Conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// Close closes the connection and gives back its slots.
func (c *Conn) Close() error {
	err := net.ErrClosed
	c.closeOnce.Do(func() {
		err = c.Conn.Close()
		c.srv.remove(c)
		c.Log.Debug("disconnected")
	})
	return err
}

// Goodbye writes a protocol's last line (CRLF added) on the session's
// transport with a short deadline, for a loop that ends on ErrShutdown.
func (c *Conn) Goodbye(line string) {
	c.Conn.SetWriteDeadline(time.Now().Add(goodbyeTime))
	c.Stream().Write([]byte(line + "\r\n"))
}

// DeadlineWriter sets a write deadline before every write, so that a
// client that stops reading cannot hold a session forever.
type DeadlineWriter struct {
	Conn    net.Conn
	Timeout time.Duration
}

func (d DeadlineWriter) Write(p []byte) (int, error) {
	d.Conn.SetWriteDeadline(time.Now().Add(d.Timeout))
	return d.Conn.Write(p)
}
