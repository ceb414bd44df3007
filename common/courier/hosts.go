package courier

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"tern/common/trace"
)

// hostTable is what the queue runner knows of the remote hosts it
// delivers to: the concurrency slots of each MX host and of each
// destination address (smtpd.destination_concurrency applies to both, so
// domains sharing an MX share its limit, and MX names sharing an address
// share that), and which hosts are in backoff after a failed connection.
type hostTable struct {
	mu    sync.Mutex
	slots map[string]chan struct{}
	down  map[string]*hostDown
}

// hostDown is a host whose last connection failed: it is not tried again
// before until, by any message.
type hostDown struct {
	failures int
	until    time.Time
	lastErr  string
}

func newHostTable() *hostTable {
	return &hostTable{slots: map[string]chan struct{}{}, down: map[string]*hostDown{}}
}

// acquire takes one of the n slots of key, waiting for one; it returns
// nil when ctx ends first.
func (h *hostTable) acquire(ctx context.Context, key string, n int) func() {
	h.mu.Lock()
	ch, ok := h.slots[key]
	if !ok {
		ch = make(chan struct{}, n)
		h.slots[key] = ch
	}
	h.mu.Unlock()
	select {
	case ch <- struct{}{}:
		return func() { <-ch }
	case <-ctx.Done():
		return nil
	}
}

// inBackoff returns the error to record when hop is not to be tried now.
func (h *hostTable) inBackoff(hop string, now time.Time) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	d := h.down[hostKey(hop)]
	if d == nil || !now.Before(d.until) {
		return nil
	}
	return fmt.Errorf("%s not tried before %s: it failed %d time(s), last: %s",
		hop, d.until.Format(time.RFC3339), d.failures, d.lastErr)
}

// failed puts hop in backoff: retry_min after its first failure, doubling
// with each failure in a row up to retry_max, as for a message (RFC 5321
// 4.5.4.1 asks for the same patience per host).
func (h *hostTable) failed(hop string, err error, retryMin, retryMax time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	k := hostKey(hop)
	d := h.down[k]
	if d == nil {
		d = &hostDown{}
		h.down[k] = d
	}
	d.failures++
	wait := retryMin
	for i := 1; i < d.failures && wait < retryMax; i++ {
		wait *= 2
	}
	d.until = time.Now().Add(min(wait, retryMax))
	d.lastErr = trace.Reply(err.Error())
}

// succeeded ends hop's backoff.
func (h *hostTable) succeeded(hop string) {
	h.mu.Lock()
	delete(h.down, hostKey(hop))
	h.mu.Unlock()
}

// forgetDown ends every host's backoff (mailq -flush).
func (h *hostTable) forgetDown() {
	h.mu.Lock()
	clear(h.down)
	h.mu.Unlock()
}

// hostKey names a next hop: its host name, lower case, with its port.
func hostKey(hop string) string { return strings.ToLower(hop) }

// addrsOf lists the addresses to try for hop ("host:port"), in the
// resolver's order (RFC 5321 5.1: each address of an MX host in turn).
func (cr *Courier) addrsOf(ctx context.Context, hop string) ([]string, error) {
	host, port, err := net.SplitHostPort(hop)
	if err != nil {
		return nil, fmt.Errorf("next hop %q: %w", hop, err)
	}
	if net.ParseIP(host) != nil {
		return []string{hop}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, cr.cfg().DNS.Timeout.D())
	defer cancel()
	ips, err := cr.resolver.LookupIPAddr(ctx, host)
	if err != nil {
		return nil, fmt.Errorf("address lookup for %s: %w", host, err)
	}
	var out []string
	for _, ip := range ips {
		out = append(out, net.JoinHostPort(ip.IP.String(), port))
	}
	return out, nil
}
