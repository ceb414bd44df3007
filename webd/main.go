// Command webd is the mail system's web face, and nothing more: it answers
// ACME http-01 challenges (RFC 8555 8.3), serves the MTA-STS policy of
// every local domain at https://mta-sts.DOMAIN/.well-known/mta-sts.txt
// (RFC 8461 3.3), and configures mail clients: Thunderbird's autoconfig,
// Outlook's autodiscover and Apple configuration profiles, all built from
// tern.toml (common/publish). With [tls] acme it is also the one process
// that obtains and renews the certificate every daemon uses (acme.go).
//
// The manual is tern-webd(8); this file only wires the parts together.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"

	"tern/common/config"
	"tern/common/daemon"
	"tern/common/listen"
	"tern/common/tlsconf"
)

func main() {
	daemon.Main(daemon.Daemon{Name: "webd", Run: run, Listeners: func(c *config.Config) []daemon.Listeners {
		// The aggregated metrics endpoint is one of webd's listeners.
		return []daemon.Listeners{{Kind: "http", Addrs: c.WebD.Listen}, {Kind: "https", Addrs: c.WebD.TLSListen},
			{Kind: "metrics", Addrs: nonEmpty(c.WebD.Metrics)}}
	}})
}

// nonEmpty is a list of addr, empty when addr is.
func nonEmpty(addr string) []string {
	if addr == "" {
		return nil
	}
	return []string{addr}
}

func run(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	w := cfg.WebD
	log.Info("webd configuration", "listen", w.Listen, "tls_listen", w.TLSListen,
		"mail_host", cfg.PublicHost(), "mta_sts_mode", w.MTASTSMode, "mta_sts_max_age", w.MTASTSMaxAge.D(),
		"read_timeout", w.ReadTimeout.D(), "write_timeout", w.WriteTimeout.D(),
		"max_header_size", w.MaxHeaderSize, "max_request_size", w.MaxRequestSize)
	h := &handler{cfg: cfg, log: log, challenges: &challenges{}}
	var tlsConfig *tls.Config
	if len(w.TLSListen) > 0 {
		var err error
		if tlsConfig, err = tlsconf.Load(cfg.TLS, cfg.Hostname); err != nil {
			return fmt.Errorf("tls: %w", err)
		}
		tlsConfig.GetConfigForClient = h.challenges.tlsConfigFor(tlsConfig)
	}
	var ls []net.Listener
	closeAll := func() {
		for _, l := range ls {
			l.Close()
		}
	}
	for _, group := range []struct {
		addrs []string
		tls   bool
	}{{w.Listen, false}, {w.TLSListen, true}} {
		for _, a := range group.addrs {
			l, err := listen.Listen(a)
			if err != nil {
				closeAll()
				return err
			}
			log.Info("listening", "addr", a, "tls", group.tls)
			if group.tls {
				l = tls.NewListener(l, tlsConfig)
			}
			ls = append(ls, l)
		}
	}
	var metricsLn net.Listener
	if w.Metrics != "" {
		l, err := listen.Listen(w.Metrics)
		if err != nil {
			closeAll()
			return err
		}
		log.Info("listening", "addr", w.Metrics, "metrics", "all daemons")
		metricsLn = l
		ls = append(ls, l)
	}
	var certs *certManager
	if cfg.TLS.ACME.Enabled() {
		log.Info("acme configuration", "directory", cfg.TLS.ACME.Directory, "names", cfg.TLS.ACME.Names,
			"renew_before", cfg.TLS.ACME.RenewBefore.D(), "dir", cfg.ACMEDir())
		var err error
		if certs, err = newCertManager(cfg, h.challenges, log); err != nil {
			closeAll()
			return err
		}
	}
	if err := daemon.Ready(cfg, log); err != nil {
		closeAll()
		return err
	}
	srv := newHTTPServer(cfg, h, log)
	g := &listen.Group{Log: log}
	if certs != nil {
		g.Go("acme", func() error { certs.run(ctx); return nil })
	}
	msrv := newMetricsServer(cfg, log)
	for _, l := range ls {
		s := srv
		if l == metricsLn {
			s = msrv
		}
		g.Go("http "+l.Addr().String(), func() error {
			if err := s.Serve(l); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		})
	}
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), daemon.ShutdownGrace)
	defer cancel()
	srv.Shutdown(sctx)
	msrv.Shutdown(sctx)
	return g.Wait()
}

// newHTTPServer bounds every request: header size, read and write times,
// and idle keep-alive connections.
func newHTTPServer(cfg *config.Config, h http.Handler, log *slog.Logger) *http.Server {
	w := cfg.WebD
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: w.ReadTimeout.D(),
		ReadTimeout:       w.ReadTimeout.D(),
		WriteTimeout:      w.WriteTimeout.D(),
		IdleTimeout:       w.ReadTimeout.D(),
		MaxHeaderBytes:    int(w.MaxHeaderSize),
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
}
