package daemon

import (
	"context"
	"log/slog"
	"net"

	"tern/common/config"
	"tern/common/listen"
	"tern/common/maillog"
	"tern/common/metrics"
	"tern/common/serve"
)

// The metrics endpoint (tern.toml's metrics key of the daemon's section;
// the names are listed in tern.toml(5), METRICS).
//
// Every mail log event is counted by the function that logs it
// (common/maillog, tern(7) MAIL LOG) in tern_events_total{daemon,event}
// and, for deliveries, tern_delivery_seconds{daemon,via}: nothing is
// parsed back out of log records, so the counters do not depend on the
// log level or on how a line is worded. Connections are counted by
// common/listen, refused ones by common/serve, the queue by smtpd.

// listenKinds maps each listen address of the daemon to the kind of its
// listener, the kind label of the connection metrics.
func listenKinds(d Daemon, cfg *config.Config) map[string]string {
	kinds := map[string]string{}
	for _, l := range d.listeners(cfg) {
		for _, a := range l.Addrs {
			kinds[a] = l.Kind
		}
	}
	return kinds
}

// startMetrics opens the endpoint's socket (before privileges are dropped,
// like the daemon's own listeners, so that any port works), turns on
// connection counting, the admission counters and the mail log's event
// counters.
func startMetrics(d Daemon, addr string, cfg *config.Config) (net.Listener, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	reg := metrics.Default
	listen.CountConnections(reg, d.Name, listenKinds(d, cfg))
	serve.Count(reg, d.Name)
	maillog.Count(reg, d.Name)
	return l, nil
}

// serveMetrics serves the endpoint on l until ctx ends; the channel is
// closed once it has stopped. A nil l serves nothing.
func serveMetrics(ctx context.Context, l net.Listener, log *slog.Logger) <-chan struct{} {
	done := make(chan struct{})
	if l == nil {
		close(done)
		return done
	}
	log.Info("metrics endpoint", "addr", l.Addr().String(), "path", metrics.Path)
	go func() {
		defer close(done)
		if err := metrics.Serve(ctx, l, metrics.Default, log); err != nil {
			log.Error("metrics endpoint stopped", "addr", l.Addr().String(), "err", err)
		}
	}()
	return done
}
