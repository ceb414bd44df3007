package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"time"
)

// loadSMTP: N messages of 10 KB over SMTP to one local recipient, timed
// from the first connection until the last message is in the Maildir
// (counted in new/ and cur/), at several session counts. tern's smtpd
// answers 250 only once lmtpd has the message fsynced in the Maildir;
// Postfix answers once the queue file is fsynced and delivers afterwards,
// so its clock stops only when local(8) (or Dovecot's LMTP) has written the
// last file.
func (b *bench) loadSMTP(ctx context.Context) {
	n := b.sz.DeliverMessages
	for _, s := range b.sz.SMTPSessions {
		load := fmt.Sprintf("SMTP → Maildir, %d × %d KB, %d session(s)", n, b.sz.MessageSize/1024, s)
		rLocal := b.addRow(&row{Load: load, Unit: "msg/s", Higher: true, Peer: "Postfix → local(8)"})
		if s == 10 {
			rLocal.Target = "≥ 2× Postfix"
			rLocal.Met = func(t, p float64) bool { return t >= 2*p }
		}
		ternRows := []*row{rLocal}
		peers := []peerRun{{rLocal, func(ctx context.Context, round int) (float64, error) {
			return b.peerDeliver(ctx, b.pfLocal.addr(), false, ifWarm(round, n), s, b.pfLocal.maildir(), b.pfLocal.queueEmpty)
		}}}
		if contains(b.sz.SMTPLMTP, s) && b.pfLMTP != nil {
			rLMTP := b.addRow(&row{Load: load, Unit: "msg/s", Higher: true, Peer: "Postfix → LMTP → Dovecot"})
			ternRows = append(ternRows, rLMTP)
			peers = append(peers, peerRun{rLMTP, func(ctx context.Context, round int) (float64, error) {
				return b.peerDeliver(ctx, b.pfLMTP.addr(), false, ifWarm(round, n), s, b.dov.maildir(deliverUser), b.pfLMTP.queueEmpty)
			}})
		}
		b.warmPeers(ctx, peers)
		b.alternate(ctx, ternRows, func(ctx context.Context, round int) (float64, error) {
			return b.withTern(ctx, fmt.Sprintf("smtp-%d", s), round, []string{"lmtpd", "smtpd"}, func(ctx context.Context) (float64, error) {
				return b.ternDeliver(ctx, b.tern.listenAddr("smtpd"), false, n, s)
			})
		}, peers)
	}
}

// loadLMTP: the same messages straight into each server's LMTP.
func (b *bench) loadLMTP(ctx context.Context) {
	n := b.sz.DeliverMessages
	for _, s := range b.sz.LMTPSessions {
		r := b.addRow(&row{Load: fmt.Sprintf("LMTP → Maildir, %d × %d KB, %d session(s)", n, b.sz.MessageSize/1024, s),
			Unit: "msg/s", Higher: true, Peer: "Dovecot LMTP", Target: "≥ 1.5× Dovecot",
			Met: func(t, p float64) bool { return t >= 1.5*p }})
		peers := []peerRun{{r, func(ctx context.Context, round int) (float64, error) {
			return b.peerDeliver(ctx, fmt.Sprintf("127.0.0.1:%d", b.dov.lmtp), true, ifWarm(round, n), s, b.dov.maildir(deliverUser), nil)
		}}}
		b.warmPeers(ctx, peers)
		b.alternate(ctx, []*row{r}, func(ctx context.Context, round int) (float64, error) {
			return b.withTern(ctx, fmt.Sprintf("lmtp-%d", s), round, []string{"lmtpd"}, func(ctx context.Context) (float64, error) {
				return b.ternDeliver(ctx, b.tern.listenAddr("lmtpd"), true, n, s)
			})
		}, peers)
	}
}

func (b *bench) ternDeliver(ctx context.Context, addr string, lmtp bool, n, sessions int) (float64, error) {
	dir := b.tern.maildir(deliverUser)
	if err := os.RemoveAll(dir); err != nil {
		return 0, fmt.Errorf("empty %s: %w", dir, err)
	}
	return deliverRate(ctx, addr, lmtp, n, sessions, b.sz.MessageSize, dir, nil)
}

func (b *bench) peerDeliver(ctx context.Context, addr string, lmtp bool, n, sessions int, dir string, drained func() bool) (float64, error) {
	if err := os.RemoveAll(dir); err != nil {
		return 0, fmt.Errorf("empty %s: %w", dir, err)
	}
	return deliverRate(ctx, addr, lmtp, n, sessions, b.sz.MessageSize, dir, drained)
}

// deliverRate sends n messages with smtp-source (connections reused, -d)
// and returns messages per second until all n are in dir.
func deliverRate(ctx context.Context, addr string, lmtp bool, n, sessions, size int, dir string, drained func() bool) (float64, error) {
	timeout := time.Duration(n)*20*time.Millisecond + 60*time.Second
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	args := []string{"-d", "-l", strconv.Itoa(size), "-m", strconv.Itoa(n), "-s", strconv.Itoa(sessions),
		"-M", "client.example.org", "-f", "sender@example.org", "-t", deliverUser + "@" + benchDomain}
	if lmtp {
		args = append([]string{"-L"}, args...)
	}
	args = append(args, addr)
	start := time.Now()
	out, err := exec.CommandContext(ctx, "smtp-source", args...).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("smtp-source %v: %w: %s", args, err, tail(string(out), 400))
	}
	for {
		got := countMaildir(dir)
		if got >= n {
			if got > n {
				return 0, fmt.Errorf("%d messages in %s, sent %d", got, dir, n)
			}
			break
		}
		select {
		case <-ctx.Done():
			q := ""
			if drained != nil && !drained() {
				q = " (Postfix queue not empty)"
			}
			return 0, fmt.Errorf("only %d of %d messages delivered after %v%s", got, n, timeout, q)
		case <-time.After(5 * time.Millisecond):
		}
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// warmRound is the round number of an untimed warm-up run.
const warmRound = -1

// ifWarm is the message count of a run: a hundred for the warm-up.
func ifWarm(round, n int) int {
	if round == warmRound {
		return min(n, 100)
	}
	return n
}

// warmPeers runs each peer once, untimed, so that the first timed round
// does not pay for the peer's process start-up (Postfix and Dovecot spawn
// their delivery processes on demand). tern's daemons are started afresh
// for every round and get no such help.
func (b *bench) warmPeers(ctx context.Context, peers []peerRun) {
	for _, p := range peers {
		if _, err := p.run(ctx, warmRound); err != nil {
			logf("  warm-up %s: %v", p.row.Peer, err)
		}
	}
}

// peerRun is one peer's side of a comparison and the row it reports in.
type peerRun struct {
	row *row
	run func(ctx context.Context, round int) (float64, error)
}

// alternate runs tern then each peer, round after round (A B A B…), so that
// drift in the machine's load spreads over both sides. tern's figure goes
// into every row in ternRows.
//
// A side that fails sits out the remaining rounds of the load: a failure is
// mostly a timeout, and repeating it would only stretch the run.
func (b *bench) alternate(ctx context.Context, ternRows []*row, tern func(context.Context, int) (float64, error), peers []peerRun) {
	ternOut := false
	peerOut := make([]bool, len(peers))
	for round := 0; round < b.sz.Rounds && ctx.Err() == nil; round++ {
		if !ternOut {
			v, err := tern(ctx, round)
			for _, r := range ternRows {
				if err != nil {
					r.fail("tern", err)
				} else {
					r.Tern = append(r.Tern, v)
				}
			}
			if err != nil {
				ternOut = true
				logf("  round %d tern: %v", round+1, err)
			} else {
				logf("  round %d tern: %s %s", round+1, num(v), ternRows[0].Unit)
			}
		}
		for i, p := range peers {
			if ctx.Err() != nil {
				return
			}
			if peerOut[i] {
				continue
			}
			v, err := p.run(ctx, round)
			if err != nil {
				peerOut[i] = true
				p.row.fail(p.row.Peer, err)
				logf("  round %d %s: %v", round+1, p.row.Peer, err)
				continue
			}
			p.row.Peers = append(p.row.Peers, v)
			logf("  round %d %s: %s %s", round+1, p.row.Peer, num(v), p.row.Unit)
		}
	}
}

func contains(list []int, v int) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}
