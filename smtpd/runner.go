package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"tern/common/dns"
	"tern/common/listen"
	"tern/common/maillog"
	"tern/common/mtasts"
	"tern/common/queue"
	"tern/common/tlsrpt"
)

// runner delivers queued messages: local recipients to lmtpd, remote ones
// to their MX (or the transport map's next hop, or relay_host), with
// retries and backoff, and a DSN to the sender when it gives up.
//
// It looks at the queue at least once a second (cheaply: a directory
// listing, envelopes re-read only when new or when someone kicked the
// queue), immediately when smtpd queues a message, and within a second of
// mailq touching the kick file.
type runner struct {
	srv    *server
	wakeCh chan struct{}
	sem    chan struct{} // bounds deliveries at once (max_deliveries)
	lmtp   *lmtpPool     // connections to lmtpd, shared with sessions
	home   *homePools    // lmtpd of the users' home hosts (home.go), nil without [cluster]

	mu       sync.Mutex
	inflight map[string]bool
	known    map[string]schedule
	hosts    *hostTable     // per MX host and address: concurrency, backoff
	sts      *mtasts.Source // MTA-STS policies, nil when smtpd.mta_sts is off
	roots    *x509.CertPool // trusted CAs for policy checks (tls_ca_file)
	secure   *dns.Secure    // DNSSEC-validated lookups for DANE, nil unless [dns] dnssec
	tlsrpt   *tlsrpt.Store  // results of TLS under policies, for TLS reports (RFC 8460)
}

// schedule is what the runner remembers of an envelope between scans.
type schedule struct {
	next time.Time
	held bool
}

func newRunner(s *server) (*runner, error) {
	roots, err := loadRoots(s.cfg())
	if err != nil {
		return nil, err
	}
	var sts *mtasts.Source
	if s.cfg().SMTPD.MTASTS {
		if sts, err = newSTSSource(s.cfg(), s.resolver, roots); err != nil {
			return nil, err
		}
	}
	reports, err := openTLSReports(s.cfg().StateDir)
	if err != nil {
		return nil, err
	}
	home, err := newHomePools(s)
	if err != nil {
		return nil, err
	}
	return &runner{
		home:     home,
		tlsrpt:   reports,
		sts:      sts,
		roots:    roots,
		secure:   dns.NewSecure(s.cfg().DNS),
		srv:      s,
		lmtp:     newLMTPPool(s.cfg()),
		wakeCh:   make(chan struct{}, 1),
		sem:      make(chan struct{}, s.cfg().SMTPD.MaxDeliveries),
		inflight: map[string]bool{},
		known:    map[string]schedule{},
		hosts:    newHostTable(),
	}, nil
}

// wake asks for a scan now.
func (rn *runner) wake() {
	select {
	case rn.wakeCh <- struct{}{}:
	default:
	}
}

// pollInterval is how often the runner looks for due messages and for a
// kick from mailq.
const pollInterval = time.Second

func (rn *runner) run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	lastKick := time.Time{}
	lastFlush := rn.srv.queue.FlushStamp()
	var lastReport time.Time
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		if rn.srv.cfg().SMTPD.TLSReports && time.Since(lastReport) >= tlsReportInterval {
			lastReport = time.Now()
			wg.Add(1)
			go func(now time.Time) {
				defer wg.Done()
				defer listen.Recover(rn.srv.log, "TLS reports")
				rn.sendTLSReports(ctx, now)
			}(lastReport)
		}
		kick := rn.srv.queue.KickStamp()
		reread := !kick.Equal(lastKick)
		lastKick = kick
		if flush := rn.srv.queue.FlushStamp(); !flush.Equal(lastFlush) {
			// mailq -flush: the hosts in backoff are tried again too.
			lastFlush = flush
			rn.hosts.forgetDown()
		}
		rn.scan(ctx, &wg, reread)
		select {
		case <-ctx.Done():
			return
		case <-rn.wakeCh:
		case <-tick.C:
		}
	}
}

// scan starts a delivery for every due message not already in flight.
func (rn *runner) scan(ctx context.Context, wg *sync.WaitGroup, reread bool) {
	ids, err := rn.srv.queue.IDs()
	if err != nil {
		rn.srv.log.Error("queue scan", "err", err)
		return
	}
	now := time.Now()
	present := make(map[string]bool, len(ids))
	for _, id := range ids {
		present[id] = true
		rn.mu.Lock()
		sc, ok := rn.known[id]
		busy := rn.inflight[id]
		rn.mu.Unlock()
		if busy {
			continue
		}
		if !ok || reread {
			e, err := rn.srv.queue.Get(id)
			if err != nil {
				continue // removed meanwhile, or damaged (Recover deals with it)
			}
			sc = schedule{next: e.NextAttempt, held: e.Held}
			rn.mu.Lock()
			rn.known[id] = sc
			rn.mu.Unlock()
		}
		if sc.held || sc.next.After(now) {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case rn.sem <- struct{}{}:
		}
		rn.mu.Lock()
		rn.inflight[id] = true
		rn.mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-rn.sem }()
			defer listen.Recover(rn.srv.log, "delivery "+id)
			sc := rn.deliver(ctx, id)
			rn.mu.Lock()
			delete(rn.inflight, id)
			if sc != nil {
				rn.known[id] = *sc
			} else {
				delete(rn.known, id)
			}
			rn.mu.Unlock()
		}()
	}
	rn.mu.Lock()
	for id := range rn.known {
		if !present[id] && !rn.inflight[id] {
			delete(rn.known, id)
		}
	}
	rn.mu.Unlock()
}

// deliver makes one delivery attempt of a queued message and returns its
// new schedule, or nil when the message is gone.
func (rn *runner) deliver(ctx context.Context, id string) *schedule {
	log := rn.srv.log
	c, err := rn.srv.queue.Claim(id)
	if err != nil {
		if !errors.Is(err, queue.ErrBusy) && !errors.Is(err, queue.ErrNotFound) {
			log.Error("claim queued message", "id", id, "err", err)
		}
		if errors.Is(err, queue.ErrBusy) {
			return &schedule{next: time.Now().Add(pollInterval)}
		}
		return nil
	}
	defer c.Close()
	e := c.Env
	if e.Held {
		return &schedule{held: true}
	}
	data, err := c.Data()
	if err != nil {
		log.Error("queued message damaged", "id", id, "err", err)
		if errors.Is(err, queue.ErrTorn) {
			c.Quarantine()
			return nil
		}
		return &schedule{next: time.Now().Add(rn.srv.cfg().SMTPD.LocalRetry.D())}
	}

	var local []int
	remote := map[string][]int{}
	for _, i := range e.Pending() {
		_, domain, err := splitAddr(e.Recipients[i].Addr)
		switch {
		case err != nil:
			e.Recipients[i].State = queue.Failed
			e.Recipients[i].AddAttempt(queue.Attempt{Time: time.Now(), Code: 553, Reply: "5.1.3 malformed recipient address"})
		case rn.srv.cfg().IsLocalDomain(domain):
			local = append(local, i)
		default:
			remote[domain] = append(remote[domain], i)
		}
	}
	var done []notice // delivered now: the SUCCESS notices owed
	if len(local) > 0 {
		rn.deliverLocal(e, local, rewind(data))
		done = appendDelivered(done, e, local, actionDelivered)
	}
	for domain, idx := range remote {
		if ctx.Err() != nil {
			break
		}
		passedOn := rn.deliverRemote(ctx, e, idx, domain, rewind(data))
		if !passedOn {
			// RFC 3461 5.2.2: the next hop took the message without
			// the DSN extension, so no one after it will report.
			done = appendDelivered(done, e, idx, actionRelayed)
		}
	}
	rn.notifySuccess(e, done, rewind(data))

	// RFC 5321 4.5.4.1: give up after the queue lifetime.
	if life := rn.srv.cfg().SMTPD.QueueLifetime.D(); time.Since(e.Arrival) > life {
		for _, i := range e.Pending() {
			r := &e.Recipients[i]
			last, _ := r.LastAttempt()
			r.State = queue.Failed
			reason := fmt.Sprintf("gave up after %s in the queue; last error: %s", life, last.Reply)
			r.AddAttempt(queue.Attempt{Time: time.Now(), Host: last.Host, Code: 0, Reply: reason})
			maillog.Bounced(log, maillog.Msg{ID: id, From: e.From, To: r.Addr, Via: last.Host}, reason)
		}
	}
	rn.bounce(e, data)
	rn.warnDelay(e, data)

	if e.Done() {
		if err := c.Remove(); err != nil {
			log.Error("remove delivered message", "id", id, "err", err)
			return &schedule{next: time.Now().Add(rn.srv.cfg().SMTPD.LocalRetry.D())}
		}
		log.Debug("queue entry done", "id", id)
		return nil
	}
	e.Tries++
	e.NextAttempt = time.Now().Add(rn.backoff(e))
	if err := c.Save(); err != nil {
		log.Error("save queue entry", "id", id, "err", err)
	}
	return &schedule{next: e.NextAttempt}
}

// backoff is the wait before the next attempt: local_retry when only
// lmtpd is waited for, else retry_min doubling up to retry_max.
func (rn *runner) backoff(e *queue.Envelope) time.Duration {
	cfg := rn.srv.cfg().SMTPD
	onlyLocal := true
	for _, i := range e.Pending() {
		if _, d, err := splitAddr(e.Recipients[i].Addr); err != nil || !rn.srv.cfg().IsLocalDomain(d) {
			onlyLocal = false
		}
	}
	if onlyLocal {
		return cfg.LocalRetry.D()
	}
	d := cfg.RetryMin.D()
	for i := 1; i < e.Tries && d < cfg.RetryMax.D(); i++ {
		d *= 2
	}
	return min(d, cfg.RetryMax.D())
}

// appendDelivered adds the recipients of idx that are now delivered to
// done, with action.
func appendDelivered(done []notice, e *queue.Envelope, idx []int, action string) []notice {
	for _, i := range idx {
		if e.Recipients[i].State == queue.Delivered {
			done = append(done, notice{i, action})
		}
	}
	return done
}

func rewind(r io.ReadSeeker) io.ReadSeeker {
	r.Seek(0, io.SeekStart)
	return r
}
