package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

const (
	stressUser     = "stress"
	stressMessages = 400 // messages in the mbox imaptest APPENDs from
)

// loadImaptest: Dovecot's imaptest in its stress mode, K long-lived
// clients (logout=0) on one user's INBOX for a fixed time, against tern's
// imapd and Dovecot in turn. imaptest picks commands at random (SELECT,
// FETCH, STORE, EXPUNGE, APPEND from the mbox…) and checks every answer;
// it prints per-command totals at the end, whose sum over the run time is
// the operations per second. The server's CPU time is read from /proc
// before and after (for Dovecot the master and every process below it,
// plus what its reaped children used), so CPU per operation compares the
// work each server does for the same mix. imaptest is built by hand (it
// needs Dovecot's development headers); without it the rows say so.
func (b *bench) loadImaptest(ctx context.Context) {
	var rows [][2]*row
	for _, k := range b.sz.ImaptestClients {
		name := fmt.Sprintf("imaptest, %d clients, logout=0, %v", k, b.sz.ImaptestDuration)
		ops := b.addRow(&row{Load: name, Unit: "ops/s", Higher: true, Peer: "Dovecot",
			Target: "≥ 1.5× Dovecot", Met: func(t, p float64) bool { return t >= 1.5*p }})
		cpu := b.addRow(&row{Load: name + ": CPU per operation", Unit: "µs", Peer: "Dovecot",
			Target: "≤ 1.0× Dovecot", Met: func(t, p float64) bool { return t <= p }})
		rows = append(rows, [2]*row{ops, cpu})
	}
	bin, err := exec.LookPath(b.opt.imaptest)
	if err != nil {
		for _, r := range rows {
			r[0].Note = fmt.Sprintf("skipped: imaptest not found (%q; give its path with -imaptest)", b.opt.imaptest)
			r[1].Note = "skipped"
		}
		logf("  imaptest not found (%q): skipping its rows", b.opt.imaptest)
		return
	}
	mbox := filepath.Join(b.dir, "imaptest-stress.mbox")
	if err := writeStressMbox(mbox, stressMessages); err != nil {
		rows[0][0].fail("setup", err)
		return
	}
	user := stressUser + "@" + benchDomain
	dovAddr := fmt.Sprintf("127.0.0.1:%d", b.dov.imap)
	for i, k := range b.sz.ImaptestClients {
		ops, cpu := rows[i][0], rows[i][1]
		b.alternate(ctx, []*row{ops}, func(ctx context.Context, round int) (float64, error) {
			return b.withTern(ctx, fmt.Sprintf("imaptest-%d", k), round, []string{"imapd"}, func(ctx context.Context) (float64, error) {
				res, err := b.imaptestRun(ctx, bin, b.tern.listenAddr("imapd"), b.tern.maildir(stressUser),
					user, mbox, k, func() (float64, error) { return procCPU(b.tern.pid("imapd"), false) })
				if err != nil {
					return 0, err
				}
				cpu.Tern = append(cpu.Tern, res.cpuPerOp())
				if res.errors > 0 {
					ops.fail("tern", fmt.Errorf("%d imaptest errors, first: %s", res.errors, res.firstErr))
				}
				return res.rate(), nil
			})
		}, []peerRun{{ops, func(ctx context.Context, _ int) (float64, error) {
			res, err := b.imaptestRun(ctx, bin, dovAddr, b.dov.maildir(stressUser),
				user, mbox, k, func() (float64, error) { return procCPU(b.dov.p.pid(), true) })
			if err != nil {
				return 0, err
			}
			cpu.Peers = append(cpu.Peers, res.cpuPerOp())
			if res.errors > 0 {
				ops.fail("Dovecot", fmt.Errorf("%d imaptest errors, first: %s", res.errors, res.firstErr))
			}
			return res.rate(), nil
		}}})
	}
}

// imaptestResult is one timed imaptest run.
type imaptestResult struct {
	ops      int64         // sum of imaptest's per-command totals
	elapsed  time.Duration // imaptest's run time
	cpu      float64       // server CPU seconds over the run
	errors   int
	firstErr string
}

func (r *imaptestResult) rate() float64 { return float64(r.ops) / r.elapsed.Seconds() }

func (r *imaptestResult) cpuPerOp() float64 { return r.cpu / float64(r.ops) * 1e6 }

// imaptestRun empties the user's INBOX, runs imaptest against addr and
// reads the server's CPU time around it.
func (b *bench) imaptestRun(ctx context.Context, bin, addr, maildir string, user, mbox string, k int, cpuNow func() (float64, error)) (*imaptestResult, error) {
	if err := os.RemoveAll(maildir); err != nil {
		return nil, fmt.Errorf("empty %s: %w", maildir, err)
	}
	host, port, _ := strings.Cut(addr, ":")
	cpu0, err := cpuNow()
	if err != nil {
		return nil, err
	}
	d := b.sz.ImaptestDuration
	cmd := exec.CommandContext(ctx, bin, "host="+host, "port="+port, "user="+user, "pass="+benchPassword,
		"mbox="+mbox, "clients="+strconv.Itoa(k), "secs="+strconv.Itoa(int(d/time.Second)), "logout=0")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err = cmd.Run()
	elapsed := time.Since(start)
	// Let the server finish with the closed connections (Dovecot reaps
	// its imap processes) before reading the CPU time again.
	time.Sleep(500 * time.Millisecond)
	cpu1, cerr := cpuNow()
	if err != nil {
		return nil, fmt.Errorf("imaptest: %w: %s", err, tail(stderr.String(), 600))
	}
	if cerr != nil {
		return nil, cerr
	}
	ops, err := imaptestTotals(stdout.String())
	if err != nil {
		return nil, err
	}
	res := &imaptestResult{ops: ops, elapsed: min(elapsed, d), cpu: cpu1 - cpu0}
	for _, l := range strings.Split(stderr.String(), "\n") {
		if strings.Contains(l, "Error:") {
			if res.errors == 0 {
				res.firstErr = tail(strings.TrimSpace(l), 200)
			}
			res.errors++
		}
	}
	logf("  %s: %d operations in %v, %.2f s CPU, %d errors", addr, ops, res.elapsed.Round(time.Millisecond), res.cpu, res.errors)
	return res, nil
}

// imaptestTotals sums the per-command counts of the line after imaptest's
// "Totals:" header (command names, then percentages, then the counts).
func imaptestTotals(out string) (int64, error) {
	_, after, ok := strings.Cut(out, "\nTotals:\n")
	if !ok {
		return 0, fmt.Errorf("imaptest printed no totals: %s", tail(out, 400))
	}
	var last []string
	for _, l := range strings.Split(after, "\n") {
		f := strings.Fields(l)
		if len(f) == 0 || strings.HasSuffix(f[0], "%") {
			continue
		}
		if _, err := strconv.Atoi(f[0]); err == nil {
			last = f
		}
	}
	if last == nil {
		return 0, fmt.Errorf("imaptest totals without counts: %s", tail(after, 400))
	}
	var sum int64
	for _, f := range last {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("imaptest totals: %q: %w", f, err)
		}
		sum += n
	}
	if sum == 0 {
		return 0, errors.New("imaptest ran no commands")
	}
	return sum, nil
}

// procCPU is the CPU time (user + system, seconds) of pid, with its
// descendants when tree is set. The reaped children's time (cutime,
// cstime) is counted too, so processes that ended during a run are not
// lost.
func procCPU(pid int, tree bool) (float64, error) {
	pids := []int{pid}
	if tree {
		d, err := descendants(pid)
		if err != nil {
			return 0, err
		}
		pids = append(pids, d...)
	}
	var ticks int64
	for i, p := range pids {
		b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(p), "stat"))
		if err != nil {
			if i == 0 {
				return 0, fmt.Errorf("CPU time of %d: %w", p, err)
			}
			continue // ended meanwhile; its parent's cutime has it
		}
		s := string(b)
		j := strings.LastIndexByte(s, ')')
		if j < 0 {
			continue
		}
		// Fields after the command name start at field 3 (state);
		// utime, stime, cutime, cstime are fields 14–17.
		f := strings.Fields(s[j+1:])
		if len(f) < 15 {
			continue
		}
		for _, x := range f[11:15] {
			n, _ := strconv.ParseInt(x, 10, 64)
			ticks += n
		}
	}
	// USER_HZ is 100 on every Linux ABI Go supports.
	return float64(ticks) / 100, nil
}

// writeStressMbox writes n messages of varied sizes in mbox format, the
// same file on every run.
func writeStressMbox(path string, n int) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write stress mbox: %w", err)
	}
	w := bufio.NewWriter(f)
	for i := 0; i < n; i++ {
		fmt.Fprintf(w, "From stress@%s Mon Jan  1 00:00:00 2024\n", benchDomain)
		body := message(1_000_000+i, 800+(i*7919)%12000)
		// mboxrd: a body line starting with "From " gets a ">".
		for _, l := range strings.SplitAfter(string(body), "\n") {
			if strings.HasPrefix(strings.TrimLeft(l, ">"), "From ") {
				w.WriteString(">")
			}
			w.WriteString(l)
		}
		w.WriteString("\n")
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("write stress mbox: %w", err)
	}
	return f.Close()
}
