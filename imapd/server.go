package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"tern/common/auth"
	"tern/common/authguard"
	"tern/common/config"
	"tern/common/listen"
)

// server is imapd: its listeners, its sessions, and what they share.
//
// imapserver decides whether a password may be sent in the clear with one
// global option (InsecureAuth) and offers STARTTLS whenever it has a TLS
// configuration. tern's rule is per connection: plaintext authentication
// is allowed without TLS only from loopback (DESIGN.md), and implicit-TLS
// connections need no STARTTLS. So there are three imapserver instances
// with the same backend, and each accepted connection is handed to the
// one whose options fit it.
type server struct {
	cfg    *config.Config
	log    *slog.Logger
	users  *auth.DB
	tls    *tls.Config
	hub    *watchHub
	limits *connLimits
	// headers holds the parsed headers SEARCH looks at (headercache.go).
	headers *headerCache
	// uidShare shares the UID lists of sessions on the same folder.
	uidShare *uidShare
	// guard is the login delay shared with smtpd and pop3d (throttle.go).
	guard *authguard.Guard

	remote, loopback, implicit    *imapserver.Server
	remoteL, loopbackL, implicitL *chanListener

	open   atomic.Int64
	nextID atomic.Uint64

	mu       sync.Mutex
	sessions map[*session]struct{}
	closing  bool
}

// searchHeaderCacheBytes bounds the per-process cache of the headers SEARCH
// parses (a few hundred bytes a message): 32 MiB keeps every header of
// some 100,000 messages, so that repeated header searches of the busy
// mailboxes read no files, while the memory stays small beside the
// connections'.
const searchHeaderCacheBytes = 32 << 20

// caps are the capabilities imapd implements (advertised per state by
// imapserver). APPENDLIMIT comes from session.AppendLimit.
var caps = imap.CapSet{
	imap.CapIMAP4rev1:        {},
	imap.CapIMAP4rev2:        {},
	imap.CapNamespace:        {},
	imap.CapUIDPlus:          {},
	imap.CapESearch:          {},
	imap.CapSearchRes:        {},
	imap.CapListExtended:     {},
	imap.CapListStatus:       {},
	imap.CapMove:             {},
	imap.CapStatusSize:       {},
	imap.CapBinary:           {},
	imap.CapChildren:         {},
	imap.CapSpecialUse:       {},
	imap.CapCreateSpecialUse: {},
	imap.CapLiteralPlus:      {},
	imap.CapUnauthenticate:   {},
}

func newServer(cfg *config.Config, log *slog.Logger, users *auth.DB, tlsConfig *tls.Config) *server {
	s := &server{
		cfg:      cfg,
		log:      log,
		users:    users,
		tls:      tlsConfig,
		hub:      newWatchHub(log),
		limits:   newConnLimits(cfg.IMAPD.MaxConnectionsPerIP, cfg.IMAPD.MaxConnectionsPerUser),
		headers:  newHeaderCache(searchHeaderCacheBytes),
		uidShare: newUIDShare(),
		sessions: make(map[*session]struct{}),
	}
	s.guard = authguard.OpenOrOff(cfg.StateDir, cfg.Login, log)
	opts := func(insecure bool, tlsc *tls.Config) *imapserver.Options {
		return &imapserver.Options{
			NewSession:   s.newSession,
			Caps:         caps,
			Logger:       printfLogger{log},
			TLSConfig:    tlsc,
			InsecureAuth: insecure,
		}
	}
	s.remote = imapserver.New(opts(false, tlsConfig))
	s.loopback = imapserver.New(opts(true, tlsConfig))
	// Implicit TLS: the connection is already private, and STARTTLS
	// makes no sense on it (RFC 8314 3.2).
	s.implicit = imapserver.New(opts(true, nil))
	s.remoteL, s.loopbackL, s.implicitL = newChanListener(), newChanListener(), newChanListener()
	go s.remote.Serve(s.remoteL)
	go s.loopback.Serve(s.loopbackL)
	go s.implicit.Serve(s.implicitL)
	return s
}

// printfLogger gives imapserver's Printf-style messages to slog.
type printfLogger struct{ log *slog.Logger }

func (l printfLogger) Printf(format string, args ...any) {
	l.log.Warn("imap", "msg", fmt.Sprintf(format, args...))
}

// serve accepts connections on ln until it is closed. With implicitTLS
// the TLS handshake comes first (RFC 8314, port 993).
func (s *server) serve(ln net.Listener, implicitTLS bool) error {
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return fmt.Errorf("accept: %w", err)
		}
		delay = 0
		go s.handle(c, implicitTLS)
	}
}

// handle applies the connection limits and hands the connection to the
// imapserver instance that fits it.
func (s *server) handle(c net.Conn, implicitTLS bool) {
	defer listen.Recover(s.log, "imap connection")
	ip := hostOf(c.RemoteAddr())
	id := s.nextID.Add(1)
	log := s.log.With("conn", id, "ip", ip)

	refuse := func(text string) {
		log.Info("connection refused", "event", "rejected", "reason", text)
		c.SetWriteDeadline(time.Now().Add(time.Second))
		if implicitTLS {
			c.Close()
			return
		}
		fmt.Fprintf(c, "* BYE [LIMIT] %s\r\n", text)
		c.Close()
	}
	s.mu.Lock()
	closing := s.closing
	s.mu.Unlock()
	if closing {
		refuse("Server shutting down")
		return
	}
	if s.open.Add(1) > int64(s.cfg.IMAPD.MaxConnections) {
		s.open.Add(-1)
		refuse("Too many connections")
		return
	}
	releaseIP, ok := s.limits.acquireIP(ip)
	if !ok {
		s.open.Add(-1)
		refuse("Too many connections from your address")
		return
	}
	release := func() { releaseIP(); s.open.Add(-1) }

	var conn net.Conn = c
	if implicitTLS {
		tc := tls.Server(c, s.tls)
		tc.SetDeadline(time.Now().Add(min(s.cfg.IMAPD.HandshakeTimeout.D(), s.cfg.Login.Timeout.D())))
		if err := tc.Handshake(); err != nil {
			log.Debug("TLS handshake failed", "err", err)
			c.Close()
			release()
			return
		}
		tc.SetDeadline(time.Time{})
		conn = tc
	}
	lc := newLineConn(conn, s.cfg.IMAPD.MaxLineLength, s.cfg.IMAPD.IdleTimeout.D(), int64(s.cfg.IMAPD.MaxLiteralSize))
	lc.id, lc.ip, lc.log, lc.release = id, ip, log, release
	lc.loginTimeout = s.cfg.Login.Timeout.D()
	log.Debug("connected", "tls", implicitTLS)

	target := s.remoteL
	switch {
	case implicitTLS:
		target = s.implicitL
	case listen.IsLoopback(c.RemoteAddr()):
		target = s.loopbackL
	}
	if !target.deliver(lc) {
		lc.Close()
	}
}

func hostOf(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	return a.String()
}

// newSession is imapserver's NewSession.
func (s *server) newSession(c *imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
	lc, _ := c.NetConn().(*lineConn)
	sess := &session{srv: s, conn: c, log: s.log}
	if lc != nil {
		sess.log, sess.ip = lc.log, lc.ip
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return nil, nil, &imap.Error{Type: imap.StatusResponseTypeBye, Text: "Server shutting down"}
	}
	s.sessions[sess] = struct{}{}
	return sess, nil, nil
}

func (s *server) forget(sess *session) {
	s.mu.Lock()
	delete(s.sessions, sess)
	s.mu.Unlock()
}

// shutdown says BYE to every session (RFC 3501 7.1.5) and closes them,
// within grace.
func (s *server) shutdown(grace time.Duration) {
	s.mu.Lock()
	s.closing = true
	sessions := make([]*session, 0, len(s.sessions))
	for sess := range s.sessions {
		sessions = append(sessions, sess)
	}
	s.mu.Unlock()

	var wg sync.WaitGroup
	for _, sess := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer listen.Recover(s.log, "bye")
			sess.conn.Bye("Server shutting down")
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace / 2):
		s.log.Warn("some sessions did not take BYE in time")
	}
	// imapserver's own Close races with a Serve that is just starting, so
	// the listeners and connections are closed here instead.
	for _, l := range []*chanListener{s.remoteL, s.loopbackL, s.implicitL} {
		l.Close()
	}
	for _, sess := range sessions {
		sess.conn.NetConn().Close()
	}
	s.log.Info("sessions closed", "count", len(sessions))
}

// chanListener is a net.Listener fed by server.handle, so that one accept
// loop can route connections to several imapserver instances.
type chanListener struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newChanListener() *chanListener {
	return &chanListener{ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *chanListener) deliver(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.done:
		return false
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return &net.TCPAddr{} }
