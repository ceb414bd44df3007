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
// See tern-lmtpd(8) for the operator's view; this file only wires the parts
// together.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"

	"tern/common/auth"
	"tern/common/config"
	"tern/common/daemon"
	"tern/common/listen"
	"tern/common/recipient"
)

func main() {
	daemon.Main("lmtpd", run)
}

func run(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	log.Info("effective configuration", "listen", cfg.LMTPD.Listen, "maildir", cfg.Maildir,
		"sieve", cfg.LMTPD.Sieve, "quota", cfg.LMTPD.Quota, "max_message_size", cfg.LMTPD.MaxMessageSize,
		"max_recipients", cfg.LMTPD.MaxRecipients, "spam_header", cfg.LMTPD.SpamHeader)
	srv, err := newServerFromConfig(cfg, log)
	if err != nil {
		return err
	}
	// Every listener is open before privileges are dropped and before any
	// connection is read.
	var ls []net.Listener
	for _, addr := range cfg.LMTPD.Listen {
		l, err := listen.Listen(addr)
		if err != nil {
			for _, l := range ls {
				l.Close()
			}
			srv.close()
			return err
		}
		log.Info("listening", "addr", addr)
		ls = append(ls, l)
	}
	if err := daemon.Ready(cfg, log); err != nil {
		srv.close()
		return err
	}
	g := &listen.Group{Log: log}
	for i, l := range ls {
		g.Go("lmtp "+cfg.LMTPD.Listen[i], func() error { return srv.serve(l) })
	}
	<-ctx.Done()
	log.Info("shutting down")
	srv.shutdown(daemon.ShutdownGrace)
	return g.Wait()
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
