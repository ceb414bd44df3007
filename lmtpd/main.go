// Command lmtpd is tern's local delivery agent: the only program that
// writes new mail into users' Maildirs.
//
// It speaks LMTP (RFC 2033) on a unix socket and, if configured, on TCP, to
// smtpd, Postfix, Mailman or anything else that hands over mail. Each
// recipient is resolved through the users file and the aliases file
// (common/recipient), filtered through the user's Sieve script (RFC 5228),
// checked against the user's quota, and written into the Maildir with
// tmp/ → fsync → new/ → fsync of the directory. After the message, one
// reply per accepted recipient, in RCPT order (RFC 2033 4.2), each 250 only
// once that copy is durable.
//
// lmtpd also hosts ManageSieve (RFC 5804, managesieve.go) when
// [managesieve] listen is set: users upload, check and activate the
// scripts that lmtpd runs.
//
// See tern-lmtpd(8) for the operator's view; this file only wires the parts
// together.
package main

import (
	"context"
	"fmt"
	"log/slog"

	"tern/common/auth"
	"tern/common/authguard"
	"tern/common/config"
	"tern/common/daemon"
	"tern/common/recipient"
	"tern/common/serve"
	"tern/common/tlsconf"
)

func main() { daemon.Main(lmtpd) }

// lmtpd is lmtpd, with ManageSieve (HACKING.md), as common/daemon runs
// it: its listeners by kind, its metrics key and the Run that serves them.
var lmtpd = daemon.Daemon{Name: "lmtpd", Run: run, Maildirs: true,
	Metrics: func(c *config.Config) string { return c.LMTPD.Metrics },
	Listeners: func(c *config.Config) []daemon.Listeners {
		return []daemon.Listeners{{Kind: "lmtp", Addrs: c.LMTPD.Listen}, {Kind: "managesieve", Addrs: c.ManageSieve.Listen}}
	},
}

func run(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	log.Info("effective configuration", "listen", cfg.LMTPD.Listen, "maildir", cfg.Maildir,
		"sieve", cfg.LMTPD.Sieve, "quota", cfg.LMTPD.Quota, "max_message_size", cfg.LMTPD.MaxMessageSize,
		"max_recipients", cfg.LMTPD.MaxRecipients, "spam_header", cfg.LMTPD.SpamHeader)
	srv, err := newServerFromConfig(cfg, log)
	if err != nil {
		return err
	}
	defer srv.close()
	servers := []*serve.Server{srv.conns}
	// Every listener is open before privileges are dropped and before any
	// connection is read.
	err = srv.conns.Listen("lmtp", cfg.LMTPD.Listen, nil)
	if err == nil && len(cfg.ManageSieve.Listen) > 0 {
		ms := openManageSieve(cfg, srv.agent.users, log)
		defer ms.close()
		servers = append(servers, ms.conns)
		err = ms.conns.Listen("managesieve", cfg.ManageSieve.Listen, nil)
	}
	if err != nil {
		for _, s := range servers {
			s.Close()
		}
		return err
	}
	return daemon.Serve(ctx, cfg, log, servers...)
}

// openManageSieve makes the ManageSieve server, with the TLS certificate
// and the shared login brake.
func openManageSieve(cfg *config.Config, users *auth.DB, log *slog.Logger) *msServer {
	log.Info("managesieve configuration", "listen", cfg.ManageSieve.Listen,
		"max_scripts", cfg.ManageSieve.MaxScripts, "max_script_size", cfg.LMTPD.SieveMaxSize,
		"max_connections", cfg.ManageSieve.MaxConnections, "max_connections_per_ip", cfg.ManageSieve.MaxConnectionsPerIP,
		"idle_timeout", cfg.ManageSieve.IdleTimeout.D())
	tlsConfig, err := tlsconf.Load(cfg.TLS, cfg.Hostname)
	if err != nil {
		// As pop3d: without a certificate, logins work on loopback only.
		log.Warn("managesieve without TLS: STARTTLS is not offered and logins work on loopback only", "err", err)
		tlsConfig = nil
	}
	guard := authguard.OpenOrOff(cfg.StateDir, cfg.Login, log)
	return newMSServer(cfg, users, tlsConfig, guard, log)
}

// newServerFromConfig opens the users file and the aliases and builds the
// server.
func newServerFromConfig(cfg *config.Config, log *slog.Logger) (*server, error) {
	users, err := auth.Open(cfg.Users, cfg.Domains[0], log)
	if err != nil {
		return nil, fmt.Errorf("open users: %w", err)
	}
	rcpts, err := recipient.New(cfg, users, log)
	if err != nil {
		return nil, fmt.Errorf("open aliases: %w", err)
	}
	a, err := newAgent(cfg, users, rcpts, log)
	if err != nil {
		return nil, err
	}
	return newServer(cfg, a, log), nil
}
