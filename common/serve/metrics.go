package serve

import (
	"sync"

	"tern/common/metrics"
)

// The admission metrics: once Count is called, every refused connection
// or login is counted in tern_connections_refused_total{daemon,server,
// reason} (tern.toml(5), METRICS). Accepted and open connections are
// counted by their listeners (common/listen).

type refusals struct {
	mu     sync.Mutex
	daemon string
	vec    *metrics.CounterVec
}

var refused refusals

// Count turns on the admission metrics of the daemon in reg.
func Count(reg *metrics.Registry, daemon string) {
	refused.mu.Lock()
	defer refused.mu.Unlock()
	refused.daemon = daemon
	refused.vec = reg.Counter("tern_connections_refused_total",
		"Connections and logins refused by the admission limits or at shutdown, by daemon, server and reason.",
		"daemon", "server", "reason")
}

func (r *refusals) count(server string, why Refusal) {
	r.mu.Lock()
	vec, daemon := r.vec, r.daemon
	r.mu.Unlock()
	if vec != nil {
		vec.With(daemon, server, why.label()).Inc()
	}
}

// label is the reason's metric label.
func (r Refusal) label() string {
	return [...]string{"total", "address", "user", "shutdown"}[r]
}
