// Package powercut shows that what tern acknowledges survives a power
// cut, not only a crash of its processes. A SIGKILL keeps everything the
// kernel already has, so it cannot tell whether an fsync is missing; a
// power cut loses the page cache, and only what fsync made durable
// remains.
//
// The daemons (built binaries, as in test/) run with their Maildirs and
// queue on crashfs (test/crashfs), a FUSE file system that records what
// each fsync of a file and of a directory made durable. Clients drive them
// at the same time: SMTP to the MX port (delivered at once through lmtpd,
// or queued when lmtpd is down), LMTP straight to lmtpd, IMAP APPEND,
// POP3 RETR + DELE + QUIT (the UPDATE state), and IMAP UID STORE \Deleted
// + UID EXPUNGE. Once a few deliveries were acknowledged, and a random
// 0-150 ms later, the power is cut: crashfs takes the image of the disk
// (unsynced data lost or torn, unsynced directory entries reverted or
// kept, each chosen at random within what POSIX and ext4 allow), every
// fsync still in flight never returns, the daemons are killed, and tern
// starts again on the image, with a new boot id (tern's change log tells
// a machine crash from a process crash by it). Before the next load the
// clients' record is checked against what tern serves over IMAP (and, at
// the end, POP3): every message acknowledged with 250, LMTP 250 or
// OK [APPENDUID] is there, once and whole, or still in the queue (mailq);
// no torn or unknown message is served; every removal acknowledged (QUIT
// +OK, UID EXPUNGE OK) stays done, and nothing else is removed; no UID is
// given to two messages and no message changes UID within a UIDVALIDITY.
// Every fourth round runs without lmtpd, so that smtpd's 250 rests on the
// queue; the rounds after it deliver the queue, and the last one waits
// until it is empty. Duplicates (a message served twice) are counted; a
// queued message may be delivered twice when a cut falls between its
// delivery and the removal of its envelope (tern-queue(5)).
//
// Which steps the cuts fall into: the cuts land at random times in a
// concurrent load of deliveries and removals, so over hundreds of cuts
// they fall between every two steps of the write paths. crashfs reports,
// at each cut, the state of every file by directory, and the test logs in
// how many cuts each occurred and fails if a step below was never cut:
//
//   - Maildir delivery (tmp/ or O_TMPFILE → fsync → link into new/ →
//     fsync of new/ → 250): "dirty" in tmp/ is a message being written,
//     "(unlinked)" an O_TMPFILE synced and not linked yet, "unnamed" in
//     new/ a message linked after its fsync but before new/'s, "durable"
//     in new/ a message whose reply may not be out yet (a cut there makes
//     a delivery without 250).
//   - APPEND and the moves from new/ to cur/ (rename into cur/ → fsync of
//     cur/ and of the change log → OK): "unnamed" in cur/, and "dirty"
//     change log lines in the folder directory.
//   - Expunge and POP3 UPDATE (unlink in cur/ → fsync of cur/ → OK):
//     "removed" in cur/.
//   - Queue (spool in tmp/ → fsync → rename into data/ → fsync of data/
//     → envelope tmp/ID.env → fsync → rename into env/ → fsync of env/ →
//     250; delivery, then removal of env/ and data/): "dirty" and
//     "unnamed" in queue/tmp, "unnamed" in queue/data and queue/env,
//     "removed" in queue/env and queue/data.
//
// TestPowerCutFindsMissingFsync runs the same rounds with daemons built
// with -tags powercut_nofsync, which drops the fsync of new/ from
// delivery (common/maildir/powercut_nofsync.go), and requires that the
// check finds acknowledged mail lost: the test can fail.
//
// TERN_POWERCUT_CUTS sets the number of cuts (default 210; 40 with
// -short), for a longer soak. For debugging a failure:
// TERN_POWERCUT_KEEP=DIR keeps every disk, TERN_POWERCUT_TRACE=FILE logs
// every fsync and entry change, TERN_POWERCUT_TIMING=1 logs each phase.
package powercut

import (
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"tern/test/crashfs"
)

var users = []string{"demo", "alice"}

// run is a sequence of rounds on one env.
type run struct {
	e   *env
	rec *record
	rng *rand.Rand

	cuts                  int
	queueCuts             int
	coverage              map[string]map[string]int // area → state → cuts that found it
	torn, reverted, kept  int
	fileSyncs, dirSyncs   int
	loadErrs              []string
	uvs                   map[string]map[uint32]bool
	loadSMTP, loadLMTP    bool
	loadIMAP, loadRemoval bool
}

func newRun(t *testing.T, bin string, seed uint64) *run {
	e := newEnv(t, bin, seed)
	return &run{e: e, rec: newRecord(), rng: rand.New(rand.NewPCG(seed, 1)), coverage: map[string]map[string]int{},
		uvs: map[string]map[uint32]bool{}, loadSMTP: true, loadLMTP: true, loadIMAP: true, loadRemoval: true}
}

// setup creates the users' Maildirs and the queue and shuts down
// cleanly, as on an installed system that has received mail before.
func (r *run) setup() {
	e := r.e
	e.mount()
	e.start("lmtpd", "smtpd", "imapd", "pop3d")
	for _, u := range users {
		m := r.rec.newMsg(r.rng, u, "lmtp")
		if err := deliverOne(e.lmtp, m); err != nil {
			e.t.Fatalf("first delivery: %v", err)
		}
		r.rec.ack(m, "", false)
	}
	if err := r.verify("setup"); err != nil {
		e.t.Fatal(err)
	}
	e.shutdown()
}

// verify checks the record against what tern serves now.
func (r *run) verify(where string) error {
	// The queue is listed before the mailboxes are read, so that a
	// message the queue delivers meanwhile is found in one of them.
	var q map[string]bool
	if r.rec.queuedPending() {
		q = r.e.queued()
	}
	queued := func() map[string]bool { return q }
	for _, u := range users {
		if err := verifyIMAP(r.rec, r.e.imap, u, queued, where); err != nil {
			return err
		}
	}
	return nil
}

// round restarts tern on the disk the last cut left, checks it, runs the
// load and cuts the power.
func (r *run) round(queueMode bool) {
	e := r.e
	t0 := time.Now()
	e.mount()
	daemons := []string{"smtpd", "imapd", "pop3d"}
	if !queueMode {
		daemons = append(daemons, "lmtpd")
	}
	t1 := time.Now()
	e.start(daemons...)
	t2 := time.Now()
	where := "after cut " + strconv.Itoa(r.cuts)
	if err := r.verify(where); err != nil {
		e.t.Fatalf("%s: %v", where, err)
	}
	t3 := time.Now()
	defer func() {
		if os.Getenv("TERN_POWERCUT_TIMING") != "" {
			e.t.Logf("round %d: mount %v start %v verify %v load+cut %v", r.cuts, t1.Sub(t0), t2.Sub(t1), t3.Sub(t2), time.Since(t3))
		}
	}()

	r.rec.mu.Lock()
	r.rec.round = r.cuts
	r.rec.mu.Unlock()
	l := &load{}
	seed := r.rng.Uint64()
	rng := func(i uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, i)) }
	if r.loadSMTP {
		for i := range uint64(2) {
			g := rng(i)
			l.run(func() { smtpSession(l, r.rec, g, e.mx) })
		}
	}
	if r.loadLMTP && !queueMode {
		g := rng(3)
		l.run(func() { lmtpSession(l, r.rec, g, e.lmtp) })
	}
	if r.loadIMAP {
		g := rng(4)
		l.run(func() { appendSession(l, r.rec, g, e.imap) })
	}
	if r.loadRemoval {
		g1, g2 := rng(5), rng(6)
		l.run(func() { pop3Session(l, r.rec, g1, e.pop3) })
		l.run(func() { expungeSession(l, r.rec, g2, e.imap) })
	}
	// The cut comes at a random point once the clients are under way:
	// after a few acknowledgements, then up to 150 ms more.
	acks, want := r.rec.ackCount(), 1+r.rng.IntN(8)
	for deadline := time.Now().Add(5 * time.Second); r.rec.ackCount() < acks+want && time.Now().Before(deadline); {
		time.Sleep(2 * time.Millisecond)
	}
	time.Sleep(time.Duration(r.rng.IntN(150)) * time.Millisecond)

	img, st := r.cutNow(l)
	r.cuts++
	if queueMode {
		r.queueCuts++
	}
	r.torn += img.Torn
	r.reverted += img.Reverted
	r.kept += img.Kept
	r.fileSyncs += st.FileSyncs
	r.dirSyncs += st.DirSyncs
	for a, states := range img.Coverage {
		for s, n := range states {
			if n == 0 {
				continue
			}
			if r.coverage[a] == nil {
				r.coverage[a] = map[string]int{}
			}
			r.coverage[a][s]++
		}
	}
	l.mu.Lock()
	r.loadErrs = append(r.loadErrs, l.errs...)
	l.mu.Unlock()
}

func (r *run) cutNow(l *load) (*crashfs.Image, crashfs.Stats) {
	st := r.e.cfs.Stats()
	t0 := time.Now()
	img, err := r.e.cfs.Cut(r.e.rng)
	if err != nil {
		r.e.t.Fatal(err)
	}
	t1 := time.Now()
	l.stop.Store(true)
	r.e.killAll()
	r.e.cfs.Release()
	r.e.reap()
	t2 := time.Now()
	l.halt()
	t3 := time.Now()
	r.e.next(img)
	if os.Getenv("TERN_POWERCUT_TIMING") != "" {
		r.e.t.Logf("cut %v kill %v halt %v next %v", t1.Sub(t0), t2.Sub(t1), t3.Sub(t2), time.Since(t3))
	}
	return img, st
}

// final restarts everything, waits until the queue has delivered, and
// checks over IMAP and POP3.
func (r *run) final() {
	e := r.e
	e.mount()
	e.start("lmtpd", "smtpd", "imapd", "pop3d")
	deadline := time.Now().Add(60 * time.Second)
	for len(e.queued()) > 0 {
		if time.Now().After(deadline) {
			e.t.Errorf("the queue still holds %d messages after 60 s", len(e.queued()))
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	q := e.queued()
	queued := func() map[string]bool { return q }
	for _, u := range users {
		if err := verifyIMAP(r.rec, e.imap, u, queued, "final"); err != nil {
			e.t.Fatal(err)
		}
		if err := verifyPOP3(r.rec, e.pop3, u, queued, "final"); err != nil {
			e.t.Fatal(err)
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(e.mnt, "spool", "queue", "corrupt")); len(ents) > 0 {
		e.t.Errorf("%d messages set aside in the queue's corrupt/", len(ents))
	}
	e.shutdown()
}

func (r *run) report(t *testing.T) {
	acked, dups, unacked := r.rec.totals()
	rec := r.rec
	t.Logf("%d power cuts (%d with lmtpd down, smtpd queueing); %d fsyncs of files and %d of directories before them",
		r.cuts, r.queueCuts, r.fileSyncs, r.dirSyncs)
	t.Logf("acknowledged: %d messages (SMTP %d, LMTP %d, APPEND %d), %d removals (POP3 QUIT, UID EXPUNGE); %d checks of a mailbox",
		acked, rec.acked["smtp"], rec.acked["lmtp"], rec.acked["append"], rec.removedAcked, rec.verified)
	t.Logf("lost %d, torn or unknown served %d, UIDs reused or changed %d, removals undone %d; "+
		"duplicates %d (%.2f%% of acknowledged); delivered without an acknowledgement %d",
		rec.lost, rec.torn, rec.reused, rec.resurrected, dups, 100*float64(dups)/float64(max(acked, 1)), unacked)
	t.Logf("images: %d files torn or reverted, %d directories reverted, %d unsynced entries kept", r.torn, r.reverted, r.kept)
	var areas []string
	for a := range r.coverage {
		areas = append(areas, a)
	}
	sort.Strings(areas)
	var b strings.Builder
	for _, a := range areas {
		b.WriteString("\n  " + a + ":")
		for _, s := range []string{"dirty", "unnamed", "durable", "removed"} {
			b.WriteString(" " + s + "=" + strconv.Itoa(r.coverage[a][s]))
		}
	}
	t.Logf("cuts that found a file in each state, by directory:%s", b.String())
	if len(r.loadErrs) > 0 {
		t.Logf("protocol errors during the load (before the cut): %s", strings.Join(r.loadErrs[:min(10, len(r.loadErrs))], "; "))
	}
	for _, ex := range rec.examples {
		t.Log("  " + ex)
	}
}

func cutsWanted(t *testing.T) int {
	if s := os.Getenv("TERN_POWERCUT_CUTS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("TERN_POWERCUT_CUTS=%q: want a positive number", s)
		}
		return n
	}
	if testing.Short() {
		return 40
	}
	return 210
}

// TestPowerCut is the acceptance run: every acknowledged message and
// removal survives every cut.
func TestPowerCut(t *testing.T) {
	requireFUSE(t)
	r := newRun(t, daemons(t, ""), uint64(time.Now().UnixNano()))
	r.setup()
	n := cutsWanted(t)
	for i := range n {
		r.round(i%4 == 3)
	}
	r.final()
	r.report(t)
	acked, dups, _ := r.rec.totals()
	if r.rec.lost > 0 || r.rec.torn > 0 || r.rec.reused > 0 || r.rec.resurrected > 0 {
		t.Errorf("after %d power cuts: %d acknowledged messages lost, %d torn messages served, %d UIDs reused, %d removals undone",
			r.cuts, r.rec.lost, r.rec.torn, r.rec.reused, r.rec.resurrected)
	}
	if dups*200 > acked {
		t.Errorf("%d duplicates for %d acknowledged messages: more than 0.5%%", dups, acked)
	}
	if acked < 3*n {
		t.Errorf("only %d messages acknowledged in %d rounds: the load did not run", acked, n)
	}
	// The steps each write path must have been cut in (see the package
	// doc); the other states are logged.
	for _, want := range [][2]string{
		{"Maildir/new", "unnamed"}, // delivery: linked, new/ not yet fsynced
		{"Maildir/cur", "unnamed"}, // APPEND or a move from new/: renamed, cur/ not yet fsynced
		{"Maildir/cur", "removed"}, // EXPUNGE or POP3 UPDATE: unlinked, cur/ not yet fsynced
		{"queue/tmp", "dirty"},     // queue: spool written, not yet fsynced
		{"queue/tmp", "unnamed"},   // queue: spool or envelope fsynced, not yet renamed or its directory fsynced
		{"queue/data", "removed"},  // queue: delivered, removal not yet durable
	} {
		if r.coverage[want[0]][want[1]] == 0 {
			t.Errorf("no cut found a file %s in %s: the cuts do not cover that step", want[1], want[0])
		}
	}
}

// TestPowerCutFindsMissingFsync runs deliveries with the fsync of new/
// removed (-tags powercut_nofsync) and requires the check to find
// acknowledged mail lost.
func TestPowerCutFindsMissingFsync(t *testing.T) {
	requireFUSE(t)
	r := newRun(t, daemons(t, "powercut_nofsync"), uint64(time.Now().UnixNano()))
	r.loadIMAP, r.loadRemoval = false, false
	r.setup()
	for r.cuts < 40 && r.rec.lost == 0 {
		r.round(false)
	}
	r.final()
	r.report(t)
	if r.rec.lost == 0 {
		t.Errorf("with the fsync of new/ removed, %d power cuts lost no acknowledged message: the test cannot fail", r.cuts)
	}
}

// deliverOne delivers one message over LMTP.
func deliverOne(sock string, m *msg) error {
	conn, err := dial("unix", sock)
	if err != nil {
		return err
	}
	c := smtp.NewClientLMTP(conn)
	defer c.Close()
	if err := c.Hello("client.example.test"); err != nil {
		return err
	}
	if err := c.Mail("alice@example.test", nil); err != nil {
		return err
	}
	if err := c.Rcpt(m.user+"@example.test", nil); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(m.body); err != nil {
		return err
	}
	if _, err := w.CloseWithLMTPResponse(); err != nil {
		return errors.Join(errors.New("LMTP DATA"), err)
	}
	return c.Quit()
}
