package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// loadIdle: N clients log in, SELECT INBOX and IDLE, spread over the mix
// users; once all are idling, the servers' resident memory is read from
// /proc. tern is one imapd process; Dovecot is the master and every process
// below it (login, imap, imap-hibernate, auth…). The sum of RSS counts
// shared libraries once per process, which overstates a forking server, so
// the sum of PSS is given beside it.
func (b *bench) loadIdle(ctx context.Context) {
	n := b.sz.IdleConns
	limit := 128 * float64(n) / 10000
	target := "≤ 128 MiB at 10,000"
	if n != 10000 {
		target = fmt.Sprintf("≤ %.0f MiB (128 MiB × %d/10,000)", limit, n)
	}
	rss := b.addRow(&row{Load: fmt.Sprintf("%d IMAP connections in IDLE: total RSS", n), Unit: "MiB",
		Peer: "Dovecot", Target: target, Met: func(t, _ float64) bool { return t <= limit }})
	pss := b.addRow(&row{Load: fmt.Sprintf("%d IMAP connections in IDLE: total PSS", n), Unit: "MiB", Peer: "Dovecot"})
	users := mixUsers(b.maxClients())
	for _, u := range users {
		if countMaildir(b.tern.maildir(u)) == 0 {
			if err := fillMaildir(b.tern.maildir(u), b.sz.IMAPMessages, 4096, -1, -1); err != nil {
				rss.fail("setup", err)
				return
			}
		}
		if countMaildir(b.dov.maildir(u)) == 0 {
			if err := fillMaildir(b.dov.maildir(u), b.sz.IMAPMessages, 4096, b.uid, b.gid); err != nil {
				rss.fail("setup", err)
				return
			}
		}
	}
	// One round: each side holds N connections, and the TIME_WAIT sockets
	// of a second round would crowd the ephemeral ports.
	_, err := b.withTern(ctx, "idle", 0, []string{"imapd"}, func(ctx context.Context) (float64, error) {
		pid := b.tern.pid("imapd")
		m, err := holdIdle(ctx, b.tern.listenAddr("imapd"), users, n, 0, func() (memUse, error) { return treeMem(pid) })
		if err != nil {
			return 0, err
		}
		rss.Tern = append(rss.Tern, float64(m.RSSKB)/1024)
		pss.Tern = append(pss.Tern, float64(m.PSSKB)/1024)
		logf("  tern: %d process(es), RSS %.0f MiB, PSS %.0f MiB", m.Procs, float64(m.RSSKB)/1024, float64(m.PSSKB)/1024)
		return 0, nil
	})
	if err != nil {
		rss.fail("tern", err)
	}
	if ctx.Err() != nil {
		return
	}
	// Dovecot moves a session into imap-hibernate after
	// imap_hibernate_timeout of IDLE; wait for that before measuring.
	m, err := holdIdle(ctx, fmt.Sprintf("127.0.0.1:%d", b.dov.imap), users, n, b.dov.hibernate+3*time.Second, b.dov.mem)
	if err != nil {
		rss.fail("Dovecot", err)
		return
	}
	rss.Peers = append(rss.Peers, float64(m.RSSKB)/1024)
	pss.Peers = append(pss.Peers, float64(m.PSSKB)/1024)
	rss.Note = "one round"
	pss.Note = fmt.Sprintf("Dovecot: %d processes", m.Procs)
	logf("  Dovecot: %d processes, RSS %.0f MiB, PSS %.0f MiB", m.Procs, float64(m.RSSKB)/1024, float64(m.PSSKB)/1024)
}

// holdIdle opens n IDLE sessions, waits settle, measures, and closes them.
func holdIdle(ctx context.Context, addr string, users []string, n int, settle time.Duration, measure func() (memUse, error)) (memUse, error) {
	conns := make([]*rawIMAP, n)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.close()
			}
		}
	}()
	var next atomic.Int64
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				c, err := openIdle(ctx, addr, users[i%len(users)]+"@"+benchDomain)
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("connection %d: %w", i, err)
					}
					mu.Unlock()
					next.Store(int64(n)) // stop the others
					return
				}
				conns[i] = c
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return memUse{}, firstErr
	}
	if ctx.Err() != nil {
		return memUse{}, ctx.Err()
	}
	logf("  %d sessions idling after %v", n, time.Since(start).Round(100*time.Millisecond))
	select {
	case <-ctx.Done():
		return memUse{}, ctx.Err()
	case <-time.After(settle + time.Second):
	}
	return measure()
}

func openIdle(ctx context.Context, addr, user string) (*rawIMAP, error) {
	c, err := dialRawIMAP(ctx, addr, 512)
	if err != nil {
		return nil, err
	}
	if err := c.login(user, benchPassword); err != nil {
		c.close()
		return nil, err
	}
	if _, err := c.cmd("SELECT INBOX", "", time.Minute); err != nil {
		c.close()
		return nil, err
	}
	if _, err := c.send("IDLE"); err != nil {
		c.close()
		return nil, err
	}
	c.conn.SetReadDeadline(time.Now().Add(time.Minute))
	for {
		l, err := c.readLine()
		if err != nil {
			c.close()
			return nil, fmt.Errorf("IDLE: %w", err)
		}
		if len(l) > 0 && l[0] == '+' {
			return c, nil
		}
		if len(l) > 0 && l[0] != '*' {
			c.close()
			return nil, fmt.Errorf("IDLE: %q", l)
		}
	}
}
