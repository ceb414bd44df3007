package courier

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"tern/common/config"
	"tern/common/dns"
	"tern/common/listen"
	"tern/common/mailaddr"
	"tern/common/maillog"
	"tern/common/mtasts"
	"tern/common/queue"
	"tern/common/tlsrpt"
)

// Courier delivers queued messages: local recipients to lmtpd, remote
// ones to their MX (or the transport map's next hop, or relay_host), with
// retries and backoff, and a DSN to the sender when it gives up.
//
// It looks at the queue at least once a second (cheaply: a directory
// listing, envelopes re-read only when new or when someone kicked the
// queue), immediately when Wake is called, and within a second of mailq
// touching the kick file.
type Courier struct {
	// What it needs from its daemon (Deps).
	cfg      func() *config.Config
	log      *slog.Logger
	queue    *queue.Queue
	resolver *net.Resolver

	wakeCh chan struct{}
	sem    chan struct{} // bounds deliveries at once (max_deliveries)
	lmtp   *lmtpPool     // connections to lmtpd, shared with DeliverLocal

	mu       sync.Mutex
	inflight map[string]bool
	known    map[string]schedule
	hosts    *hostTable     // per MX host and address: concurrency, backoff
	sts      *mtasts.Source // MTA-STS policies, nil when smtpd.mta_sts is off
	roots    *x509.CertPool // trusted CAs for policy checks (tls_ca_file)
	secure   *dns.Secure    // DNSSEC-validated lookups for DANE, nil unless [dns] dnssec
	tlsrpt   *tlsrpt.Store  // results of TLS under policies, for TLS reports (RFC 8460)
}

// Deps is all a Courier takes from the daemon that runs it.
type Deps struct {
	// Config is the configuration in force, read at each step that needs
	// a key, so that a SIGHUP reaches the next delivery (config.Live).
	Config func() *config.Config
	Log    *slog.Logger
	// Queue is the durable queue it delivers from, and into which it
	// queues the notices (DSNs, TLS reports) it makes.
	Queue *queue.Queue
	// Resolver answers the MX, address and TLS-RPT lookups ([dns]).
	Resolver *net.Resolver
}

// schedule is what the courier remembers of an envelope between scans.
type schedule struct {
	next time.Time
	held bool
}

// New makes the courier of d.Queue; Run starts its deliveries.
func New(d Deps) (*Courier, error) {
	cfg := d.Config()
	roots, err := loadRoots(cfg)
	if err != nil {
		return nil, err
	}
	var sts *mtasts.Source
	if cfg.SMTPD.MTASTS {
		if sts, err = newSTSSource(cfg, d.Resolver, roots); err != nil {
			return nil, err
		}
	}
	reports, err := openTLSReports(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	return &Courier{
		cfg:      d.Config,
		log:      d.Log,
		queue:    d.Queue,
		resolver: d.Resolver,
		tlsrpt:   reports,
		sts:      sts,
		roots:    roots,
		secure:   dns.NewSecure(cfg.DNS),
		lmtp:     newLMTPPool(d.Config),
		wakeCh:   make(chan struct{}, 1),
		sem:      make(chan struct{}, cfg.SMTPD.MaxDeliveries),
		inflight: map[string]bool{},
		known:    map[string]schedule{},
		hosts:    newHostTable(),
	}, nil
}

// Wake asks for a scan now: a message was queued.
func (cr *Courier) Wake() {
	select {
	case cr.wakeCh <- struct{}{}:
	default:
	}
}

// pollInterval is how often the runner looks for due messages and for a
// kick from mailq.
const pollInterval = time.Second

// Run delivers until ctx ends, then waits for the deliveries under way.
func (cr *Courier) Run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	lastKick := time.Time{}
	lastFlush := cr.queue.FlushStamp()
	var lastReport time.Time
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		if cr.cfg().SMTPD.TLSReports && time.Since(lastReport) >= tlsReportInterval {
			lastReport = time.Now()
			wg.Add(1)
			go func(now time.Time) {
				defer wg.Done()
				defer listen.Recover(cr.log, "TLS reports")
				cr.SendTLSReports(ctx, now)
			}(lastReport)
		}
		kick := cr.queue.KickStamp()
		reread := !kick.Equal(lastKick)
		lastKick = kick
		if flush := cr.queue.FlushStamp(); !flush.Equal(lastFlush) {
			// mailq -flush: the hosts in backoff are tried again too.
			lastFlush = flush
			cr.hosts.forgetDown()
		}
		cr.scan(ctx, &wg, reread)
		select {
		case <-ctx.Done():
			return
		case <-cr.wakeCh:
		case <-tick.C:
		}
	}
}

// scan starts a delivery for every due message not already in flight.
func (cr *Courier) scan(ctx context.Context, wg *sync.WaitGroup, reread bool) {
	ids, err := cr.queue.IDs()
	if err != nil {
		cr.log.Error("queue scan", "err", err)
		return
	}
	now := time.Now()
	present := make(map[string]bool, len(ids))
	for _, id := range ids {
		present[id] = true
		cr.mu.Lock()
		sc, ok := cr.known[id]
		busy := cr.inflight[id]
		cr.mu.Unlock()
		if busy {
			continue
		}
		if !ok || reread {
			e, err := cr.queue.Get(id)
			if err != nil {
				continue // removed meanwhile, or damaged (Recover deals with it)
			}
			sc = schedule{next: e.NextAttempt, held: e.Held}
			cr.mu.Lock()
			cr.known[id] = sc
			cr.mu.Unlock()
		}
		if sc.held || sc.next.After(now) {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case cr.sem <- struct{}{}:
		}
		cr.mu.Lock()
		cr.inflight[id] = true
		cr.mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-cr.sem }()
			defer listen.Recover(cr.log, "delivery "+id)
			sc := cr.deliver(ctx, id)
			cr.mu.Lock()
			delete(cr.inflight, id)
			if sc != nil {
				cr.known[id] = *sc
			} else {
				delete(cr.known, id)
			}
			cr.mu.Unlock()
		}()
	}
	cr.mu.Lock()
	for id := range cr.known {
		if !present[id] && !cr.inflight[id] {
			delete(cr.known, id)
		}
	}
	cr.mu.Unlock()
}

// deliver makes one delivery attempt of a queued message and returns its
// new schedule, or nil when the message is gone.
func (cr *Courier) deliver(ctx context.Context, id string) *schedule {
	log := cr.log
	c, err := cr.queue.Claim(id)
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
		return &schedule{next: time.Now().Add(cr.cfg().SMTPD.LocalRetry.D())}
	}

	var local []int
	remote := map[string][]int{}
	for _, i := range e.Pending() {
		_, domain, err := mailaddr.Split(e.Recipients[i].Addr)
		switch {
		case err != nil:
			e.Recipients[i].State = queue.Failed
			e.Recipients[i].AddAttempt(queue.Attempt{Time: time.Now(), Code: 553, Reply: "5.1.3 malformed recipient address"})
		case cr.cfg().IsLocalDomain(domain):
			local = append(local, i)
		default:
			remote[domain] = append(remote[domain], i)
		}
	}
	var done []notice // delivered now: the SUCCESS notices owed
	if len(local) > 0 {
		cr.deliverLocal(e, local, rewind(data))
		done = appendDelivered(done, e, local, actionDelivered)
	}
	for domain, idx := range remote {
		if ctx.Err() != nil {
			break
		}
		passedOn := cr.deliverRemote(ctx, e, idx, domain, rewind(data))
		if !passedOn {
			// RFC 3461 5.2.2: the next hop took the message without
			// the DSN extension, so no one after it will report.
			done = appendDelivered(done, e, idx, actionRelayed)
		}
	}
	cr.notifySuccess(e, done, rewind(data))

	// RFC 5321 4.5.4.1: give up after the queue lifetime.
	if life := cr.cfg().SMTPD.QueueLifetime.D(); time.Since(e.Arrival) > life {
		for _, i := range e.Pending() {
			r := &e.Recipients[i]
			last, _ := r.LastAttempt()
			r.State = queue.Failed
			reason := fmt.Sprintf("gave up after %s in the queue; last error: %s", life, last.Reply)
			r.AddAttempt(queue.Attempt{Time: time.Now(), Host: last.Host, Code: 0, Reply: reason})
			maillog.Bounced(log, maillog.Msg{ID: id, From: e.From, To: r.Addr, Via: last.Host}, reason)
		}
	}
	cr.bounce(e, data)
	cr.warnDelay(e, data)

	if e.Done() {
		if err := c.Remove(); err != nil {
			log.Error("remove delivered message", "id", id, "err", err)
			return &schedule{next: time.Now().Add(cr.cfg().SMTPD.LocalRetry.D())}
		}
		log.Debug("queue entry done", "id", id)
		return nil
	}
	e.Tries++
	e.NextAttempt = time.Now().Add(cr.backoff(e))
	if err := c.Save(); err != nil {
		log.Error("save queue entry", "id", id, "err", err)
	}
	return &schedule{next: e.NextAttempt}
}

// backoff is the wait before the next attempt: local_retry when only
// lmtpd is waited for, else retry_min doubling up to retry_max.
func (cr *Courier) backoff(e *queue.Envelope) time.Duration {
	cfg := cr.cfg().SMTPD
	onlyLocal := true
	for _, i := range e.Pending() {
		if _, d, err := mailaddr.Split(e.Recipients[i].Addr); err != nil || !cr.cfg().IsLocalDomain(d) {
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

// deliveryDuration is the duration of a delivered event: the time since
// the message arrived, observed in tern_delivery_seconds. An envelope
// without an arrival time gives 0, which is not observed.
func deliveryDuration(e *queue.Envelope) time.Duration {
	if e.Arrival.IsZero() {
		return 0
	}
	return time.Since(e.Arrival)
}
