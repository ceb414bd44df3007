// Command imapd is tern's IMAP server (RFC 3501 IMAP4rev1 and RFC 9051
// IMAP4rev2) over the users' Maildirs.
//
// It listens on the [imapd] listen addresses (STARTTLS offered; passwords
// in the clear only from loopback) and tls_listen addresses (implicit TLS),
// authenticates against the users file, and serves each user's Maildir
// through common/maildir, whose index gives stable UIDs shared with pop3d,
// lmtpd and other imapd processes. Changes made by any of them reach
// selected and IDLE sessions within a second or two.
//
// The protocol layer is its own: imapd/wire reads commands (limits
// enforced while reading), parses them into go-imap's imap types and
// encodes responses; conn.go is the connection loop and state machine,
// cmd_*.go the commands by family, and the other files the store side.
// See HACKING.md and tern-imapd(8).
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"tern/common/auth"
	"tern/common/config"
	"tern/common/daemon"
	"tern/common/tlsconf"
)

func main() { daemon.Main(imapd) }

// imapd is imapd as common/daemon runs it: its listeners by kind, its
// metrics key and the Run that serves them.
var imapd = daemon.Daemon{Name: "imapd", Run: run, Maildirs: true,
	Metrics: func(c *config.Config) string { return c.IMAPD.Metrics },
	Listeners: func(c *config.Config) []daemon.Listeners {
		return []daemon.Listeners{{Kind: "imap", Addrs: c.IMAPD.Listen}, {Kind: "imaps", Addrs: c.IMAPD.TLSListen}}
	},
}

func run(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	users, err := auth.Open(cfg.Users, cfg.Domains[0], log)
	if err != nil {
		return fmt.Errorf("users: %w", err)
	}
	tlsConfig, err := tlsconf.Load(cfg.TLS, cfg.Hostname)
	if err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	log.Info("effective configuration", "listen", cfg.IMAPD.Listen, "tls_listen", cfg.IMAPD.TLSListen,
		"max_literal_size", cfg.IMAPD.MaxLiteralSize, "max_line_length", cfg.IMAPD.MaxLineLength,
		"max_connections", cfg.IMAPD.MaxConnections, "max_connections_per_ip", cfg.IMAPD.MaxConnectionsPerIP,
		"max_connections_per_user", cfg.IMAPD.MaxConnectionsPerUser, "idle_timeout", cfg.IMAPD.IdleTimeout,
		"idle_recheck", cfg.IMAPD.IdleRecheck, "max_nesting", cfg.IMAPD.MaxNesting, "max_pipelined", cfg.IMAPD.MaxPipelined,
		"login_timeout", cfg.Login.Timeout, "max_failures", cfg.Login.MaxFailures,
		"preview_max_read", cfg.IMAPD.PreviewMaxRead, "metadata_max_size", cfg.IMAPD.MetadataMaxSize,
		"metadata_max_entries", cfg.IMAPD.MetadataMaxEntries, "metadata_max_total", cfg.IMAPD.MetadataMaxTotal)

	srv := newServer(cfg, log, users, tlsConfig)
	// Every listener is open before privileges are dropped and before any
	// connection is read.
	if err := errors.Join(srv.conns.Listen("imap", cfg.IMAPD.Listen, nil),
		srv.conns.Listen("imaps", cfg.IMAPD.TLSListen, tlsConfig)); err != nil {
		srv.conns.Close()
		return err
	}
	return daemon.Serve(ctx, cfg, log, srv.conns)
}
