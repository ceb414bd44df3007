// Command smtpd is tern's mail transfer agent: it receives mail from other
// servers (MX, port 25) and from users (submission, ports 587 and 465),
// hands local recipients to lmtpd over LMTP, and keeps everything else in
// a durable queue that its courier (common/courier: the queue runner)
// delivers to remote servers, with retries and bounces. See tern-smtpd(8)
// and tern-queue(5).
//
// A 250 reply after DATA means the message is durable: in every local
// recipient's Maildir (lmtpd fsyncs before its own 250) or in the queue.
package main

import (
	"context"
	"crypto/tls"
	"log/slog"

	"tern/common/config"
	"tern/common/daemon"
	"tern/common/tlsconf"
)

func main() { daemon.Main(smtpd) }

// smtpd is smtpd as common/daemon runs it: its listeners by kind, its
// metrics key and the Run that serves them.
var smtpd = daemon.Daemon{Name: "smtpd", Run: run,
	Metrics: func(c *config.Config) string { return c.SMTPD.Metrics },
	Listeners: func(c *config.Config) []daemon.Listeners {
		return []daemon.Listeners{{Kind: "mx", Addrs: c.SMTPD.MX}, {Kind: "submission", Addrs: c.SMTPD.Submission},
			{Kind: "submissions", Addrs: c.SMTPD.Submissions}, {Kind: "local", Addrs: nonEmpty(c.SMTPD.LocalSubmit)}}
	},
}

func run(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	var tlsCfg *tls.Config
	if len(cfg.SMTPD.Submissions) > 0 || len(cfg.SMTPD.Submission) > 0 || cfg.TLS.Generate {
		c, err := tlsconf.Load(cfg.TLS, cfg.Hostname)
		if err != nil {
			return err
		}
		tlsCfg = c
	}
	s, err := newServer(cfg, log, tlsCfg)
	if err != nil {
		return err
	}
	log.Info("effective config", "mx", cfg.SMTPD.MX, "submission", cfg.SMTPD.Submission,
		"submissions", cfg.SMTPD.Submissions, "lmtp", cfg.SMTPD.LMTP, "relay_host", cfg.SMTPD.RelayHost,
		"transport", cfg.SMTPD.Transport, "queue", s.queue.Dir(),
		"max_message_size", cfg.SMTPD.MaxMessageSize, "queue_lifetime", cfg.SMTPD.QueueLifetime,
		"milters", cfg.SMTPD.Milters, "inbound_auth", cfg.SMTPD.InboundAuth, "dns_resolver", cfg.DNS.Resolver)
	if err := s.listen(); err != nil {
		return err
	}
	if err := daemon.Ready(cfg, log); err != nil {
		s.closeListeners()
		return err
	}
	return s.serve(ctx, daemon.ShutdownGrace)
}
