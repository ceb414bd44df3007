package listen

import (
	"net"
	"sync"
	"syscall"

	"tern/common/metrics"
)

// Connection metrics. Once CountConnections is called, every listener
// Listen opens counts the connections it accepts, by listener kind
// (tern_connections_total), and how many of them are open now
// (tern_connections_open).
//
// The accepted net.Conn is handed on unwrapped: smtpd's local submission
// asserts *net.UnixConn to read the peer's credentials, and a wrapper
// would hide it. So a connection is not told when it closes; instead each
// accepted connection's syscall.RawConn is kept, and the open count is the
// number of those on which Control still succeeds (it fails once Close has
// run). The list is pruned at every scrape and whenever it has doubled
// since the last pruning, so it stays within twice the open connections
// and pruning costs O(1) per accept on average.
//
// Only the returned net.Listener is wrapped, and only when counting is on;
// nothing in tern asserts its concrete type.

var (
	countMu  sync.Mutex
	counting *connCounting
)

type connCounting struct {
	reg    *metrics.Registry
	daemon string
	kinds  map[string]string // listen address → kind
	total  *metrics.CounterVec
	open   *metrics.GaugeVec
	byKind map[string]*connTracker
}

// CountConnections turns on connection metrics in reg for the listeners
// opened from now on. kinds maps each configured listen address to its
// kind ("mx", "imaps", "lmtp", …); an address not in it counts as "other".
func CountConnections(reg *metrics.Registry, daemon string, kinds map[string]string) {
	countMu.Lock()
	defer countMu.Unlock()
	counting = &connCounting{
		reg:    reg,
		daemon: daemon,
		kinds:  kinds,
		total: reg.Counter("tern_connections_total",
			"Connections accepted, by daemon and listener kind.", "daemon", "kind"),
		open: reg.Gauge("tern_connections_open",
			"Connections open now, by daemon and listener kind.", "daemon", "kind"),
		byKind: map[string]*connTracker{},
	}
}

// counted wraps l when connection metrics are on.
func counted(addr string, l net.Listener) net.Listener {
	countMu.Lock()
	defer countMu.Unlock()
	c := counting
	if c == nil {
		return l
	}
	kind, ok := c.kinds[addr]
	if !ok {
		kind = "other"
	}
	tr := c.byKind[kind]
	if tr == nil {
		// Several listeners of one kind share a tracker, as they share a
		// series.
		tr = &connTracker{}
		c.byKind[kind] = tr
		c.open.Func(tr.count, c.daemon, kind)
	}
	return &countingListener{Listener: l, accepted: c.total.With(c.daemon, kind), tracker: tr}
}

type countingListener struct {
	net.Listener
	accepted *metrics.Counter
	tracker  *connTracker
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepted.Inc()
		l.tracker.add(c)
	}
	return c, err
}

// minPrune is the list length below which an accept never prunes.
const minPrune = 64

// connTracker keeps the raw connections of one listener kind.
type connTracker struct {
	mu      sync.Mutex
	conns   []syscall.RawConn
	pruneAt int
}

// add tracks c; connections that expose no file descriptor (none that
// Listen returns) are counted as accepted only.
func (t *connTracker) add(c net.Conn) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.conns = append(t.conns, rc)
	if len(t.conns) >= max(t.pruneAt, minPrune) {
		t.prune()
		t.pruneAt = 2 * len(t.conns)
	}
}

// count is the number of tracked connections not closed yet.
func (t *connTracker) count() float64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.prune()
	return float64(len(t.conns))
}

// prune drops closed connections; t.mu is held.
func (t *connTracker) prune() {
	kept := t.conns[:0]
	for _, rc := range t.conns {
		if rc.Control(func(uintptr) {}) == nil {
			kept = append(kept, rc)
		}
	}
	clear(t.conns[len(kept):]) // let closed connections be collected
	t.conns = kept
}
