// Package smtpserver is tern's SMTP and LMTP server: the connection loop
// that smtpd and lmtpd share (one session, two front doors). It keeps
// go-smtp's session types, so that a daemon's session is written against
// smtp.Session, smtp.AuthSession and smtp.LMTPSession with smtp.MailOptions,
// smtp.RcptOptions and *smtp.SMTPError replies, and owns everything that
// reads the client's bytes:
//
//   - Commands are read by one strict reader on the decrypted stream, on
//     every transport (plain, after STARTTLS, implicit TLS): CRLF only,
//     a bounded line, no NUL (RFC 5321 2.3.8, 4.5.3.1.4).
//   - Protocol state is explicit (state, the commands table): a command
//     out of its state gets 503 before any handler runs (RFC 5321 4.1.4).
//   - DATA is read by a strict dot-reader that ends only at CRLF.CRLF,
//     refuses bare CR, bare LF, NUL and over-long lines, and reads on to
//     the end of data after a refusal, so a message gets exactly one reply
//     (RFC 5321 4.2.5). BDAT chunks (RFC 3030) are counted exactly; a
//     BDAT whose size cannot be read ends the connection, since its bytes
//     must never be taken for commands.
//   - STARTTLS is done by the loop itself: what the client pipelined
//     behind it is discarded (RFC 3207 4.2), a parameter gets 501 (RFC
//     3207 4), and a failed handshake ends the connection.
//   - Every refused command counts towards MaxErrors; past it, 421.
//
// The reasons tern does not use go-smtp's server: it reads commands itself
// after STARTTLS and on implicit TLS, where no wrapper under the TLS layer
// can see them, and several of its replies and limits differ from what
// tern's contract asks (HACKING.md).
package smtpserver

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"tern/common/serve"
)

// Backend starts a session when the client greets (HELO, EHLO or LHLO),
// and again after STARTTLS, where the session starts over.
type Backend interface {
	NewSession(c *Conn) (smtp.Session, error)
}

// BackendFunc is a function used as a Backend.
type BackendFunc func(c *Conn) (smtp.Session, error)

// NewSession calls f(c).
func (f BackendFunc) NewSession(c *Conn) (smtp.Session, error) { return f(c) }

// Server serves SMTP (or LMTP, RFC 2033) on listeners. Set the fields
// before Serve.
type Server struct {
	Backend Backend
	// LMTP makes this an LMTP server: LHLO instead of HELO/EHLO, and one
	// reply per recipient after the data.
	LMTP bool
	// Domain is the name in the greeting.
	Domain string
	// TLSConfig enables STARTTLS on connections that are not TLS yet.
	// A listener of implicit TLS is given as tls.NewListener.
	TLSConfig *tls.Config

	MaxMessageBytes int64 // 0 = no limit
	MaxRecipients   int   // 0 = no limit
	// MaxLineLength bounds a command line and a line of DATA content,
	// CRLF included (RFC 5321 4.5.3.1.4-6). 0 = no limit.
	MaxLineLength int
	// MaxErrors is how many refused commands a session may send; the next
	// one ends it with 421. 0 = no limit.
	MaxErrors int
	// CountRefusals makes the backend's refusals (5xx from Mail, Rcpt,
	// Data, AUTH) count towards MaxErrors, besides the protocol errors
	// the loop answers itself.
	CountRefusals bool
	// MaxJunkCommands is how many NOOP, RSET and VRFY a session may send
	// between accepted messages; the next one ends it with 421. 0 = no
	// limit.
	MaxJunkCommands int

	ReadTimeout  time.Duration
	WriteTimeout time.Duration
	// MinDataRate is the least a message's data must average, in bytes
	// per second, after a first ReadTimeout: a client that sends a byte
	// just before each timeout does not hold the connection for days
	// (slowloris). 0 = no limit.
	MinDataRate int64

	EnableSMTPUTF8   bool // RFC 6531
	EnableDSN        bool // RFC 3461
	EnableBINARYMIME bool // RFC 3030
	EnableREQUIRETLS bool // RFC 8689, offered over TLS only

	// Log gets the loop's own events (panics, handshake failures).
	Log *slog.Logger
	// Settings, when set, gives each new connection the settings it is
	// served with (every field above; Settings of the result is not used),
	// so that a daemon can change its limits while it runs (SIGHUP). The
	// connection is still tracked and closed by this Server.
	Settings func() *Server

	mu        sync.Mutex
	listeners []net.Listener
	conns     map[*Conn]struct{}
	closed    bool
	wg        sync.WaitGroup
}

// ErrServerClosed is returned by Serve after Close.
var ErrServerClosed = errors.New("smtpserver: server closed")

func (s *Server) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}

// Serve accepts connections on l (common/serve's accept loop) and serves
// each in its own goroutine until l is closed. It returns nil after Close.
// A daemon serves through common/serve's admission instead, which hands
// each connection to ServeConn.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.listeners = append(s.listeners, l)
	s.mu.Unlock()
	err := serve.Accept(l, s.log(), func(nc net.Conn) { go s.ServeConn(nc) })
	if s.isClosed() {
		return nil
	}
	return err
}

// ServeConn serves one connection, from the greeting to its end, and
// closes it. Read on a *serve.Conn, a shutdown's ErrShutdown between two
// commands is answered 421 4.3.2 (RFC 5321 3.8).
func (s *Server) ServeConn(nc net.Conn) {
	set := s
	if s.Settings != nil {
		set = s.Settings()
	}
	c := newConn(set, nc)
	if !s.track(c, true) {
		nc.Close()
		return
	}
	s.wg.Add(1)
	defer s.wg.Done()
	defer s.track(c, false)
	c.serve()
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

func (s *Server) track(c *Conn, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !add {
		delete(s.conns, c)
		return true
	}
	if s.closed {
		return false
	}
	if s.conns == nil {
		s.conns = map[*Conn]struct{}{}
	}
	s.conns[c] = struct{}{}
	return true
}

// Close closes the listeners and every open connection at once.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	var err error
	for _, l := range s.listeners {
		if e := l.Close(); e != nil && err == nil && !errors.Is(e, net.ErrClosed) {
			err = e
		}
	}
	conns := make([]*Conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
	return err
}
