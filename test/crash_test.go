package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/smtp"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Outages and crashes: what smtpd has answered 250 to must reach the
// Maildir whatever stops in between, lmtpd for a while or smtpd itself.

// TestLMTPDownQueues stops lmtpd, sends mail to a local user, and checks
// that smtpd accepts it into the queue and delivers it once lmtpd is back,
// on its own schedule (local_retry) rather than by a flush.
func TestLMTPDownQueues(t *testing.T) {
	tn := StartTern(t)
	mtaReconfigureSMTPD(t, tn, `local_retry = "1s"`)
	tn.Stop(t, "lmtpd")

	out := python(t, `
import smtplib, sys
host, port = sys.argv[1].rsplit(":", 1)
msg = b"From: <alice@example.test>\r\nTo: <demo@example.test>\r\nSubject: while lmtpd was down\r\n\r\nwaiting\r\n"
with smtplib.SMTP(host, int(port), timeout=30) as s:
    s.ehlo("client.example.test")
    s.mail("alice@example.test")
    code, text = s.rcpt("demo@example.test")
    assert code == 250, (code, text)
    code, text = s.data(msg)
    print(code, text.decode())
`, tn.MX)
	if !strings.HasPrefix(out, "250 ") {
		t.Fatalf("DATA with lmtpd down answered %q, want 250", out)
	}
	ids := mtaQueueIDs(t, tn)
	if len(ids) != 1 {
		t.Fatalf("%d messages queued with lmtpd down, want 1", len(ids))
	}
	if !strings.Contains(out, ids[0]) {
		t.Errorf("the 250 reply %q does not name queue id %s", out, ids[0])
	}
	if n := len(mtaInbox(t, tn.Maildir("demo"))); n != 0 {
		t.Fatalf("%d messages in the Maildir while lmtpd was down", n)
	}
	// Retries come every local_retry and fail while lmtpd stays down; the
	// message stays queued, as mailq -json shows with its tries.
	var last mtaQueued
	mtaWaitUntil(t, 10*time.Second, "a retry of the queued message", func() bool {
		q := mtaMailqJSON(t, tn)
		if len(q) == 1 {
			last = q[0]
		}
		return len(q) == 1 && q[0].Tries >= 2
	})
	if last.QueueName != "deferred" || len(last.Recipients) != 1 || last.Recipients[0].State != "pending" ||
		!strings.Contains(last.Recipients[0].DelayReason, "lmtp") {
		t.Errorf("mailq -json while lmtpd is down: %+v", last)
	}
	listing := mtaMailq(t, tn)
	if !strings.Contains(listing, ids[0]) || !strings.Contains(listing, "demo@example.test") {
		t.Errorf("mailq while lmtpd is down:\n%s", listing)
	}
	t.Logf("mailq while lmtpd is down:\n%s", listing)

	tn.Start(t, "lmtpd")
	got := mtaWaitInbox(t, tn.Maildir("demo"), "Subject: while lmtpd was down", 15*time.Second, nil)
	if !strings.HasPrefix(got, "Return-Path: <alice@example.test>") {
		t.Errorf("delivered message:\n%s", got)
	}
	mtaWaitQueueEmpty(t, tn, 10*time.Second)
	if n := len(mtaInbox(t, tn.Maildir("demo"))); n != 1 {
		t.Errorf("%d copies delivered, want 1", n)
	}
}

// TestSMTPDKilledUnderLoad sends 2,000 messages from several clients at
// once, kills smtpd with SIGKILL halfway, restarts it while the clients
// keep sending, and checks that every message that got 250 is in the
// Maildir once the queue is empty. A message whose transaction was cut
// by the kill may be delivered or not (the client was never told), and
// may be delivered twice; a 250 that is lost is the failure.
func TestSMTPDKilledUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("sends 2,000 messages")
	}
	tn := StartTern(t)
	mtaReconfigureSMTPD(t, tn)
	load := startCrashLoad(t, tn, 2000, 8)
	if !load.waitAccepted(1000) {
		t.Fatalf("only %d messages accepted before the deadline", load.ok.Load())
	}
	killedAt := load.ok.Load()
	mtaKillSMTPD(t, tn)
	tn.Start(t, "smtpd")
	load.wait()
	t.Logf("smtpd killed after %d messages answered 250", killedAt)
	load.check(t, tn)
}

// TestSMTPDKilledWithBacklog kills smtpd while hundreds of accepted
// messages wait in its queue for lmtpd, which was stopped before the
// load, and checks that the restarted smtpd delivers every one of them
// once lmtpd is back.
func TestSMTPDKilledWithBacklog(t *testing.T) {
	if testing.Short() {
		t.Skip("sends 600 messages")
	}
	tn := StartTern(t)
	mtaReconfigureSMTPD(t, tn, `local_retry = "1s"`)
	tn.Stop(t, "lmtpd")
	load := startCrashLoad(t, tn, 600, 4)
	if !load.waitAccepted(300) {
		t.Fatalf("only %d messages accepted before the deadline", load.ok.Load())
	}
	mtaKillSMTPD(t, tn)
	backlog := len(mtaQueueIDs(t, tn))
	tn.Start(t, "smtpd")
	load.wait()
	queued := len(mtaQueueIDs(t, tn))
	if n := len(mtaInbox(t, tn.Maildir("demo"))); n != 0 {
		t.Fatalf("%d messages in the Maildir with lmtpd down", n)
	}
	t.Logf("%d messages queued when smtpd was killed, %d when lmtpd came back", backlog, queued)
	if int64(queued) < load.ok.Load() {
		t.Errorf("%d messages answered 250 with lmtpd down but only %d in the queue", load.ok.Load(), queued)
	}
	tn.Start(t, "lmtpd")
	load.check(t, tn)
}

// crashLoad is a set of SMTP clients sending numbered messages to
// demo@example.test on tern's MX port, each over one session after
// another: when a session breaks (smtpd was killed), the client opens a
// new one and goes on with the next number.
type crashLoad struct {
	total    int64
	clients  int
	start    time.Time
	deadline time.Time
	next     atomic.Int64 // the next message number to send
	ok       atomic.Int64 // messages answered 250
	cut      atomic.Int64 // transactions cut without a reply
	accepted sync.Map     // message number → true, for every 250
	abort    atomic.Bool  // the test ended early: stop sending
	wg       sync.WaitGroup
	elapsed  time.Duration

	mu       sync.Mutex
	refusals []string // transactions answered with an error code
}

func startCrashLoad(t *testing.T, tn *Tern, total int64, clients int) *crashLoad {
	l := &crashLoad{total: total, clients: clients, start: time.Now()}
	// A test that fails early leaves no client behind (this runs before
	// StartTern's cleanup stops the daemons).
	t.Cleanup(func() {
		l.abort.Store(true)
		l.wg.Wait()
	})
	// The deadline keeps a daemon that never comes back from hanging
	// the test: the clients give up on it.
	l.deadline = l.start.Add(90 * time.Second)
	for range clients {
		l.wg.Add(1)
		go l.client(tn.MX)
	}
	return l
}

func (l *crashLoad) client(addr string) {
	defer l.wg.Done()
	var c *smtp.Client
	defer func() {
		if c != nil {
			c.Quit()
			c.Close()
		}
	}()
	for {
		n := l.next.Add(1) - 1
		if n >= l.total || l.abort.Load() {
			return
		}
		for c == nil {
			var err error
			if c, err = crashDial(addr, l.deadline); err != nil {
				c = nil
				if time.Now().After(l.deadline) || l.abort.Load() {
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		err := crashSend(c, n)
		var reply *textproto.Error
		switch {
		case err == nil:
			l.accepted.Store(n, true)
			l.ok.Add(1)
		case errors.As(err, &reply):
			// An answer that is not 250: not accepted, but not a crash
			// either; check reports these.
			l.mu.Lock()
			l.refusals = append(l.refusals, fmt.Sprintf("message %d: %v", n, err))
			l.mu.Unlock()
			if c.Reset() != nil {
				c.Close()
				c = nil
			}
		default:
			// The connection broke: the kill. The client got no 250, so
			// whether the message arrives is open.
			l.cut.Add(1)
			c.Close()
			c = nil
		}
	}
}

// waitAccepted waits until n messages got 250, or the deadline.
func (l *crashLoad) waitAccepted(n int64) bool {
	for l.ok.Load() < n {
		if time.Now().After(l.deadline) {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
	return true
}

// wait waits until every message was tried.
func (l *crashLoad) wait() {
	l.wg.Wait()
	l.elapsed = time.Since(l.start)
}

// check waits for an empty queue and compares the Maildir with what got
// 250: each of those must be there at least once.
func (l *crashLoad) check(t *testing.T, tn *Tern) {
	t.Helper()
	mtaWaitQueueEmpty(t, tn, 30*time.Second)
	delivered := map[int64]int{}
	idRE := regexp.MustCompile(`(?m)^Message-ID: <crash-(\d+)@client\.example\.test>`)
	for _, msg := range mtaInbox(t, tn.Maildir("demo")) {
		m := idRE.FindStringSubmatch(msg)
		if m == nil {
			t.Errorf("a message in the Maildir without a test Message-ID:\n%.500s", msg)
			continue
		}
		n, _ := strconv.ParseInt(m[1], 10, 64)
		delivered[n]++
	}
	var lost []int64
	l.accepted.Range(func(k, _ any) bool {
		if delivered[k.(int64)] == 0 {
			lost = append(lost, k.(int64))
		}
		return true
	})
	duplicates, unacked := 0, 0
	for n, c := range delivered {
		duplicates += c - 1
		if _, ok := l.accepted.Load(n); !ok {
			unacked++ // cut by the kill after the message was durable
		}
	}
	slices.Sort(lost)
	t.Logf("%d messages from %d clients in %v: %d answered 250, %d cut by the kill, %d refused; "+
		"%d delivered (%d without a 250), %d duplicates, %d lost",
		l.total, l.clients, l.elapsed.Round(time.Millisecond), l.ok.Load(), l.cut.Load(), len(l.refusals),
		len(delivered), unacked, duplicates, len(lost))
	if len(l.refusals) > 0 {
		t.Errorf("%d transactions refused (only the kill may fail them): %s",
			len(l.refusals), strings.Join(l.refusals[:min(len(l.refusals), 10)], "; "))
	}
	if len(lost) > 0 {
		t.Errorf("%d messages answered 250 are not in the Maildir: %v", len(lost), lost[:min(len(lost), 20)])
	}
	if l.ok.Load() < l.total*3/4 {
		t.Errorf("only %d of %d messages answered 250", l.ok.Load(), l.total)
	}
	// Recover (at the restart) clears what the kill left half written;
	// nothing may have been set aside as damaged.
	for _, sub := range []string{"tmp", "corrupt"} {
		ents, _ := os.ReadDir(filepath.Join(tn.Dir, "spool", "queue", sub))
		if len(ents) > 0 {
			t.Errorf("%d files left in the queue's %s/ directory", len(ents), sub)
		}
	}
}

// mtaKillSMTPD kills smtpd with SIGKILL: no 421, no cleanup, files half
// written as they are.
func mtaKillSMTPD(t *testing.T, tn *Tern) {
	t.Helper()
	cmd := tn.procs["smtpd"]
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill smtpd: %v", err)
	}
	cmd.Wait()
	delete(tn.procs, "smtpd")
}

// crashDial opens an SMTP session on tern's MX port.
func crashDial(addr string, deadline time.Time) (*smtp.Client, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	conn.SetDeadline(deadline)
	c, err := smtp.NewClient(conn, "mail.example.test")
	if err != nil {
		conn.Close()
		return nil, err
	}
	if err := c.Hello("client.example.test"); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// crashSend sends message n in one transaction; nil means 250 after DATA.
func crashSend(c *smtp.Client, n int64) error {
	if err := c.Mail("alice@example.test"); err != nil {
		return err
	}
	if err := c.Rcpt("demo@example.test"); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "From: <alice@example.test>\r\nTo: <demo@example.test>\r\n"+
		"Subject: load %d\r\nMessage-ID: <crash-%d@client.example.test>\r\n\r\nmessage %d of the load\r\n", n, n, n)
	return w.Close()
}

// mtaReconfigureSMTPD adds lines to the [smtpd] section of tn's config
// and restarts smtpd so that it reads them. StartTern has already started
// it with the base config; the other daemons keep running.
//
// It also points [dns] (unless the config sets it) at a loopback port
// where nothing listens: the test machine has no DNS, and its system
// resolver lets queries time out, which would hold every message on the
// MX for the inbound SPF/DKIM/DMARC lookups. A refused query fails at
// once, as a domain without records does.
func mtaReconfigureSMTPD(t testing.TB, tn *Tern, lines ...string) {
	t.Helper()
	b, err := os.ReadFile(tn.Config)
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(b)
	const section = "\n[smtpd]\n"
	if !strings.Contains(cfg, section) {
		t.Fatalf("%s has no [smtpd] section", tn.Config)
	}
	cfg = strings.Replace(cfg, section, section+strings.Join(lines, "\n")+"\n", 1)
	if !strings.Contains(cfg, "\n[dns]\n") {
		cfg += fmt.Sprintf("[dns]\nresolver = %q\ntimeout = \"1s\"\n", mtaDeadUDPPort(t))
	}
	if err := os.WriteFile(tn.Config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	tn.Stop(t, "smtpd")
	tn.Start(t, "smtpd")
}

// mtaDeadUDPPort returns a loopback UDP address nobody listens on right
// now: a datagram sent there is refused (ICMP port unreachable) at once.
func mtaDeadUDPPort(t testing.TB) string {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().String()
}

// mtaMailq runs the built mailq on tn's config and returns its output.
func mtaMailq(t testing.TB, tn *Tern, args ...string) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "mailq"), append([]string{"-config", tn.Config}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("mailq %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// mtaQueued is the part of a line of mailq -json that the tests read
// (the fields are documented in tern-mtaMailq(1)).
type mtaQueued struct {
	QueueID    string `json:"queue_id"`
	QueueName  string `json:"queue_name"`
	Tries      int    `json:"tries"`
	Recipients []struct {
		Address     string `json:"address"`
		State       string `json:"state"`
		DelayReason string `json:"delay_reason"`
	} `json:"recipients"`
}

// mtaMailqJSON lists tn's queue with mailq -json.
func mtaMailqJSON(t testing.TB, tn *Tern) []mtaQueued {
	t.Helper()
	var q []mtaQueued
	dec := json.NewDecoder(strings.NewReader(mtaMailq(t, tn, "-json")))
	for dec.More() {
		var m mtaQueued
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("mailq -json: %v", err)
		}
		q = append(q, m)
	}
	return q
}

// mtaQueueIDs lists the queued messages: the envelopes in the queue's
// env/ directory (tern-queue(5)).
func mtaQueueIDs(t testing.TB, tn *Tern) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(tn.Dir, "spool", "queue", "env"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range ents {
		ids = append(ids, e.Name())
	}
	return ids
}

// mtaWaitQueueEmpty waits until smtpd's queue holds no message.
func mtaWaitQueueEmpty(t testing.TB, tn *Tern, timeout time.Duration) {
	t.Helper()
	mtaWaitUntil(t, timeout, "an empty queue", func() bool { return len(mtaQueueIDs(t, tn)) == 0 })
}

// mtaInbox returns the messages of a Maildir's INBOX (new/ and cur/),
// keyed by file name without its flags.
func mtaInbox(t testing.TB, root string) map[string]string {
	t.Helper()
	msgs := map[string]string{}
	for _, sub := range []string{"new", "cur"} {
		ents, err := os.ReadDir(filepath.Join(root, sub))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			b, err := os.ReadFile(filepath.Join(root, sub, e.Name()))
			if errors.Is(err, os.ErrNotExist) {
				continue // moved from new/ to cur/ meanwhile
			}
			if err != nil {
				t.Fatal(err)
			}
			name, _, _ := strings.Cut(e.Name(), ":")
			msgs[name] = string(b)
		}
	}
	return msgs
}

// mtaWaitInbox waits for a message containing marker in a Maildir's
// INBOX and returns it; on timeout it fails with what explain returns
// (a log), if given.
func mtaWaitInbox(t testing.TB, root, marker string, timeout time.Duration, explain func() string) string {
	t.Helper()
	var found string
	ok := mtaPoll(timeout, func() bool {
		for _, m := range mtaInbox(t, root) {
			if strings.Contains(m, marker) {
				found = m
				return true
			}
		}
		return false
	})
	if !ok {
		more := ""
		if explain != nil {
			more = "\n" + explain()
		}
		t.Fatalf("no message with %q in %s within %v%s", marker, root, timeout, more)
	}
	return found
}

// mtaWaitUntil polls cond until it holds, failing the test after timeout.
func mtaWaitUntil(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if !mtaPoll(timeout, cond) {
		t.Fatalf("no %s within %v", what, timeout)
	}
}

func mtaPoll(timeout time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(timeout); ; time.Sleep(50 * time.Millisecond) {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}
