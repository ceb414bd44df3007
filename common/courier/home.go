package courier

import (
	"context"
	"io"
	"net"
	"sync"

	"tern/common/auth"
	"tern/common/cluster"
	"tern/common/maillog"
	"tern/common/queue"
	"tern/common/recipient"
)

// User affinity (common/cluster, tern-cluster(7)): mail for a user whose
// home host is another host of the cluster goes to that host's lmtpd, on
// its internal LMTP port, so that the user's mail is written where the
// user's sessions are served and cached. When the home host cannot be
// reached the mail goes to this host's lmtpd, which writes the same shared
// tree, and the failover is logged.

// homePools are the LMTP connections to the home hosts, one pool a host.
type homePools struct {
	cluster *cluster.Cluster
	users   *auth.DB
	rcpts   *recipient.Resolver

	mu    sync.Mutex
	pools map[string]*lmtpPool
}

// newHomePools returns nil without a [cluster], or without the users and
// recipients to find home hosts with (Deps).
func newHomePools(d Deps) (*homePools, error) {
	if d.Users == nil || d.Recipients == nil {
		return nil, nil
	}
	c, err := cluster.Open(d.Config(), d.Log)
	if err != nil || c == nil {
		return nil, err
	}
	return &homePools{cluster: c, users: d.Users, rcpts: d.Recipients, pools: map[string]*lmtpPool{}}, nil
}

// pool is the pool of host's lmtpd.
func (h *homePools) pool(cr *Courier, host string) *lmtpPool {
	h.mu.Lock()
	defer h.mu.Unlock()
	p := h.pools[host]
	if p == nil {
		p = newLMTPPool(cr.cfg)
		_, _, port := h.cluster.Ports()
		p.connect = func(ctx context.Context) (net.Conn, error) { return h.cluster.Dial(ctx, host, port) }
		h.pools[host] = p
	}
	return p
}

// homeOf is the home host of an envelope recipient that is one user of
// this host's users file (aliases and lists are delivered here: lmtpd
// expands them to users anywhere in the shared tree).
func (h *homePools) homeOf(addr string) (string, bool) {
	res, err := h.rcpts.Resolve(addr)
	if err != nil || len(res.Local) != 1 || len(res.Remote) != 0 {
		return "", false
	}
	return h.cluster.HomeOf(h.users, res.Local[0].User)
}

// close closes the idle connections to the home hosts.
func (h *homePools) close() {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, p := range h.pools {
		p.close()
	}
}

// deliverLocal hands the local recipients idx of e to lmtpd: those whose
// home host is another host to its lmtpd, the others, and those whose
// home host is down, to this host's. data gives a fresh reader of the
// message each time it is called.
func (cr *Courier) deliverLocal(e *queue.Envelope, idx []int, data func() io.Reader) {
	if cr.home == nil {
		cr.deliverLMTP(cr.lmtp, e, idx, data())
		return
	}
	var here []int
	away := map[string][]int{}
	for _, i := range idx {
		if host, ok := cr.home.homeOf(e.Recipients[i].Addr); ok {
			away[host] = append(away[host], i)
		} else {
			here = append(here, i)
		}
	}
	for host, hidx := range away {
		p := cr.home.pool(cr, host)
		c, err := p.get()
		if err == nil && c.reused && c.Noop() != nil {
			// The pooled connection outlived the home host's lmtpd:
			// the down host must be found here, before anything is
			// sent, for the mail to go to this host's lmtpd instead.
			c.Close()
			c, err = p.dial()
		}
		if err != nil {
			for _, i := range hidx {
				maillog.Failover(cr.log, e.Recipients[i].Addr, host, "lmtp", err.Error())
			}
			here = append(here, hidx...)
			continue
		}
		p.put(c) // taken again at once by deliverLMTP
		cr.deliverLMTP(p, e, hidx, data())
	}
	if len(here) > 0 {
		cr.deliverLMTP(cr.lmtp, e, here, data())
	}
}
