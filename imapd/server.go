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

	"tern/common/auth"
	"tern/common/authguard"
	"tern/common/config"
	"tern/common/daemon"
	"tern/common/listen"
	"tern/common/maillog"
)

// server is imapd: its listeners, its sessions, and what they share.
// Each accepted connection is one session (conn.go) with its own
// connection loop; whether a password may be sent in the clear and
// whether STARTTLS is offered are decided per connection there.
type server struct {
	// live is the configuration in force, which SIGHUP may replace: a
	// session reads it through cfg when it needs a key.
	live   *config.Live
	log    *slog.Logger
	users  *auth.DB
	tls    *tls.Config
	hub    *watchHub
	limits *connLimits
	// headers holds the parsed headers SEARCH looks at (headercache.go).
	headers *headerCache
	// fetchInfo holds what FETCH derives from message files
	// (fetchcache.go).
	fetchInfo *fetchCache
	// sortKeys holds only the SORT and THREAD keys of headers (sort.go).
	sortKeys *sortKeyCache
	// uidShare shares the UID lists of sessions on the same folder.
	uidShare *uidShare
	// guard is the login delay shared with smtpd and pop3d (throttle.go).
	guard *authguard.Guard

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

// sortKeyCacheBytes bounds the cache of SORT and THREAD keys (some 300
// bytes a message): 64 MiB keeps those of some 200,000 messages, so that a
// warm SORT of a folder too big for the header cache reads no file either
// (a scan of a folder bigger than an LRU cache would miss every time).
const sortKeyCacheBytes = 64 << 20

// cfg is the configuration in force.
func (s *server) cfg() *config.Config { return s.live.Load() }

func newServer(cfg *config.Config, log *slog.Logger, users *auth.DB, tlsConfig *tls.Config) *server {
	s := &server{
		live:      daemon.Live(cfg),
		log:       log,
		users:     users,
		tls:       tlsConfig,
		hub:       newWatchHub(log),
		limits:    newConnLimits(cfg.IMAPD.MaxConnectionsPerIP, cfg.IMAPD.MaxConnectionsPerUser),
		headers:   newHeaderCache(searchHeaderCacheBytes),
		sortKeys:  newSortKeyCache(sortKeyCacheBytes),
		fetchInfo: newFetchCache(int(cfg.IMAPD.MessageCacheSize)),
		uidShare:  newUIDShare(),
		sessions:  make(map[*session]struct{}),
	}
	s.guard = authguard.OpenOrOff(cfg.StateDir, cfg.Login, log)
	return s
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

// handle applies the connection limits and serves the connection.
func (s *server) handle(c net.Conn, implicitTLS bool) {
	defer listen.Recover(s.log, "imap connection")
	ip := hostOf(c.RemoteAddr())
	id := s.nextID.Add(1)
	log := s.log.With("conn", id, "ip", ip)

	refuse := func(text string) {
		maillog.Rejected(log, maillog.Rejection{Stage: "connect", Reason: text})
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
	if s.open.Add(1) > int64(s.cfg().IMAPD.MaxConnections) {
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

	sess := newSession(s, c, id, ip, implicitTLS)
	sess.releaseConn = release
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		release()
		c.Close()
		return
	}
	s.sessions[sess] = struct{}{}
	s.mu.Unlock()
	sess.serve()
}

func hostOf(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	return a.String()
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
			sess.bye("Server shutting down")
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace / 2):
		s.log.Warn("some sessions did not take BYE in time")
	}
	for _, sess := range sessions {
		sess.raw.Close()
	}
	s.log.Info("sessions closed", "count", len(sessions))
}
