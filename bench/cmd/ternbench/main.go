// Command ternbench measures tern against Postfix and Dovecot on the same
// machine, in the same run, with the same durability, and prints a Markdown
// table of medians and tern/peer ratios (see bench/README.md).
//
// It must run as root: it starts private Postfix and Dovecot instances in a
// temporary directory, on loopback ports chosen at random, and stops them
// (and tern) before it exits, also on failure and on Ctrl-C. It never reads
// or changes /etc/postfix or /etc/dovecot and never binds 25, 143 or 110.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

const (
	benchDomain   = "example.test"
	benchPassword = "benchpw"
	deliverUser   = benchUser // SMTP and LMTP deliveries
	pop3User      = "pop"
	bigUser       = "big"
)

// sizes is one set of loads: "quick" for a check in under 3 minutes,
// "full" for the figures the issue asks for, in under 20.
type sizes struct {
	Rounds          int
	DeliverMessages int
	MessageSize     int
	SMTPSessions    []int // tern and Postfix with local(8)
	SMTPLMTP        []int // also Postfix → Dovecot LMTP
	LMTPSessions    []int
	POP3Messages    int
	IMAPClients     []int
	IMAPDuration    time.Duration
	IMAPMessages    int // per mix user
	BigFolder       int
	WarmRounds      int
	IdleConns       int
	DiskFiles       int
	// imaptest's stress mode (with the imap load): long-lived clients.
	ImaptestClients  []int
	ImaptestDuration time.Duration
}

var sets = map[string]sizes{
	"quick": {
		Rounds: 2, DeliverMessages: 1000, MessageSize: 10240,
		SMTPSessions: []int{10}, SMTPLMTP: []int{10}, LMTPSessions: []int{10},
		POP3Messages: 1000,
		IMAPClients:  []int{10}, IMAPDuration: 8 * time.Second, IMAPMessages: 200,
		BigFolder: 20000, WarmRounds: 2,
		IdleConns:       1000,
		DiskFiles:       300,
		ImaptestClients: []int{10}, ImaptestDuration: 8 * time.Second,
	},
	"full": {
		Rounds: 3, DeliverMessages: 5000, MessageSize: 10240,
		SMTPSessions: []int{1, 10, 50}, SMTPLMTP: []int{10}, LMTPSessions: []int{1, 10, 50},
		POP3Messages: 5000,
		IMAPClients:  []int{10, 50}, IMAPDuration: 15 * time.Second, IMAPMessages: 500,
		BigFolder: 100000, WarmRounds: 3,
		IdleConns:       10000,
		DiskFiles:       2000,
		ImaptestClients: []int{10, 50}, ImaptestDuration: 20 * time.Second,
	},
}

var allLoads = []string{"disk", "smtp", "lmtp", "pop3", "imap", "bigfolder", "idle"}

type options struct {
	set      string
	bin      string
	src      string
	dir      string
	results  string
	only     string
	rounds   int
	idle     int
	profile  bool
	keep     bool
	imaptest string
}

type bench struct {
	opt     options
	sz      sizes
	dir     string
	uid     int
	gid     int
	stamp   string
	cl      *cleanups
	tern    *ternSys
	dov     *dovecotSys
	pfLocal *postfixSys
	pfLMTP  *postfixSys
	rows    []*row
	details []string
	profDir string
}

func main() {
	var o options
	flag.StringVar(&o.set, "set", "quick", "load set: quick or full")
	flag.StringVar(&o.bin, "bin", "bin", "directory with the built tern daemons")
	flag.StringVar(&o.src, "src", ".", "the source tree, for -profile builds")
	flag.StringVar(&o.dir, "dir", "/var/tmp", "where the temporary directory goes (its file system is measured)")
	flag.StringVar(&o.results, "results", "bench/results", "directory for the Markdown report (and profiles)")
	flag.StringVar(&o.only, "only", "", "comma-separated loads to run ("+strings.Join(allLoads, ",")+"); default all")
	flag.IntVar(&o.rounds, "rounds", 0, "rounds per load (default: the set's)")
	flag.IntVar(&o.idle, "idle", 0, "IDLE connections for the memory load (default: the set's)")
	flag.BoolVar(&o.profile, "profile", false, "save pprof CPU and allocation profiles of tern's daemons (builds them from -src with a pprof hook)")
	flag.StringVar(&o.imaptest, "imaptest", "imaptest", "Dovecot's imaptest, for the imap load's imaptest rows (skipped when not found)")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory (logs, Maildirs) after the run")
	flag.Parse()
	os.Exit(mainErr(o))
}

func mainErr(o options) int {
	sz, ok := sets[o.set]
	if !ok {
		fmt.Fprintf(os.Stderr, "ternbench: unknown set %q (quick or full)\n", o.set)
		return 2
	}
	if o.rounds > 0 {
		sz.Rounds = o.rounds
	}
	if o.idle > 0 {
		sz.IdleConns = o.idle
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "ternbench: must run as root (it starts private Postfix and Dovecot instances)")
		return 2
	}
	only := map[string]bool{}
	for _, l := range strings.Split(o.only, ",") {
		if l = strings.TrimSpace(l); l != "" {
			only[l] = true
		}
	}
	want := func(load string) bool { return len(only) == 0 || only[load] }

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	cl := &cleanups{}
	defer cl.run()

	b := &bench{opt: o, sz: sz, cl: cl, stamp: time.Now().Format("2006-01-02T15-04-05")}
	if err := b.setup(ctx, want); err != nil {
		logf("setup failed: %v", err)
		return 1
	}
	m := machineFacts(ctx, b.dir, o.bin)
	m.Date = time.Now().Format("2006-01-02 15:04 MST")
	if strings.HasPrefix(m.FS, "tmpfs") {
		logf("warning: %s is on tmpfs, where fsync costs nothing; pass -dir on a disk", b.dir)
	}
	start := time.Now()
	for _, l := range []struct {
		name string
		fn   func(context.Context)
	}{
		{"disk", b.loadDisk},
		{"smtp", b.loadSMTP},
		{"lmtp", b.loadLMTP},
		{"pop3", b.loadPOP3},
		{"imap", b.loadIMAP},
		{"bigfolder", b.loadBigFolder},
		{"idle", b.loadIdle},
	} {
		if !want(l.name) || ctx.Err() != nil {
			continue
		}
		t0 := time.Now()
		logf("== %s", l.name)
		l.fn(ctx)
		logf("== %s done in %v", l.name, time.Since(t0).Round(time.Second))
	}
	if ctx.Err() != nil {
		logf("interrupted; stopping everything")
	}
	b.details = append([]string{fmt.Sprintf("Set %s, total time %v, temporary directory %s.", o.set, time.Since(start).Round(time.Second), b.dir)}, b.details...)
	report := markdown(m, o.set, sz.Rounds, b.rows, b.details)
	fmt.Println()
	fmt.Print(report)
	if ctx.Err() != nil {
		logf("interrupted: the report is not saved")
	} else if err := os.MkdirAll(o.results, 0o755); err == nil {
		path := filepath.Join(o.results, b.stamp+"-"+o.set+".md")
		if err := os.WriteFile(path, []byte(report), 0o644); err != nil {
			logf("write report: %v", err)
		} else {
			logf("report written to %s", path)
		}
	}
	if ctx.Err() != nil {
		return 130
	}
	return 0
}

// setup makes the temporary directory and starts the peers.
func (b *bench) setup(ctx context.Context, want func(string) bool) error {
	nofile, err := raiseFileLimit()
	if err != nil {
		return err
	}
	if want("idle") && nofile < uint64(b.sz.IdleConns)+1000 {
		logf("warning: open-file limit %d is low for %d IDLE connections", nofile, b.sz.IdleConns)
	}
	for _, d := range []string{"smtpd", "lmtpd", "imapd", "pop3d"} {
		if _, err := os.Stat(filepath.Join(b.opt.bin, d)); err != nil {
			return fmt.Errorf("tern daemon not built (make build): %w", err)
		}
	}
	if want("idle") {
		restore, err := raiseInotify(b.sz.IdleConns + 1000)
		if err != nil {
			return err
		}
		b.cl.add("restore fs.inotify.max_user_instances", restore)
	}
	if err := ensurePeers(ctx); err != nil {
		return err
	}
	if b.uid, b.gid, err = ensureUser(ctx); err != nil {
		return err
	}
	if err := os.MkdirAll(b.opt.dir, 0o755); err != nil {
		return fmt.Errorf("make %s: %w", b.opt.dir, err)
	}
	if b.dir, err = os.MkdirTemp(b.opt.dir, "ternbench-"); err != nil {
		return fmt.Errorf("make temporary directory: %w", err)
	}
	// The peers' unprivileged processes must reach their files below.
	if err := os.Chmod(b.dir, 0o755); err != nil {
		return fmt.Errorf("chmod %s: %w", b.dir, err)
	}
	dir := b.dir
	b.cl.add("remove "+dir, func() {
		if b.opt.keep {
			logf("kept %s", dir)
			return
		}
		if err := os.RemoveAll(dir); err != nil {
			logf("remove %s: %v", dir, err)
		}
	})
	logf("working in %s", dir)
	if b.opt.profile {
		b.profDir = filepath.Join(b.opt.results, b.stamp+"-profiles")
		if err := os.MkdirAll(b.profDir, 0o755); err != nil {
			return fmt.Errorf("make profile dir: %w", err)
		}
	}

	if b.opt.profile {
		logf("building the daemons with a pprof hook (TERN_PPROF)")
		if b.opt.bin, err = buildProfiling(ctx, b.opt.src, filepath.Join(dir, "bin-pprof")); err != nil {
			return err
		}
	}
	users := []string{deliverUser, pop3User, bigUser, stressUser}
	users = append(users, mixUsers(b.maxClients())...)
	if b.tern, err = newTern(filepath.Join(dir, "tern"), b.opt.bin, users, b.cl); err != nil {
		return err
	}
	if want("lmtp") || want("pop3") || want("imap") || want("bigfolder") || want("idle") || want("smtp") {
		if b.dov, err = newDovecot(ctx, filepath.Join(dir, "dovecot"), users, b.uid, b.gid, b.sz.IdleConns+100, b.cl); err != nil {
			return err
		}
	}
	if want("smtp") {
		if b.pfLocal, err = newPostfix(ctx, filepath.Join(dir, "postfix-local"), "local", "", b.uid, b.gid, b.cl); err != nil {
			return err
		}
		if len(b.sz.SMTPLMTP) > 0 {
			next := fmt.Sprintf("127.0.0.1:%d", b.dov.lmtp)
			if b.pfLMTP, err = newPostfix(ctx, filepath.Join(dir, "postfix-lmtp"), "lmtp", next, b.uid, b.gid, b.cl); err != nil {
				return err
			}
		}
	}
	return nil
}

func (b *bench) maxClients() int {
	n := 0
	for _, k := range b.sz.IMAPClients {
		n = max(n, k)
	}
	return max(n, 1)
}

func mixUsers(n int) []string {
	u := make([]string, n)
	for i := range u {
		u[i] = fmt.Sprintf("mix%02d", i)
	}
	return u
}

func (b *bench) addRow(r *row) *row {
	b.rows = append(b.rows, r)
	return r
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s ternbench: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}
