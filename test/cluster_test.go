package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"tern/common/maildir"
)

// TestCluster runs two tern hosts on one Maildir tree on a 3-node replica-3
// GlusterFS volume (test/cluster/setup), each host with its own mount, state
// and sockets, and checks that they behave as one mail system: concurrent
// deliveries through both give every message exactly once with the same
// UIDs on both hosts, IDLE, NOOP and EXPUNGE see the other host's changes
// within 2 s, and killing one host mid-delivery loses nothing acknowledged
// and reuses no UID. It logs the figures of tern-cluster(7).
func TestCluster(t *testing.T) {
	clusterPrereqs(t)
	began := time.Now()
	dir, err := os.MkdirTemp("", "tern-cluster-")
	if err != nil {
		t.Fatal(err)
	}
	setup := filepath.Join(repoRoot(t), "test", "cluster", "setup")
	t.Cleanup(func() {
		// Registered first, so it runs last: after the hosts stopped.
		if out, err := exec.Command(setup, "down", dir).CombinedOutput(); err != nil {
			t.Errorf("cluster down: %v\n%s", err, out)
		}
		os.RemoveAll(dir)
	})
	// Output to a file, not a pipe: the daemons the script starts keep
	// running after it exits.
	logf, err := os.Create(filepath.Join(dir, "setup.log"))
	if err != nil {
		t.Fatal(err)
	}
	up := exec.Command(setup, "up", dir)
	up.Stdout, up.Stderr = logf, logf
	err = up.Run()
	logf.Close()
	if err != nil {
		out, _ := os.ReadFile(logf.Name())
		t.Fatalf("cluster up: %v\n%s", err, out)
	}
	t.Logf("GlusterFS volume up and mounted twice in %v", time.Since(began).Round(time.Millisecond))
	checkUnsafeMount(t, dir)
	// Host a on 127.0.0.1, host b on 127.0.0.2, one [cluster]; bob's home
	// host is b (affinity_test.go).
	oa, ob, _ := affinityOpts(t)
	a := startHost(t, "a", filepath.Join(dir, "a"), oa)
	b := startHost(t, "b", filepath.Join(dir, "b"), ob)
	for _, h := range []*Tern{a, b} {
		if l := h.Log("lmtpd"); !strings.Contains(l, "fuse.glusterfs") || !strings.Contains(l, "shared (polling") {
			t.Fatalf("lmtpd does not report the shared GlusterFS mode at start:\n%s", l)
		}
		if strings.Contains(h.Log("lmtpd"), "unsafe shared storage") {
			t.Errorf("safe mount reported unsafe:\n%s", h.Log("lmtpd"))
		}
	}

	// Open the mailbox on both hosts once (default folders, index).
	ia, ib := imapLogin(t, a), imapLogin(t, b)
	ia.must(t, "SELECT INBOX")
	ib.must(t, "SELECT INBOX")

	// One host alone, then both at once, while IMAP sessions on both
	// hosts poll with NOOP.
	stopPoll := make(chan struct{})
	var pollWG sync.WaitGroup
	var pollErr [2]error
	var polls [2]int
	for i, h := range []*Tern{a, b} {
		pollWG.Add(1)
		go func() {
			defer pollWG.Done()
			c, err := clusterIMAP(h)
			if err == nil {
				_, err = c.cmd("LOGIN demo@example.test demo")
			}
			if err == nil {
				_, err = c.cmd("SELECT INBOX")
			}
			for err == nil {
				select {
				case <-stopPoll:
					c.close()
					return
				case <-time.After(50 * time.Millisecond):
				}
				_, err = c.cmd("NOOP")
				polls[i]++
			}
			pollErr[i] = err
			// A stuck session: the daemon's goroutines go to its log.
			h.procs["imapd"].Process.Signal(syscall.SIGQUIT)
		}()
	}
	acked := map[string]bool{}
	var ackMu sync.Mutex
	ack := func(id string) {
		ackMu.Lock()
		acked[id] = true
		ackMu.Unlock()
	}
	const one = 40
	cpu0 := hostCPU(a, b)
	start := time.Now()
	if errs := deliverMany(a, "one", one, ack); len(errs) > 0 {
		t.Fatalf("deliveries through one host: %v", errs[0])
	}
	d1 := time.Since(start)
	cpu1 := hostCPU(a, b)
	const each = 200
	start = time.Now()
	var wg sync.WaitGroup
	var errsA, errsB []error
	wg.Add(2)
	go func() { defer wg.Done(); errsA = deliverMany(a, "a", each, ack) }()
	go func() { defer wg.Done(); errsB = deliverMany(b, "b", each, ack) }()
	wg.Wait()
	d2 := time.Since(start)
	cpu2 := hostCPU(a, b)
	close(stopPoll)
	pollWG.Wait()
	if len(errsA)+len(errsB) > 0 {
		t.Fatalf("concurrent deliveries: %v %v", errsA, errsB)
	}
	for i, err := range pollErr {
		if err != nil {
			t.Errorf("polling IMAP session on host %d: %v", i, err)
		}
		if polls[i] == 0 {
			t.Errorf("polling IMAP session on host %d: no NOOP completed during the deliveries", i)
		}
	}
	total := one + 2*each
	if len(acked) != total {
		t.Fatalf("%d deliveries acknowledged, want %d", len(acked), total)
	}
	t.Logf("deliveries: one host %d in %v = %.1f/s; two hosts %d in %v = %.1f/s (%d + %d NOOP polls meanwhile)",
		one, d1.Round(time.Millisecond), float64(one)/d1.Seconds(), 2*each, d2.Round(time.Millisecond),
		float64(2*each)/d2.Seconds(), polls[0], polls[1])
	t.Logf("CPU per message: tern daemons %.1f ms (one host), %.1f ms (two hosts); GlusterFS clients %.1f / %.1f ms; bricks and glusterd %.1f / %.1f ms",
		ms(cpu1.tern-cpu0.tern, one), ms(cpu2.tern-cpu1.tern, 2*each),
		ms(cpu1.client-cpu0.client, one), ms(cpu2.client-cpu1.client, 2*each),
		ms(cpu1.server-cpu0.server, one), ms(cpu2.server-cpu1.server, 2*each))

	viewA, viewB := uidMap(t, a), uidMap(t, b)
	checkView(t, "host a", viewA, acked)
	checkView(t, "host b", viewB, acked)
	if fmt.Sprint(viewA) != fmt.Sprint(viewB) {
		t.Fatalf("the hosts see different UIDs")
	}
	sa, sb := popStat(t, a), popStat(t, b)
	if sa != sb || !strings.HasPrefix(sa, fmt.Sprintf("+OK %d ", total)) {
		t.Fatalf("POP3 STAT: host a %q, host b %q, want %d messages on both", sa, sb, total)
	}
	t.Logf("%d messages, UIDs 1..%d on both hosts; POP3 STAT %q on both", total, total, sa)

	// IDLE on A wakes for a message delivered on B.
	lat := make([]time.Duration, 0, 3)
	for i := 0; i < 3; i++ {
		ia.send("i1 IDLE")
		if l, err := ia.line(); err != nil || !strings.HasPrefix(l, "+") {
			t.Fatalf("IDLE: %q %v", l, err)
		}
		sent := time.Now()
		if err := lmtpDeliver(b, fmt.Sprintf("idle-%d", i)); err != nil {
			t.Fatal(err)
		}
		if _, err := ia.waitFor(regexp.MustCompile(`^\* \d+ EXISTS`), 2*time.Second); err != nil {
			t.Fatalf("IDLE on host a after delivery on host b: %v", err)
		}
		lat = append(lat, time.Since(sent))
		ia.send("DONE")
		if _, err := ia.waitFor(regexp.MustCompile(`^i1 OK`), 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("IDLE wake-up on host a after the LMTP reply on host b: %v", lat)

	// A flag set on B is seen by A's NOOP within 2 s.
	ib.must(t, "NOOP")
	ib.must(t, "UID STORE 7 +FLAGS (\\Flagged)")
	sent := time.Now()
	seen := false
	for time.Since(sent) < 2*time.Second && !seen {
		lines := ia.must(t, "NOOP")
		for _, l := range lines {
			if strings.Contains(l, "FETCH") && strings.Contains(l, `\Flagged`) && strings.Contains(l, "UID 7") || strings.HasPrefix(l, "* 7 FETCH") && strings.Contains(l, `\Flagged`) {
				seen = true
			}
		}
		if !seen {
			time.Sleep(50 * time.Millisecond)
		}
	}
	if !seen {
		t.Fatal("flag set on host b not seen by host a's NOOP within 2 s")
	}
	t.Logf("flag set on host b seen by host a's NOOP after %v", time.Since(sent).Round(time.Millisecond))

	// An EXPUNGE on B reaches A's IDLE.
	ia.send("i2 IDLE")
	if l, err := ia.line(); err != nil || !strings.HasPrefix(l, "+") {
		t.Fatalf("IDLE: %q %v", l, err)
	}
	ib.must(t, "UID STORE 9 +FLAGS.SILENT (\\Deleted)")
	sent = time.Now()
	ib.must(t, "UID EXPUNGE 9")
	if _, err := ia.waitFor(regexp.MustCompile(`^\* 9 EXPUNGE`), 2*time.Second); err != nil {
		t.Fatalf("EXPUNGE on host b not seen by host a's IDLE: %v", err)
	}
	t.Logf("EXPUNGE on host b reached host a's IDLE after %v", time.Since(sent).Round(time.Millisecond))
	ia.send("DONE")
	if _, err := ia.waitFor(regexp.MustCompile(`^i2 OK`), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	ia.close()
	ib.close()

	// bob's home host is b: his sessions on a are served by b, whose log
	// shows the client's address; with b's imapd and pop3d stopped, a
	// serves him.
	const client = "127.0.0.5"
	ic := imapFrom(t, client, a.IMAP)
	ic.must(t, "LOGIN bob@example.test bobpw")
	ic.must(t, "SELECT INBOX")
	ic.must(t, "LOGOUT")
	waitLogLine(t, a, "imapd", "event=proxied", "user=bob@example.test", "host=127.0.0.2")
	waitLogLine(t, b, "imapd", "event=login", "user=bob@example.test", "ip="+client)
	if stat := popSession(t, "plain", client, a.POP3, "bob@example.test", "bobpw"); !strings.HasPrefix(stat, "+OK 0 ") {
		t.Errorf("bob's proxied POP3 STAT = %q", stat)
	}
	waitLogLine(t, b, "pop3d", "event=login", "user=bob@example.test", "ip="+client)
	b.Stop(t, "imapd")
	b.Stop(t, "pop3d")
	ic = imapFrom(t, client, a.IMAP)
	ic.must(t, "LOGIN bob@example.test bobpw")
	ic.must(t, "SELECT INBOX")
	ic.must(t, "LOGOUT")
	waitLogLine(t, a, "imapd", "event=failover", "user=bob@example.test")
	popSession(t, "plain", client, a.POP3, "bob@example.test", "bobpw")
	waitLogLine(t, a, "pop3d", "event=failover", "user=bob@example.test")
	b.Start(t, "imapd")
	b.Start(t, "pop3d")
	t.Logf("bob (host=b): IMAP and POP3 on host a proxied to b, served by a while b's imapd and pop3d were stopped")

	// SIGKILL of host B's daemons in the middle of deliveries through
	// both hosts: every acknowledged message is there once, no UID is
	// reused, and host A goes on.
	before := uidMap(t, a)
	acked = map[string]bool{}
	stop := make(chan struct{})
	var killWG sync.WaitGroup
	for _, h := range []*Tern{a, b} {
		for w := 0; w < 2; w++ {
			killWG.Add(1)
			go func() {
				defer killWG.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					id := fmt.Sprintf("kill-%s%d-%d", filepath.Base(h.Dir), w, i)
					if err := lmtpDeliver(h, id); err != nil {
						if h == b {
							return // B was killed
						}
						t.Errorf("delivery through host a while b is killed: %v", err)
						return
					}
					ack(id)
				}
			}()
		}
	}
	time.Sleep(1500 * time.Millisecond)
	for _, d := range []string{"lmtpd", "smtpd", "imapd", "pop3d"} {
		b.procs[d].Process.Signal(syscall.SIGKILL)
		b.procs[d].Wait()
		delete(b.procs, d)
	}
	time.Sleep(1500 * time.Millisecond)
	close(stop)
	killWG.Wait()
	after := uidMap(t, a)
	maxBefore := uint32(0)
	for uid, id := range before {
		maxBefore = max(maxBefore, uid)
		if id2, ok := after[uid]; ok && id2 != id {
			t.Fatalf("UID %d reused: %q before, %q after the kill", uid, id, id2)
		}
	}
	n := 0
	idCount := map[string]int{}
	for uid, id := range after {
		idCount[id]++
		if _, old := before[uid]; !old && uid <= maxBefore {
			t.Fatalf("new message %q got old UID %d", id, uid)
		}
	}
	for id := range acked {
		if idCount[id] != 1 {
			t.Fatalf("acknowledged message %s present %d times after the kill", id, idCount[id])
		}
		n++
	}
	for id, c := range idCount {
		if c != 1 {
			t.Fatalf("message %s present %d times", id, c)
		}
	}
	t.Logf("kill of host b mid-delivery: %d acknowledged deliveries all present once on host a, no UID reused", n)
	// Host a keeps serving b's users: bob's login and mail fall back.
	failovers := logCount(a, "imapd", "event=failover", "user=bob@example.test")
	ic = imapFrom(t, client, a.IMAP)
	ic.must(t, "LOGIN bob@example.test bobpw")
	ic.must(t, "SELECT INBOX")
	ic.must(t, "LOGOUT")
	if logCount(a, "imapd", "event=failover", "user=bob@example.test") != failovers+1 {
		t.Error("bob's login on host a after the kill of host b: no failover logged")
	}
	smtpTo(t, a, "bob@example.test", "after-kill")
	waitLogLine(t, a, "smtpd", "event=failover", "user=bob@example.test", "proto=lmtp")
	// Host B comes back and sees what A sees.
	for _, d := range []string{"lmtpd", "smtpd", "imapd", "pop3d"} {
		b.Start(t, d)
	}
	if err := lmtpDeliver(b, "after-restart"); err != nil {
		t.Fatal(err)
	}
	va, vb := uidMap(t, a), uidMap(t, b)
	if fmt.Sprint(va) != fmt.Sprint(vb) {
		t.Fatal("hosts disagree after the restart of host b")
	}
	t.Logf("whole cluster test: %v", time.Since(began).Round(time.Second))
}

// hostOpts are what sets a host apart beyond its name and mount: the
// loopback address its listeners bind ("" is 127.0.0.1), lines added to
// the users file, and a [cluster] section.
type hostOpts struct {
	ip, users, cluster string
}

// startHost starts the four daemons of one host whose Maildir tree is on
// mount; its state, sockets and config are its own.
func startHost(t *testing.T, name, mount string, opts hostOpts) *Tern {
	t.Helper()
	dir := t.TempDir()
	users, err := os.ReadFile(filepath.Join(repoRoot(t), "etc", "dev-users"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "users"), string(users)+opts.users)
	writeFile(t, filepath.Join(dir, "aliases"), "postmaster: demo@example.test\n")
	ip := opts.ip
	if ip == "" {
		ip = "127.0.0.1"
	}
	port := func() string { return freePortOn(t, ip) }
	tn := &Tern{Dir: filepath.Join(dir, name), MX: port(), Submission: port(), Submissions: port(),
		IMAP: port(), IMAPS: port(), POP3: port(), POP3S: port(),
		procs: map[string]*exec.Cmd{}, logs: map[string]*bytes.Buffer{}}
	os.MkdirAll(tn.Dir, 0o755)
	tn.LMTP = "unix:" + filepath.Join(tn.Dir, "run", "lmtp.sock")
	tn.Submit = "unix:" + filepath.Join(tn.Dir, "run", "submit.sock")
	tn.Config = filepath.Join(tn.Dir, "tern.toml")
	cfg := fmt.Sprintf(`hostname = "%[1]s.example.test"
domains = ["example.test"]
users = %[2]q
aliases = %[3]q
maildir = %[4]q
state_dir = %[5]q
[log]
level = "info"
[tls]
cert = %[6]q
key = %[7]q
generate = true
[storage]
shared = "auto"
shared_poll = "250ms"
min_free_space = "0"
[smtpd]
mx = [%[8]q]
submission = [%[9]q]
submissions = [%[10]q]
lmtp = %[11]q
local_submit = %[12]q
[lmtpd]
listen = [%[11]q]
[imapd]
listen = [%[13]q]
tls_listen = [%[14]q]
[pop3d]
listen = [%[15]q]
tls_listen = [%[16]q]
[dns]
resolver = %[17]q
%[18]s
`, name, filepath.Join(dir, "users"), filepath.Join(dir, "aliases"),
		filepath.Join(mount, "vmail", "%d", "%n", "Maildir"), filepath.Join(tn.Dir, "spool"),
		filepath.Join(tn.Dir, "tls", "cert.pem"), filepath.Join(tn.Dir, "tls", "key.pem"),
		tn.MX, tn.Submission, tn.Submissions, tn.LMTP, tn.Submit, tn.IMAP, tn.IMAPS, tn.POP3, tn.POP3S,
		closedUDPPort(t), opts.cluster)
	writeFile(t, tn.Config, cfg)
	for _, d := range []string{"lmtpd", "smtpd", "imapd", "pop3d"} {
		tn.Start(t, d)
	}
	t.Cleanup(func() {
		for d := range tn.procs {
			tn.Stop(t, d)
		}
		if t.Failed() {
			for d := range tn.logs {
				l := tn.Log(d)
				os.WriteFile(filepath.Join(os.TempDir(), "tern-cluster-"+name+"-"+d+".log"), []byte(l), 0o600)
				if len(l) > 4000 {
					l = l[len(l)-4000:]
				}
				t.Logf("--- host %s %s log (tail):\n%s", name, d, l)
			}
		}
	})
	return tn
}

func message(id string) string {
	return fmt.Sprintf("From: sender@example.net\r\nTo: demo@example.test\r\nSubject: clmsg-%s\r\nMessage-ID: <%s@cluster.test>\r\n\r\nbody of %s\r\n", id, id, id)
}

// deliverMany sends n messages through host h, half over SMTP (the MX
// port), half over LMTP, from four connections at once; ack gets each
// message acknowledged.
func deliverMany(h *Tern, tag string, n int, ack func(string)) []error {
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	const workers = 4
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lmtp := w%2 == 1
			c, err := dialSMTP(h, lmtp)
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
				return
			}
			defer c.Quit()
			for i := w; i < n; i += workers {
				id := fmt.Sprintf("%s-%d", tag, i)
				if err := sendOne(c, lmtp, id); err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("%s: %w", id, err))
					mu.Unlock()
					return
				}
				ack(id)
			}
		}()
	}
	wg.Wait()
	return errs
}

func dialSMTP(h *Tern, lmtp bool) (*smtp.Client, error) {
	if lmtp {
		conn, err := net.DialTimeout("unix", strings.TrimPrefix(h.LMTP, "unix:"), 5*time.Second)
		if err != nil {
			return nil, err
		}
		c := smtp.NewClientLMTP(conn)
		if err := c.Hello("cluster.test"); err != nil {
			c.Close()
			return nil, err
		}
		return c, nil
	}
	c, err := smtp.Dial(h.MX)
	if err != nil {
		return nil, err
	}
	if err := c.Hello("cluster.test"); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func sendOne(c *smtp.Client, lmtp bool, id string) error {
	if err := c.Mail("sender@example.net", nil); err != nil {
		return err
	}
	if err := c.Rcpt("demo@example.test", nil); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write([]byte(message(id))); err != nil {
		return err
	}
	if lmtp {
		_, err = w.CloseWithLMTPResponse()
		return err
	}
	return w.Close()
}

// lmtpDeliver delivers one message over host h's LMTP socket.
func lmtpDeliver(h *Tern, id string) error {
	c, err := dialSMTP(h, true)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := sendOne(c, true, id); err != nil {
		return err
	}
	return c.Quit()
}

// imapConn is a minimal IMAP client for the cluster test: errors are
// returned, so that it can run in goroutines.
type imapConn struct {
	c   net.Conn
	r   *bufio.Reader
	tag int
}

func clusterIMAP(h *Tern) (*imapConn, error) {
	c, err := net.DialTimeout("tcp", h.IMAP, 5*time.Second)
	if err != nil {
		return nil, err
	}
	ic := &imapConn{c: c, r: bufio.NewReader(c)}
	if l, err := ic.line(); err != nil || !strings.HasPrefix(l, "* OK") {
		c.Close()
		return nil, fmt.Errorf("greeting %q: %v", l, err)
	}
	return ic, nil
}

func imapLogin(t *testing.T, h *Tern) *imapConn {
	t.Helper()
	c, err := clusterIMAP(h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.close)
	c.must(t, "LOGIN demo@example.test demo")
	return c
}

func (ic *imapConn) close() { ic.c.Close() }

func (ic *imapConn) send(s string) {
	ic.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	ic.c.Write([]byte(s + "\r\n"))
}

func (ic *imapConn) line() (string, error) {
	ic.c.SetReadDeadline(time.Now().Add(60 * time.Second))
	l, err := ic.r.ReadString('\n')
	return strings.TrimRight(l, "\r\n"), err
}

// cmd sends a tagged command and returns every line up to its OK.
func (ic *imapConn) cmd(s string) ([]string, error) {
	ic.tag++
	tag := "c" + strconv.Itoa(ic.tag)
	ic.send(tag + " " + s)
	var lines []string
	for {
		l, err := ic.line()
		if err != nil {
			return lines, fmt.Errorf("%s: %w", s, err)
		}
		lines = append(lines, l)
		if rest, ok := strings.CutPrefix(l, tag+" "); ok {
			if !strings.HasPrefix(rest, "OK") {
				return lines, fmt.Errorf("%s: %s", s, l)
			}
			return lines, nil
		}
	}
}

func (ic *imapConn) must(t *testing.T, s string) []string {
	t.Helper()
	lines, err := ic.cmd(s)
	if err != nil {
		t.Fatal(err)
	}
	return lines
}

// waitFor reads lines until one matches re, for at most d.
func (ic *imapConn) waitFor(re *regexp.Regexp, d time.Duration) (string, error) {
	deadline := time.Now().Add(d)
	for {
		ic.c.SetReadDeadline(deadline)
		l, err := ic.r.ReadString('\n')
		if err != nil {
			return "", fmt.Errorf("waiting for %s: %w", re, err)
		}
		if l = strings.TrimRight(l, "\r\n"); re.MatchString(l) {
			return l, nil
		}
	}
}

var fetchRe = regexp.MustCompile(`UID (\d+) .*"clmsg-([^"]+)"`)

// uidMap is INBOX as a fresh IMAP session on h sees it: UID → message tag.
func uidMap(t *testing.T, h *Tern) map[uint32]string {
	t.Helper()
	c := imapLogin(t, h)
	defer c.close()
	c.must(t, "SELECT INBOX")
	m := map[uint32]string{}
	var order []uint32
	for _, l := range c.must(t, "UID FETCH 1:* (UID ENVELOPE)") {
		if !strings.HasPrefix(l, "* ") || !strings.Contains(l, "FETCH") {
			continue
		}
		mm := fetchRe.FindStringSubmatch(l)
		if mm == nil {
			t.Fatalf("FETCH line without UID and tag: %q", l)
		}
		uid, _ := strconv.ParseUint(mm[1], 10, 32)
		if _, dup := m[uint32(uid)]; dup {
			t.Fatalf("UID %d listed twice", uid)
		}
		m[uint32(uid)] = mm[2]
		order = append(order, uint32(uid))
	}
	if !sort.SliceIsSorted(order, func(i, j int) bool { return order[i] < order[j] }) {
		t.Fatalf("UIDs not ascending in sequence order: %v", order)
	}
	return m
}

// checkView: every acknowledged message present exactly once, nothing
// else, and the UIDs 1..n.
func checkView(t *testing.T, who string, view map[uint32]string, acked map[string]bool) {
	t.Helper()
	count := map[string]int{}
	for _, id := range view {
		count[id]++
	}
	for id := range acked {
		if count[id] != 1 {
			t.Fatalf("%s: message %s present %d times", who, id, count[id])
		}
	}
	if len(view) != len(acked) {
		t.Fatalf("%s: %d messages, %d acknowledged", who, len(view), len(acked))
	}
	for uid := uint32(1); uid <= uint32(len(acked)); uid++ {
		if _, ok := view[uid]; !ok {
			t.Fatalf("%s: UID %d missing from 1..%d", who, uid, len(acked))
		}
	}
}

func popStat(t *testing.T, h *Tern) string {
	t.Helper()
	c := Dial(t, h.POP3)
	c.Line()
	c.Send("USER demo@example.test\r\n")
	c.Line()
	c.Send("PASS demo\r\n")
	if l := c.Line(); !strings.HasPrefix(l, "+OK") {
		t.Fatalf("POP3 PASS: %q", l)
	}
	c.Send("STAT\r\n")
	s := c.Line()
	c.Send("QUIT\r\n")
	c.Line()
	return s
}

type cpuTimes struct{ tern, client, server time.Duration }

// hostCPU sums the CPU time (user + system) of the tern daemons of the
// hosts, of the GlusterFS clients (namespace tern-glc) and of the servers
// (tern-gl1..3).
func hostCPU(hosts ...*Tern) cpuTimes {
	var c cpuTimes
	for _, h := range hosts {
		for _, p := range h.procs {
			c.tern += procCPU(p.Process.Pid)
		}
	}
	c.client = nsCPU("tern-glc")
	for _, ns := range []string{"tern-gl1", "tern-gl2", "tern-gl3"} {
		c.server += nsCPU(ns)
	}
	return c
}

func nsCPU(ns string) time.Duration {
	out, _ := exec.Command("ip", "netns", "pids", ns).Output()
	var d time.Duration
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil {
			d += procCPU(pid)
		}
	}
	return d
}

// procCPU reads utime + stime of a process from /proc (clock ticks of
// 1/100 s on Linux).
func procCPU(pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	sy, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+sy) * 10 * time.Millisecond
}

func ms(d time.Duration, n int) float64 {
	return float64(d) / float64(time.Millisecond) / float64(n)
}

// checkUnsafeMount mounts the volume a third time with GlusterFS's default
// FUSE attribute and entry timeouts (1 s) and checks that the store warns
// about them, and not about the two safe mounts.
func checkUnsafeMount(t *testing.T, dir string) {
	t.Helper()
	c := filepath.Join(dir, "c")
	os.MkdirAll(c, 0o755)
	mount := exec.Command("nsenter", "--net=/run/netns/tern-glc", "glusterfs", "--volfile-server=10.213.7.1",
		"--volfile-id=ternmail", "--log-file="+filepath.Join(dir, "mount-c.log"), c)
	// No pipes: the client daemonises and keeps what it inherited.
	if err := mount.Run(); err != nil {
		t.Fatalf("third mount: %v", err)
	}
	defer exec.Command("umount", c).Run()
	for i := 0; i < 100; i++ {
		if exec.Command("mountpoint", "-q", c).Run() == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	info, err := maildir.Inspect(c)
	if err != nil {
		t.Fatal(err)
	}
	w := strings.Join(info.Warnings, "; ")
	if info.Type != "fuse.glusterfs" || !info.Shared || !strings.Contains(w, "attribute-timeout") || !strings.Contains(w, "entry-timeout") {
		t.Fatalf("mount with default FUSE timeouts: %+v", info)
	}
	t.Logf("unsafe mount warned: %s", w)
	for _, m := range []string{"a", "b"} {
		info, err := maildir.Inspect(filepath.Join(dir, m))
		if err != nil || len(info.Warnings)+len(info.Unknown) > 0 || !info.Shared {
			t.Fatalf("safe mount %s: %+v %v", m, info, err)
		}
	}
}
