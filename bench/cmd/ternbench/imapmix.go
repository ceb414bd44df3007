package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// An IMAP operation of the mix, and how often a client picks it. The
// weights are a mail client's day: mostly reading (bodies, flags),
// some flag changes, a few searches, new mail arriving by APPEND and old
// mail leaving by EXPUNGE at the same rate, so the mailbox keeps its size.
type mixOp struct {
	name   string
	weight int
	run    func(c *imapclient.Client, rng *rand.Rand, n uint32) error
}

var mixOps = []mixOp{
	{"SELECT", 5, func(c *imapclient.Client, _ *rand.Rand, _ uint32) error {
		_, err := c.Select("INBOX", nil).Wait()
		return err
	}},
	{"FETCH 1:* FLAGS", 10, func(c *imapclient.Client, _ *rand.Rand, n uint32) error {
		if n == 0 {
			return nil
		}
		_, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{Flags: true, UID: true}).Collect()
		if err != nil {
			return err
		}
		return nil
	}},
	{"FETCH BODY[]", 30, func(c *imapclient.Client, rng *rand.Rand, n uint32) error {
		if n == 0 {
			return nil
		}
		_, err := c.Fetch(imap.SeqSetNum(1+rng.Uint32N(n)), &imap.FetchOptions{
			UID: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}},
		}).Collect()
		return err
	}},
	{"STORE flags", 20, func(c *imapclient.Client, rng *rand.Rand, n uint32) error {
		if n == 0 {
			return nil
		}
		op := imap.StoreFlagsAdd
		if rng.IntN(2) == 0 {
			op = imap.StoreFlagsDel
		}
		flag := imap.FlagSeen
		if rng.IntN(4) == 0 {
			flag = imap.FlagFlagged
		}
		return c.Store(imap.SeqSetNum(1+rng.Uint32N(n)), &imap.StoreFlags{Op: op, Silent: true, Flags: []imap.Flag{flag}}, nil).Close()
	}},
	{"SEARCH", 10, func(c *imapclient.Client, rng *rand.Rand, _ uint32) error {
		crit := &imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagSeen}}
		if rng.IntN(2) == 0 {
			crit = &imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "From", Value: fmt.Sprintf("sender%d@", rng.IntN(97))}}}
		}
		_, err := c.UIDSearch(crit, nil).Wait()
		return err
	}},
	{"APPEND", 8, func(c *imapclient.Client, rng *rand.Rand, _ uint32) error {
		msg := message(rng.IntN(1_000_000), 5000)
		msg = []byte(strings.ReplaceAll(string(msg), "\n", "\r\n"))
		cmd := c.Append("INBOX", int64(len(msg)), nil)
		if _, err := cmd.Write(msg); err != nil {
			return err
		}
		if err := cmd.Close(); err != nil {
			return err
		}
		_, err := cmd.Wait()
		return err
	}},
	{"STORE \\Deleted + EXPUNGE", 8, func(c *imapclient.Client, rng *rand.Rand, n uint32) error {
		if n < 2 {
			return nil
		}
		if err := c.Store(imap.SeqSetNum(1+rng.Uint32N(n)), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true,
			Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
			return err
		}
		return c.Expunge().Close()
	}},
	{"IDLE", 5, func(c *imapclient.Client, _ *rand.Rand, _ uint32) error {
		cmd, err := c.Idle()
		if err != nil {
			return err
		}
		if err := cmd.Close(); err != nil {
			return err
		}
		return cmd.Wait()
	}},
}

// loadIMAP: K clients, each logged in as its own user with an INBOX of M
// messages, run the mix as fast as the server answers for a fixed time.
func (b *bench) loadIMAP(ctx context.Context) {
	users := mixUsers(b.maxClients())
	logf("  writing %d × %d messages into each server's Maildirs", len(users), b.sz.IMAPMessages)
	for _, u := range users {
		if err := fillMaildir(b.tern.maildir(u), b.sz.IMAPMessages, 4096, -1, -1); err != nil {
			logf("setup: %v", err)
			return
		}
		if err := fillMaildir(b.dov.maildir(u), b.sz.IMAPMessages, 4096, b.uid, b.gid); err != nil {
			logf("setup: %v", err)
			return
		}
	}
	dovAddr := fmt.Sprintf("127.0.0.1:%d", b.dov.imap)
	for _, k := range b.sz.IMAPClients {
		ops := b.addRow(&row{Load: fmt.Sprintf("IMAP mix, %d clients, %v", k, b.sz.IMAPDuration), Unit: "ops/s", Higher: true,
			Peer: "Dovecot", Target: "≥ 1.0× Dovecot", Met: func(t, p float64) bool { return t >= p }})
		p99 := b.addRow(&row{Load: fmt.Sprintf("IMAP mix, %d clients: p99 latency", k), Unit: "ms", Peer: "Dovecot"})
		var ternStats, dovStats []*mixResult
		b.alternate(ctx, []*row{ops}, func(ctx context.Context, round int) (float64, error) {
			return b.withTern(ctx, fmt.Sprintf("imap-%d", k), round, []string{"imapd"}, func(ctx context.Context) (float64, error) {
				res, err := imapMix(ctx, b.tern.listenAddr("imapd"), users, k, b.sz.IMAPDuration)
				if err != nil {
					return 0, err
				}
				ternStats = append(ternStats, res)
				p99.Tern = append(p99.Tern, res.p99())
				return res.rate(), nil
			})
		}, []peerRun{{ops, func(ctx context.Context, _ int) (float64, error) {
			res, err := imapMix(ctx, dovAddr, users, k, b.sz.IMAPDuration)
			if err != nil {
				return 0, err
			}
			dovStats = append(dovStats, res)
			p99.Peers = append(p99.Peers, res.p99())
			return res.rate(), nil
		}}})
		b.details = append(b.details, mixDetails(k, ternStats, dovStats))
	}
	b.loadImaptest(ctx)
}

// mixResult is what one timed run of the mix saw.
type mixResult struct {
	elapsed time.Duration
	lat     map[string][]float64 // per operation, milliseconds
}

func (m *mixResult) all() []float64 {
	var v []float64
	for _, l := range m.lat {
		v = append(v, l...)
	}
	return v
}

func (m *mixResult) rate() float64 { return float64(len(m.all())) / m.elapsed.Seconds() }
func (m *mixResult) p99() float64  { return percentile(m.all(), 99) }

// imapMix runs k clients against addr for d. Logins and the first SELECT
// (which lets a server index the mailbox) are not timed.
func imapMix(ctx context.Context, addr string, users []string, k int, d time.Duration) (*mixResult, error) {
	clients := make([]*imapclient.Client, k)
	defer func() {
		for _, c := range clients {
			if c != nil {
				c.Close()
			}
		}
	}()
	for i := range clients {
		c, err := imapclient.DialInsecure(addr, nil)
		if err != nil {
			return nil, fmt.Errorf("client %d: dial: %w", i, err)
		}
		clients[i] = c
		if err := c.Login(users[i%len(users)]+"@"+benchDomain, benchPassword).Wait(); err != nil {
			return nil, fmt.Errorf("client %d: login: %w", i, err)
		}
		if _, err := c.Select("INBOX", nil).Wait(); err != nil {
			return nil, fmt.Errorf("client %d: select: %w", i, err)
		}
	}
	total := 0
	for _, op := range mixOps {
		total += op.weight
	}
	res := &mixResult{lat: map[string][]float64{}}
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	start := time.Now()
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 42))
			lat := map[string][]float64{}
			defer func() {
				mu.Lock()
				for k, v := range lat {
					res.lat[k] = append(res.lat[k], v...)
				}
				mu.Unlock()
			}()
			for ctx.Err() == nil {
				x := rng.IntN(total)
				op := mixOps[0]
				for _, o := range mixOps {
					if x < o.weight {
						op = o
						break
					}
					x -= o.weight
				}
				n := uint32(0)
				if mb := c.Mailbox(); mb != nil {
					n = mb.NumMessages
				}
				t0 := time.Now()
				if err := op.run(c, rng, n); err != nil {
					if ctx.Err() != nil {
						return
					}
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("client %d: %s: %w", i, op.name, err)
					}
					mu.Unlock()
					cancel()
					return
				}
				lat[op.name] = append(lat[op.name], float64(time.Since(t0).Microseconds())/1000)
			}
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	if firstErr != nil {
		return nil, firstErr
	}
	for _, c := range clients {
		_ = c.Logout().Wait()
	}
	return res, nil
}

// mixDetails is the per-operation breakdown (count, p50, p99) of all
// rounds, as a Markdown block.
func mixDetails(k int, tern, dov []*mixResult) string {
	merge := func(rs []*mixResult) map[string][]float64 {
		m := map[string][]float64{}
		for _, r := range rs {
			for op, v := range r.lat {
				m[op] = append(m[op], v...)
			}
		}
		return m
	}
	t, d := merge(tern), merge(dov)
	var names []string
	for _, op := range mixOps {
		names = append(names, op.name)
	}
	sort.Strings(names)
	out := []string{fmt.Sprintf("IMAP mix, %d clients, per operation over all rounds (count; p50 / p99 ms):", k), "",
		"| operation | tern | Dovecot |", "| --- | ---: | ---: |"}
	cell := func(v []float64) string {
		if len(v) == 0 {
			return "—"
		}
		return fmt.Sprintf("%d; %s / %s", len(v), num(percentile(v, 50)), num(percentile(v, 99)))
	}
	for _, n := range names {
		out = append(out, fmt.Sprintf("| %s | %s | %s |", n, cell(t[n]), cell(d[n])))
	}
	return strings.Join(out, "\n")
}
