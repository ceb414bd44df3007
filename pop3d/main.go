// Command pop3d is tern's POP3 server (RFC 1939), with CAPA (RFC 2449),
// STLS (RFC 2595), SASL PLAIN and LOGIN (RFC 5034) and implicit TLS on the
// tls_listen addresses. It serves each user's INBOX from the Maildir tree
// through common/maildir, beside imapd.
//
// A session sees the INBOX as it was at login, numbered 1 to n. DELE only
// marks; the marked messages are removed only by QUIT in the TRANSACTION
// state. A dropped connection, a timeout, a shutdown or a crash remove
// nothing. One POP3 session per mailbox at a time (the maildir store's
// "pop3" lock; others get -ERR [IN-USE]); IMAP sessions are not affected.
// UIDL is the message's Maildir key, stable across flag changes and
// restarts. RETR leaves \Seen as it was unless pop3d.mark_seen is set.
//
// The manual is tern-pop3d(8).
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"tern/common/auth"
	"tern/common/authguard"
	"tern/common/config"
	"tern/common/daemon"
	"tern/common/tlsconf"
)

func main() { daemon.Main(pop3d) }

// pop3d is pop3d as common/daemon runs it: its listeners by kind, its
// metrics key and the Run that serves them.
var pop3d = daemon.Daemon{Name: "pop3d", Run: run, Maildirs: true,
	Metrics: func(c *config.Config) string { return c.POP3D.Metrics },
	Listeners: func(c *config.Config) []daemon.Listeners {
		return []daemon.Listeners{{Kind: "pop3", Addrs: c.POP3D.Listen}, {Kind: "pop3s", Addrs: c.POP3D.TLSListen}}
	},
}

func run(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	log.Info("pop3d configuration", "listen", cfg.POP3D.Listen, "tls_listen", cfg.POP3D.TLSListen,
		"maildir", cfg.Maildir, "users", cfg.Users, "idle_timeout", cfg.POP3D.IdleTimeout.D(),
		"max_connections", cfg.POP3D.MaxConnections, "max_connections_per_ip", cfg.POP3D.MaxConnectionsPerIP,
		"max_auth_failures", cfg.POP3D.MaxAuthFailures, "max_errors", cfg.POP3D.MaxErrors, "mark_seen", cfg.POP3D.MarkSeen)
	users, err := auth.Open(cfg.Users, cfg.Domains[0], log)
	if err != nil {
		return fmt.Errorf("users: %w", err)
	}
	tlsConfig, err := tlsconf.Load(cfg.TLS, cfg.Hostname)
	if err != nil {
		if len(cfg.POP3D.TLSListen) > 0 {
			return fmt.Errorf("tls: %w", err)
		}
		// Without a certificate only loopback clients can log in; say so
		// instead of failing, as plain POP3 on loopback still works.
		log.Warn("no TLS: STLS is not offered and logins work on loopback only", "err", err)
		tlsConfig = nil
	}
	srv := newServer(cfg, users, tlsConfig, optionsFrom(cfg, daemon.ShutdownGrace), log)
	srv.live = daemon.Live(cfg)
	if err := errors.Join(srv.conns.Listen("pop3", cfg.POP3D.Listen, nil),
		srv.conns.Listen("pop3s", cfg.POP3D.TLSListen, tlsConfig)); err != nil {
		srv.conns.Close()
		return err
	}
	if srv.guard = authguard.OpenOrOff(cfg.StateDir, cfg.Login, log); srv.guard != nil {
		defer srv.guard.Close()
	}
	return daemon.Serve(ctx, cfg, log, srv.conns)
}
