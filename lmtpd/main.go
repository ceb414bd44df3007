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
	"net"

	"tern/common/auth"
	"tern/common/authguard"
	"tern/common/cluster"
	"tern/common/config"
	"tern/common/daemon"
	"tern/common/listen"
	"tern/common/recipient"
	"tern/common/tlsconf"
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
	// [cluster]: the internal LMTP port, where smtpd on the other hosts
	// hands over mail for the users whose home host this is.
	internal, err := openInternal(cfg, log)
	if err != nil {
		for _, l := range ls {
			l.Close()
		}
		srv.close()
		return err
	}
	ms, msls, err := openManageSieve(cfg, srv.agent.users, log)
	if err != nil {
		for _, l := range ls {
			l.Close()
		}
		srv.close()
		return err
	}
	if err := daemon.Ready(cfg, log); err != nil {
		srv.close()
		return err
	}
	g := &listen.Group{Log: log}
	for i, l := range ls {
		g.Go("lmtp "+cfg.LMTPD.Listen[i], func() error { return srv.serve(l) })
	}
	if internal != nil {
		g.Go("lmtp internal", func() error { return srv.serve(internal) })
	}
	for i, l := range msls {
		g.Go("managesieve "+cfg.ManageSieve.Listen[i], func() error { return ms.serve(l) })
	}
	<-ctx.Done()
	log.Info("shutting down")
	for _, l := range msls {
		l.Close()
	}
	if ms != nil {
		ms.shutdown(daemon.ShutdownGrace)
		ms.close()
	}
	srv.shutdown(daemon.ShutdownGrace)
	return g.Wait()
}

// openManageSieve opens the [managesieve] listeners, if any, with the TLS
// certificate and the shared login brake.
func openManageSieve(cfg *config.Config, users *auth.DB, log *slog.Logger) (*msServer, []net.Listener, error) {
	if len(cfg.ManageSieve.Listen) == 0 {
		return nil, nil, nil
	}
	log.Info("managesieve configuration", "listen", cfg.ManageSieve.Listen,
		"max_scripts", cfg.ManageSieve.MaxScripts, "max_script_size", cfg.LMTPD.SieveMaxSize,
		"max_connections", cfg.ManageSieve.MaxConnections, "idle_timeout", cfg.ManageSieve.IdleTimeout.D())
	tlsConfig, err := tlsconf.Load(cfg.TLS, cfg.Hostname)
	if err != nil {
		// As pop3d: without a certificate, logins work on loopback only.
		log.Warn("managesieve without TLS: STARTTLS is not offered and logins work on loopback only", "err", err)
		tlsConfig = nil
	}
	var ls []net.Listener
	for _, addr := range cfg.ManageSieve.Listen {
		l, err := listen.Listen(addr)
		if err != nil {
			for _, l := range ls {
				l.Close()
			}
			return nil, nil, err
		}
		log.Info("listening", "addr", addr, "service", "managesieve")
		ls = append(ls, l)
	}
	guard := authguard.OpenOrOff(cfg.StateDir, cfg.Login, log)
	return newMSServer(cfg, users, tlsConfig, guard, log), ls, nil
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

// openInternal opens the internal LMTP port of [cluster], which takes
// connections only from the cluster's hosts; nil without a cluster.
func openInternal(cfg *config.Config, log *slog.Logger) (net.Listener, error) {
	home, err := cluster.Open(cfg, log)
	if err != nil || home == nil {
		return nil, err
	}
	_, _, port := home.Ports()
	l, err := home.Listen(port, false)
	if err != nil {
		return nil, err
	}
	log.Info("listening", "addr", l.Addr().String(), "internal", true)
	return l, nil
}
