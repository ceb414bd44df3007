package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"tern/common/auth"
	"tern/common/authguard"
	"tern/common/cluster"
	"tern/common/config"
	"tern/common/listen"
	"tern/common/maillog"
)

// options are the limits and switches of pop3d, from the [pop3d] section.
type options struct {
	idleTimeout     time.Duration
	maxConnections  int
	maxAuthFailures int
	maxErrors       int
	markSeen        bool
	// loginTimeout bounds the TLS handshake and each command wait before
	// login ([login] timeout).
	loginTimeout time.Duration
	// shutdownGrace is how long sessions have to end after shutdown
	// starts before their connections are cut.
	shutdownGrace time.Duration
}

func optionsFrom(cfg *config.Config, grace time.Duration) options {
	c := cfg.POP3D
	return options{
		idleTimeout:    c.IdleTimeout.D(),
		maxConnections: c.MaxConnections,
		// Both keys limit failed logins per connection; the stricter wins.
		maxAuthFailures: min(c.MaxAuthFailures, cfg.Login.MaxFailures),
		maxErrors:       c.MaxErrors,
		markSeen:        c.MarkSeen,
		loginTimeout:    min(cfg.Login.Timeout.D(), c.IdleTimeout.D()),
		shutdownGrace:   grace,
	}
}

// server accepts POP3 connections on any number of listeners and runs a
// session for each.
type server struct {
	hostname string
	maildir  string // the maildir template of tern.toml
	users    *auth.DB
	tls      *tls.Config // nil: no STLS and no implicit TLS
	opts     options
	// live, when set, is the daemon's configuration: each new session
	// takes its options from the one in force (SIGHUP may change it)
	// instead of opts.
	live *config.Live
	log  *slog.Logger
	// guard is the per-address login delay shared with smtpd and imapd;
	// nil when its table could not be opened (logins are then only
	// limited per connection).
	guard *authguard.Guard
	// cluster keeps users on their home hosts (proxy.go); nil: none.
	cluster *cluster.Cluster
	// ctx ends when shutdown starts, cutting short login delays.
	ctx    context.Context
	cancel context.CancelFunc

	stopping atomic.Bool   // set once, when shutdown starts
	active   atomic.Int64  // open connections, for max_connections
	nextID   atomic.Uint64 // connection ids for the log
	wg       sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]struct{} // raw connections of running sessions
}

func newServer(cfg *config.Config, users *auth.DB, tlsConfig *tls.Config, opts options, log *slog.Logger) *server {
	ctx, cancel := context.WithCancel(context.Background())
	return &server{
		hostname: cfg.Hostname,
		maildir:  cfg.Maildir,
		users:    users,
		tls:      tlsConfig,
		opts:     opts,
		log:      log,
		ctx:      ctx,
		cancel:   cancel,
		conns:    make(map[net.Conn]struct{}),
	}
}

// options are the session options in force.
func (srv *server) options() options {
	if srv.live == nil {
		return srv.opts
	}
	return optionsFrom(srv.live.Load(), srv.opts.shutdownGrace)
}

// listener is a listener and whether its connections start with TLS.
type listener struct {
	net.Listener
	implicitTLS bool
}

// run serves on every listener until ctx ends, then shuts down: listeners
// close, each session is told (its pending read ends at once and it sends
// "-ERR [SYS/TEMP]" without removing anything), and connections still open
// after the grace period are cut. It returns once every session is gone.
func (srv *server) run(ctx context.Context, ls []listener) error {
	var g listen.Group
	g.Log = srv.log
	for _, l := range ls {
		g.Go("accept "+l.Addr().String(), func() error { return srv.accept(l) })
	}
	<-ctx.Done()
	srv.stopping.Store(true)
	srv.cancel()
	for _, l := range ls {
		l.Close()
	}
	err := g.Wait()
	srv.interruptAll()
	done := make(chan struct{})
	go func() { srv.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(srv.options().shutdownGrace):
		srv.log.Warn("sessions did not end in time; closing their connections")
		srv.closeAll()
		<-done
	}
	return err
}

// accept runs the accept loop of one listener.
func (srv *server) accept(l listener) error {
	var delay time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			if srv.stopping.Load() || errors.Is(err, net.ErrClosed) {
				return nil
			}
			// Out of file descriptors and the like: back off, as
			// net/http does, rather than spin or give up.
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				srv.log.Warn("accept", "err", err, "retry_in", delay)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		srv.start(c, l.implicitTLS)
	}
}

func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// start runs a session for c, or refuses c when max_connections are open.
func (srv *server) start(c net.Conn, implicitTLS bool) {
	id := strconv.FormatUint(srv.nextID.Add(1), 36)
	if n := srv.active.Add(1); n > int64(srv.options().maxConnections) {
		srv.active.Add(-1)
		maillog.Rejected(srv.log.With("ip", c.RemoteAddr().String()), maillog.Rejection{Stage: "connect", Reason: fmt.Sprintf("too many connections (%d)", srv.options().maxConnections)})
		// Over implicit TLS the refusal would need a handshake first;
		// closing is the clearer answer there.
		if !implicitTLS {
			c.SetWriteDeadline(time.Now().Add(closingWriteTimeout))
			c.Write([]byte("-ERR [SYS/TEMP] too many connections, try again later\r\n"))
		}
		c.Close()
		return
	}
	srv.mu.Lock()
	srv.conns[c] = struct{}{}
	srv.mu.Unlock()
	srv.wg.Add(1)
	go func() {
		defer srv.wg.Done()
		defer srv.active.Add(-1)
		defer func() {
			srv.mu.Lock()
			delete(srv.conns, c)
			srv.mu.Unlock()
		}()
		defer listen.Recover(srv.log, "pop3 session")
		newSession(srv, c, id, implicitTLS).serve()
	}()
	// A session started after interruptAll ran would not be told.
	if srv.stopping.Load() {
		c.SetReadDeadline(time.Now())
	}
}

// interruptAll ends the pending read of every session; each then sees
// stopping and says goodbye.
func (srv *server) interruptAll() {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	for c := range srv.conns {
		c.SetReadDeadline(time.Now())
	}
}

// closeAll cuts every connection.
func (srv *server) closeAll() {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	for c := range srv.conns {
		c.Close()
	}
}
