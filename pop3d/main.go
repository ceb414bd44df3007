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
	"fmt"
	"log/slog"
	"net"

	"tern/common/auth"
	"tern/common/authguard"
	"tern/common/cluster"
	"tern/common/config"
	"tern/common/daemon"
	"tern/common/listen"
	"tern/common/tlsconf"
)

func main() {
	daemon.Main("pop3d", run)
}

func run(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	log.Info("pop3d configuration", "listen", cfg.POP3D.Listen, "tls_listen", cfg.POP3D.TLSListen,
		"maildir", cfg.Maildir, "users", cfg.Users, "idle_timeout", cfg.POP3D.IdleTimeout.D(),
		"max_connections", cfg.POP3D.MaxConnections, "max_auth_failures", cfg.POP3D.MaxAuthFailures,
		"max_errors", cfg.POP3D.MaxErrors, "mark_seen", cfg.POP3D.MarkSeen)
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
	var ls []listener
	closeAll := func() {
		for _, l := range ls {
			l.Close()
		}
	}
	for _, group := range []struct {
		addrs       []string
		implicitTLS bool
	}{{cfg.POP3D.Listen, false}, {cfg.POP3D.TLSListen, true}} {
		for _, a := range group.addrs {
			l, err := listen.Listen(a)
			if err != nil {
				closeAll()
				return err
			}
			log.Info("listening", "addr", a, "tls", group.implicitTLS)
			ls = append(ls, listener{Listener: l, implicitTLS: group.implicitTLS})
		}
	}
	// [cluster]: the internal port of proxied sessions (proxy.go).
	home, err := cluster.Open(cfg, log)
	if err == nil && home != nil {
		_, port, _ := home.Ports()
		var l net.Listener
		if l, err = home.Listen(port, true); err == nil {
			log.Info("listening", "addr", l.Addr().String(), "internal", true)
			ls = append(ls, listener{Listener: l})
		}
	}
	if err != nil {
		closeAll()
		return err
	}
	if err := daemon.Ready(cfg, log); err != nil {
		closeAll()
		return err
	}
	srv := newServer(cfg, users, tlsConfig, optionsFrom(cfg, daemon.ShutdownGrace), log)
	srv.live = daemon.Live(cfg)
	srv.cluster = home
	if srv.guard = authguard.OpenOrOff(cfg.StateDir, cfg.Login, log); srv.guard != nil {
		defer srv.guard.Close()
	}
	return srv.run(ctx, ls)
}
