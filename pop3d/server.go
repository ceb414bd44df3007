package main

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"time"

	"tern/common/auth"
	"tern/common/authguard"
	"tern/common/config"
	"tern/common/serve"
)

// options are the limits and switches of pop3d, from the [pop3d] section.
type options struct {
	idleTimeout    time.Duration
	maxConnections int
	// maxConnectionsPerIP bounds the sessions of one client address.
	maxConnectionsPerIP int
	maxAuthFailures     int
	maxErrors           int
	markSeen            bool
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
		idleTimeout:         c.IdleTimeout.D(),
		maxConnections:      c.MaxConnections,
		maxConnectionsPerIP: c.MaxConnectionsPerIP,
		// Both keys limit failed logins per connection; the stricter wins.
		maxAuthFailures: min(c.MaxAuthFailures, cfg.Login.MaxFailures),
		maxErrors:       c.MaxErrors,
		markSeen:        c.MarkSeen,
		loginTimeout:    min(cfg.Login.Timeout.D(), c.IdleTimeout.D()),
		shutdownGrace:   grace,
	}
}

// server runs a POP3 session for each connection its serve.Server admits.
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
	// conns admits, counts and shuts down the connections.
	conns *serve.Server
}

func newServer(cfg *config.Config, users *auth.DB, tlsConfig *tls.Config, opts options, log *slog.Logger) *server {
	srv := &server{
		hostname: cfg.Hostname,
		maildir:  cfg.Maildir,
		users:    users,
		tls:      tlsConfig,
		opts:     opts,
		log:      log,
	}
	srv.conns = &serve.Server{
		Name: "pop3d",
		Log:  log,
		Limits: func() serve.Limits {
			o := srv.options()
			return serve.Limits{MaxConnections: o.maxConnections, PerAddr: o.maxConnectionsPerIP, LoginTimeout: o.loginTimeout}
		},
		// RFC 2449 8.1.2: SYS/TEMP, a passing problem of the server.
		Refuse: func(r serve.Refusal) string { return "-ERR [SYS/TEMP] " + r.String() + ", try again later" },
		Handle: func(c *serve.Conn) { newSession(srv, c).serve() },
	}
	return srv
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
// close, each session's pending read ends (common/serve) and it sends
// "-ERR [SYS/TEMP]" without removing anything, and connections still open
// after the grace period are cut. It returns once every session is gone.
func (srv *server) run(ctx context.Context, ls []listener) error {
	for _, l := range ls {
		sl := &serve.Listener{Listener: l.Listener, Kind: "pop3"}
		if l.implicitTLS {
			sl.Kind, sl.TLS = "pop3s", srv.tls
		}
		srv.conns.Add(sl)
	}
	return srv.conns.Run(ctx.Done(), srv.options().shutdownGrace)
}
