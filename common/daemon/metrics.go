package daemon

import (
	"context"
	"log/slog"
	"net"
	"regexp"
	"time"

	"tern/common/config"
	"tern/common/listen"
	"tern/common/metrics"
)

// The metrics endpoint (tern.toml's metrics key of the daemon's section;
// the names are listed in tern.toml(5), METRICS).
//
// The mail log already has one line per event with an "event" attribute
// (received, delivered, deferred, bounced, rejected, auth_failed, …), so
// the counters come from the log itself: the logger's handler is wrapped,
// and every record with an event increments
// tern_events_total{daemon,event}. No call site knows about metrics, and
// the counters cannot disagree with the log. A "delivered" record that
// carries a "duration" is also observed in tern_delivery_seconds{daemon,via}.
// Connections are counted by common/listen, the queue by smtpd.

// deliveryBuckets span a local Maildir write (milliseconds) to a message
// that waited in the queue for a day.
var deliveryBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
	30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600}

// MetricsAddr is the metrics key of the daemon called name ("" when off).
func MetricsAddr(name string, cfg *config.Config) string {
	switch name {
	case "smtpd":
		return cfg.SMTPD.Metrics
	case "lmtpd":
		return cfg.LMTPD.Metrics
	case "imapd":
		return cfg.IMAPD.Metrics
	case "pop3d":
		return cfg.POP3D.Metrics
	}
	return ""
}

// listenKinds maps each listen address of the daemon to the kind of its
// listener, the kind label of the connection metrics.
func listenKinds(name string, cfg *config.Config) map[string]string {
	kinds := map[string]string{}
	for _, l := range listenerKinds(name, cfg) {
		for _, a := range l.addrs {
			kinds[a] = l.kind
		}
	}
	return kinds
}

// startMetrics opens the endpoint's socket (before privileges are dropped,
// like the daemon's own listeners, so that any port works), turns on
// connection counting and returns the logger whose handler counts events.
func startMetrics(name, addr string, cfg *config.Config, log *slog.Logger) (net.Listener, *slog.Logger, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	reg := metrics.Default
	listen.CountConnections(reg, name, listenKinds(name, cfg))
	h := newEventHandler(log.Handler(), reg, name)
	return l, slog.New(h), nil
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

// eventName bounds the values of the event label: tern's events are short
// snake_case words; anything else (never logged by tern itself) is counted
// as "other" so that no value can grow the series without bound.
var eventName = regexp.MustCompile(`^[a-z][a-z_]{0,31}$`)

// viaLabel reduces a delivered line's via attribute to few values: lmtpd's
// own Maildir writes, smtpd's hand-over to lmtpd, and anything else, which
// is smtpd's delivery to a remote host named in the attribute.
func viaLabel(via string) string {
	switch via {
	case "maildir", "lmtp":
		return via
	}
	return "smtp"
}

// eventHandler is the slog.Handler of a daemon with metrics on: it counts
// the records that carry an event, then passes them on.
type eventHandler struct {
	next     slog.Handler
	daemon   string
	events   *metrics.CounterVec
	delivery *metrics.HistogramVec

	// Attributes added with Logger.With before any group: they belong to
	// every record of the derived logger.
	attrs   eventAttrs
	grouped bool // after WithGroup, With's attributes are nested, not the event's
}

// eventAttrs are the attributes the metrics read from a record.
type eventAttrs struct {
	event, via  string
	duration    time.Duration
	hasDuration bool
}

func (e *eventAttrs) take(a slog.Attr) {
	v := a.Value.Resolve()
	switch a.Key {
	case "event":
		e.event = v.String()
	case "via":
		e.via = v.String()
	case "duration":
		if v.Kind() == slog.KindDuration {
			e.duration, e.hasDuration = v.Duration(), true
		}
	}
}

func newEventHandler(next slog.Handler, reg *metrics.Registry, daemon string) *eventHandler {
	return &eventHandler{
		next:   next,
		daemon: daemon,
		events: reg.Counter("tern_events_total",
			"Mail log events (the event attribute of each log line), by daemon and event.", "daemon", "event"),
		delivery: reg.Histogram("tern_delivery_seconds",
			"Delivery latency in seconds, from the duration of each delivered event, by daemon and via (maildir, lmtp, smtp).",
			deliveryBuckets, "daemon", "via"),
	}
}

// Enabled is true from Info up whatever the log level, so that events are
// counted when an admin logs only warnings; Handle then drops what the
// log itself does not want. Events are logged at Info or above.
func (h *eventHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return level >= slog.LevelInfo || h.next.Enabled(ctx, level)
}

func (h *eventHandler) Handle(ctx context.Context, r slog.Record) error {
	ea := h.attrs
	if !h.grouped {
		r.Attrs(func(a slog.Attr) bool {
			ea.take(a)
			return true
		})
	}
	if ea.event != "" {
		ev := ea.event
		if !eventName.MatchString(ev) {
			ev = "other"
		}
		h.events.With(h.daemon, ev).Inc()
		if ev == "delivered" && ea.hasDuration {
			h.delivery.With(h.daemon, viaLabel(ea.via)).Observe(ea.duration.Seconds())
		}
	}
	if !h.next.Enabled(ctx, r.Level) {
		return nil
	}
	return h.next.Handle(ctx, r)
}

func (h *eventHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.next = h.next.WithAttrs(attrs)
	if !h.grouped {
		for _, a := range attrs {
			c.attrs.take(a)
		}
	}
	return &c
}

func (h *eventHandler) WithGroup(name string) slog.Handler {
	c := *h
	c.next = h.next.WithGroup(name)
	c.grouped = c.grouped || name != ""
	return &c
}
