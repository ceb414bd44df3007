package e2e

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The affinity tests run two tern hosts on one machine, host a on
// 127.0.0.1 and host b on 127.0.0.2, over one Maildir tree on local disk,
// with [cluster] naming both (tern-cluster(7)). bob's home host is b;
// carol's host= names an address outside the cluster.

const affinitySecret = "affinity-test-secret-0123456789"

// affinityUsers are added to both hosts' users files.
const affinityUsers = "bob@example.test:{PLAIN}bobpw::::::host=127.0.0.2\n" +
	"carol@example.test:{PLAIN}carolpw::::::host=127.0.0.9\n"

// freePortsBoth returns n ports free on both 127.0.0.1 and 127.0.0.2, for
// the internal ports every host of a cluster shares. They are taken below
// the kernel's ephemeral range (ip_local_port_range, 32768 and up by
// default), where freePort's listeners on port 0 never land, so that no
// daemon's own port collides with them.
func freePortsBoth(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	for port := 20000 + rand.IntN(10000); len(ports) < n; port++ {
		a, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		b, err := net.Listen("tcp", fmt.Sprintf("127.0.0.2:%d", port))
		a.Close()
		if err != nil {
			continue
		}
		b.Close()
		ports = append(ports, port)
	}
	return ports
}

// affinityOpts are the hostOpts of hosts a (127.0.0.1) and b (127.0.0.2)
// of one cluster, and its internal ports (IMAP, POP3, LMTP).
func affinityOpts(t *testing.T) (a, b hostOpts, ports []int) {
	t.Helper()
	secret := filepath.Join(t.TempDir(), "cluster.secret")
	if err := os.WriteFile(secret, []byte(affinitySecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ports = freePortsBoth(t, 3)
	section := func(self string) string {
		return fmt.Sprintf(`[cluster]
hosts = ["127.0.0.1", "127.0.0.2"]
self = %q
secret = %q
imap_port = %d
pop3_port = %d
lmtp_port = %d
connect_timeout = "2s"
`, self, secret, ports[0], ports[1], ports[2])
	}
	a = hostOpts{ip: "127.0.0.1", users: affinityUsers, cluster: section("127.0.0.1")}
	b = hostOpts{ip: "127.0.0.2", users: affinityUsers, cluster: section("127.0.0.2")}
	return a, b, ports
}

// affinityHosts starts hosts a and b; it returns them and the internal
// ports (IMAP, POP3, LMTP).
func affinityHosts(t *testing.T, mount string) (a, b *Tern, ports []int) {
	t.Helper()
	oa, ob, ports := affinityOpts(t)
	return startHost(t, "a", mount, oa), startHost(t, "b", mount, ob), ports
}

// dialFrom connects to addr from the loopback address src, so that the
// client's address differs from every host's.
func dialFrom(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// imapFrom opens an IMAP session from src and reads the greeting.
func imapFrom(t *testing.T, src, addr string) *imapConn {
	t.Helper()
	ic := &imapConn{c: dialFrom(t, src, addr)}
	ic.r = bufio.NewReader(ic.c)
	if l, err := ic.line(); err != nil || !strings.HasPrefix(l, "* OK") {
		t.Fatalf("IMAP greeting %q: %v", l, err)
	}
	return ic
}

// startTLS is the client side of STARTTLS or implicit TLS for the test
// certificate (self-signed: not verified).
func startTLS(t *testing.T, c net.Conn) net.Conn {
	t.Helper()
	tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true, ServerName: "mail.example.test"})
	if err := tc.Handshake(); err != nil {
		t.Fatalf("TLS handshake: %v", err)
	}
	return tc
}

// imapOver opens an IMAP session from src to addr on one transport:
// "plain", "starttls" (to a plain port) or "tls" (an implicit-TLS port).
func imapOver(t *testing.T, transport, src, addr string) *imapConn {
	t.Helper()
	if transport == "tls" {
		ic := &imapConn{c: startTLS(t, dialFrom(t, src, addr))}
		ic.r = bufio.NewReader(ic.c)
		if l, err := ic.line(); err != nil || !strings.HasPrefix(l, "* OK") {
			t.Fatalf("IMAPS greeting %q: %v", l, err)
		}
		return ic
	}
	ic := imapFrom(t, src, addr)
	if transport == "starttls" {
		ic.must(t, "STARTTLS")
		ic.c = startTLS(t, ic.c)
		ic.r = bufio.NewReader(ic.c)
	}
	return ic
}

// popSession logs user in over POP3 from src and returns STAT's reply;
// transport is as for imapOver.
func popSession(t *testing.T, transport, src, addr, user, pass string) string {
	t.Helper()
	c := dialFrom(t, src, addr)
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if transport == "tls" {
		c = startTLS(t, c)
	}
	r := bufio.NewReader(c)
	line := func() string {
		l, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("POP3 read: %v", err)
		}
		return strings.TrimRight(l, "\r\n")
	}
	if l := line(); !strings.HasPrefix(l, "+OK") {
		t.Fatalf("POP3 greeting %q", l)
	}
	if transport == "starttls" {
		fmt.Fprintf(c, "STLS\r\n")
		if l := line(); !strings.HasPrefix(l, "+OK") {
			t.Fatalf("STLS: %q", l)
		}
		c = startTLS(t, c)
		r = bufio.NewReader(c)
	}
	// Pipelined (RFC 2449 6.6): PASS and STAT reach the proxy in one
	// write, and STAT must go on to the home host.
	fmt.Fprintf(c, "USER %s\r\nPASS %s\r\nSTAT\r\n", user, pass)
	for _, want := range []string{"+OK", "+OK"} {
		if l := line(); !strings.HasPrefix(l, want) {
			t.Fatalf("POP3 login of %s: %q", user, l)
		}
	}
	stat := line()
	fmt.Fprintf(c, "QUIT\r\n")
	if l := line(); !strings.HasPrefix(l, "+OK") {
		t.Fatalf("POP3 QUIT: %q", l)
	}
	return stat
}

// smtpTo sends one message to rcpt through h's MX port.
func smtpTo(t *testing.T, h *Tern, rcpt, subject string) {
	t.Helper()
	c, err := dialSMTP(h, false)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Mail("sender@example.net", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt(rcpt, nil); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(w, "From: sender@example.net\r\nTo: %s\r\nSubject: %s\r\n\r\nbody\r\n", rcpt, subject)
	if err := w.Close(); err != nil {
		t.Fatalf("DATA to %s through %s: %v", rcpt, h.MX, err)
	}
	c.Quit()
}

// waitLogLine waits until a line of daemon's log on h holds every one of
// parts, and returns it.
func waitLogLine(t *testing.T, h *Tern, daemon string, parts ...string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if l := logLine(h, daemon, parts...); l != "" {
			return l
		}
		if time.Now().After(deadline) {
			t.Fatalf("no line of %s's log on %s has %q:\n%s", daemon, filepath.Base(h.Dir), parts, h.Log(daemon))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// noDataRace fails the test when a daemon built with -race reported a
// data race in its log (the relay and the proxy login run beside the
// session's own goroutines).
func noDataRace(t *testing.T, hosts ...*Tern) {
	t.Helper()
	for _, h := range hosts {
		for d := range h.logs {
			if l := logLine(h, d, "DATA RACE"); l != "" {
				t.Errorf("%s on %s:\n%s", d, filepath.Base(h.Dir), h.Log(d))
			}
		}
	}
}

// logCount is how many lines of daemon's log on h hold every one of parts.
func logCount(h *Tern, daemon string, parts ...string) int {
	n := 0
next:
	for _, l := range strings.Split(h.Log(daemon), "\n") {
		for _, p := range parts {
			if !strings.Contains(l, p) {
				continue next
			}
		}
		n++
	}
	return n
}

func logLine(h *Tern, daemon string, parts ...string) string {
next:
	for _, l := range strings.Split(h.Log(daemon), "\n") {
		for _, p := range parts {
			if !strings.Contains(l, p) {
				continue next
			}
		}
		return l
	}
	return ""
}

// TestAffinityProxy: bob's IMAP and POP3 sessions on host a are served by
// host b, whose log shows them with the client's address; mail for bob
// through a's smtpd is written by b's lmtpd; with b's daemons stopped, a
// serves bob itself and logs the failover.
func TestAffinityProxy(t *testing.T) {
	a, b, _ := affinityHosts(t, t.TempDir())
	defer noDataRace(t, a, b)
	const client = "127.0.0.5"

	// IMAP: LOGIN and a command pipelined behind it in one write.
	ic := imapFrom(t, client, a.IMAP)
	ic.send("l1 LOGIN bob@example.test bobpw\r\nl2 SELECT INBOX")
	for _, tag := range []string{"l1 OK", "l2 OK"} {
		if _, err := ic.waitFor(regexp.MustCompile("^"+regexp.QuoteMeta(tag)), 10*time.Second); err != nil {
			t.Fatalf("proxied IMAP session: %v", err)
		}
	}
	ic.must(t, `APPEND INBOX {12+}`+"\r\nSubject: x\r\n")
	ic.must(t, "LOGOUT")
	waitLogLine(t, a, "imapd", "event=proxied", "user=bob@example.test", "host=127.0.0.2", "proto=imap")
	waitLogLine(t, b, "imapd", "proxied connection", "host=127.0.0.1", "client="+client)
	waitLogLine(t, b, "imapd", "event=login", "user=bob@example.test", "ip="+client)
	if l := logLine(a, "imapd", "event=login", "user=bob@example.test"); l != "" {
		t.Errorf("host a logged bob in itself: %s", l)
	}

	// The relay's cost: NOOP round trips on host b directly and through
	// host a, and whole sessions (connect, login, LOGOUT) both ways.
	direct, proxied := imapFrom(t, client, b.IMAP), imapFrom(t, client, a.IMAP)
	direct.must(t, "LOGIN bob@example.test bobpw")
	proxied.must(t, "LOGIN bob@example.test bobpw")
	const rounds = 300
	var took [2]time.Duration
	for i, ic := range []*imapConn{direct, proxied} {
		start := time.Now()
		for range rounds {
			ic.must(t, "NOOP")
		}
		took[i] = time.Since(start)
		ic.must(t, "LOGOUT")
	}
	var login [2]time.Duration
	for i, addr := range []string{b.IMAP, a.IMAP} {
		start := time.Now()
		for range 20 {
			ic := imapFrom(t, client, addr)
			ic.must(t, "LOGIN bob@example.test bobpw")
			ic.must(t, "LOGOUT")
			ic.close()
		}
		login[i] = time.Since(start) / 20
	}
	t.Logf("relay cost: NOOP round trip %v direct, %v through the proxy; session (connect, LOGIN, LOGOUT) %v direct, %v through the proxy",
		took[0]/rounds, took[1]/rounds, login[0].Round(time.Microsecond), login[1].Round(time.Microsecond))

	// The same over STARTTLS and implicit TLS: TLS ends on host a, the
	// relay carries the decrypted session. Each session comes from an
	// address of its own, by which host b's log line is found.
	for _, tr := range []struct{ name, addr, src string }{{"starttls", a.IMAP, "127.0.0.7"}, {"tls", a.IMAPS, "127.0.0.8"}} {
		ic := imapOver(t, tr.name, tr.src, tr.addr)
		ic.must(t, "LOGIN bob@example.test bobpw")
		if lines := ic.must(t, "SELECT INBOX"); !strings.Contains(strings.Join(lines, "\n"), "* 1 EXISTS") {
			t.Errorf("proxied IMAP over %s: SELECT gave %q", tr.name, lines)
		}
		ic.must(t, "LOGOUT")
		waitLogLine(t, b, "imapd", "event=login", "user=bob@example.test", "ip="+tr.src)
	}

	// POP3, on each transport.
	for _, tr := range []struct{ name, addr, src string }{
		{"plain", a.POP3, "127.0.0.9"}, {"starttls", a.POP3, "127.0.0.10"}, {"tls", a.POP3S, "127.0.0.11"},
	} {
		if stat := popSession(t, tr.name, tr.src, tr.addr, "bob@example.test", "bobpw"); !strings.HasPrefix(stat, "+OK 1 ") {
			t.Errorf("proxied POP3 over %s: STAT = %q, want the message APPENDed through the proxied IMAP session", tr.name, stat)
		}
		waitLogLine(t, a, "pop3d", "event=proxied", "user=bob@example.test", "proto=pop3", "ip="+tr.src)
		waitLogLine(t, b, "pop3d", "event=login", "user=bob@example.test", "ip="+tr.src)
	}
	if l := logLine(a, "pop3d", "event=login", "user=bob@example.test"); l != "" {
		t.Errorf("host a logged bob in itself: %s", l)
	}

	// Delivery through a's smtpd, written by b's lmtpd.
	smtpTo(t, a, "bob@example.test", "to-home")
	waitLogLine(t, b, "lmtpd", "event=delivered", "to=bob@example.test")
	if l := logLine(a, "lmtpd", "event=delivered", "to=bob@example.test"); l != "" {
		t.Errorf("host a's lmtpd delivered bob's mail: %s", l)
	}
	// demo has no home host: a's own lmtpd.
	smtpTo(t, a, "demo@example.test", "no-home")
	waitLogLine(t, a, "lmtpd", "event=delivered", "to=demo@example.test")

	// Host b's imapd hangs: the connection is taken by the kernel but
	// nothing answers; after connect_timeout host a serves bob.
	if err := b.procs["imapd"].Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	ic = imapFrom(t, client, a.IMAP)
	ic.must(t, "LOGIN bob@example.test bobpw")
	waited := time.Since(start)
	b.procs["imapd"].Process.Signal(syscall.SIGCONT)
	ic.must(t, "LOGOUT")
	waitLogLine(t, a, "imapd", "event=failover", "user=bob@example.test", "i/o timeout")
	if waited < 2*time.Second || waited > 10*time.Second {
		t.Errorf("login with a hung home host took %v, want connect_timeout (2s)", waited)
	}

	// Host b down: a serves bob and logs the failover.
	for _, d := range []string{"imapd", "pop3d", "lmtpd"} {
		b.Stop(t, d)
	}
	ic = imapFrom(t, client, a.IMAP)
	ic.must(t, "LOGIN bob@example.test bobpw")
	lines := ic.must(t, "SELECT INBOX")
	if !strings.Contains(strings.Join(lines, "\n"), "* 2 EXISTS") {
		t.Errorf("failover IMAP session: SELECT gave %q, want 2 messages", lines)
	}
	ic.must(t, "LOGOUT")
	waitLogLine(t, a, "imapd", "event=failover", "user=bob@example.test", "host=127.0.0.2", "proto=imap")
	waitLogLine(t, a, "imapd", "event=login", "user=bob@example.test", "ip="+client)
	if stat := popSession(t, "plain", client, a.POP3, "bob@example.test", "bobpw"); !strings.HasPrefix(stat, "+OK 2 ") {
		t.Errorf("failover POP3 STAT = %q, want 2 messages", stat)
	}
	waitLogLine(t, a, "pop3d", "event=failover", "user=bob@example.test", "proto=pop3")
	smtpTo(t, a, "bob@example.test", "failover")
	waitLogLine(t, a, "smtpd", "event=failover", "user=bob@example.test", "proto=lmtp")
	waitLogLine(t, a, "lmtpd", "event=delivered", "to=bob@example.test")
}

// TestAffinitySecurity: the internal ports take nobody outside the host
// list; the proxy secret logs in only there, and a user's own password
// not at all there; a host= outside the cluster is never connected to.
func TestAffinitySecurity(t *testing.T) {
	a, b, ports := affinityHosts(t, t.TempDir())
	defer noDataRace(t, a, b)

	// Peers that are not hosts are closed before a byte is read.
	for _, port := range ports {
		c := dialFrom(t, "127.0.0.3", fmt.Sprintf("127.0.0.2:%d", port))
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if n, err := c.Read(make([]byte, 64)); err == nil {
			t.Errorf("internal port %d answered a peer outside cluster.hosts (%d bytes)", port, n)
		}
	}
	waitLogLine(t, b, "imapd", "internal port: connection refused", "peer=127.0.0.3")
	waitLogLine(t, b, "lmtpd", "internal port: connection refused", "peer=127.0.0.3")

	// From a host, with a PROXY header: the user's password is refused,
	// and so is a wrong secret.
	plain := func(user, pass string) string {
		return base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + pass))
	}
	// Each attempt claims a client address of its own, so that the login
	// brake of one failure does not slow the next.
	fake := 60
	internal := func() *imapConn {
		ic := &imapConn{c: dialFrom(t, "127.0.0.1", fmt.Sprintf("127.0.0.2:%d", ports[0]))}
		ic.r = bufio.NewReader(ic.c)
		fake++
		ic.send(fmt.Sprintf("PROXY TCP4 127.0.0.%d 127.0.0.2 4000 143", fake))
		if l, err := ic.line(); err != nil || !strings.HasPrefix(l, "* OK") {
			t.Fatalf("internal greeting %q: %v", l, err)
		}
		return ic
	}
	ic := internal()
	for _, cmd := range []string{
		"LOGIN bob@example.test bobpw",
		"AUTHENTICATE PLAIN " + plain("bob@example.test", "bobpw"),
		"AUTHENTICATE PLAIN " + plain("bob@example.test", affinitySecret+"x"),
	} {
		if _, err := ic.cmd(cmd); err == nil || !strings.Contains(err.Error(), "NO") {
			t.Errorf("internal port took %q: %v", cmd[:20], err)
		}
		ic = internal() // login.max_failures would end the session
	}
	// The right secret logs in, as the proxy does.
	ic.must(t, "AUTHENTICATE PLAIN "+plain("bob@example.test", affinitySecret))
	ic.must(t, "LOGOUT")

	// A client whose session is relayed talks to the internal port: after
	// UNAUTHENTICATE it must not get a login there, not even with the
	// secret (a guess of it, from outside).
	ic = imapFrom(t, "127.0.0.5", a.IMAP)
	ic.must(t, "LOGIN bob@example.test bobpw")
	ic.must(t, "UNAUTHENTICATE")
	if _, err := ic.cmd("AUTHENTICATE PLAIN " + plain("alice@example.test", affinitySecret)); err == nil {
		t.Error("a relayed client logged in again on the internal port")
	}
	waitLogLine(t, a, "imapd", "event=proxied", "user=bob@example.test")

	// The same on pop3d's internal port.
	pop := func() (net.Conn, *bufio.Reader) {
		c := dialFrom(t, "127.0.0.1", fmt.Sprintf("127.0.0.2:%d", ports[1]))
		c.SetDeadline(time.Now().Add(30 * time.Second))
		fake++
		fmt.Fprintf(c, "PROXY TCP4 127.0.0.%d 127.0.0.2 4000 110\r\n", fake)
		r := bufio.NewReader(c)
		if l, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(l, "+OK") {
			t.Fatalf("internal POP3 greeting %q: %v", l, err)
		}
		return c, r
	}
	for _, cmds := range [][]string{
		{"USER bob@example.test", "PASS bobpw"},
		{"AUTH LOGIN"},
		{"AUTH PLAIN " + plain("bob@example.test", "bobpw")},
		{"AUTH PLAIN " + plain("bob@example.test", affinitySecret+"x")},
	} {
		c, r := pop()
		var l string
		for _, cmd := range cmds {
			fmt.Fprintf(c, "%s\r\n", cmd)
			l, _ = r.ReadString('\n')
		}
		if !strings.HasPrefix(l, "-ERR") {
			t.Errorf("internal POP3 port took %q: %q", cmds[len(cmds)-1][:10], l)
		}
	}
	c, r := pop()
	fmt.Fprintf(c, "AUTH PLAIN %s\r\n", plain("bob@example.test", affinitySecret))
	if l, _ := r.ReadString('\n'); !strings.HasPrefix(l, "+OK") {
		t.Errorf("the proxy login on the internal POP3 port: %q", l)
	}

	// The secret is no password on the public port, on either host.
	for _, h := range []*Tern{a, b} {
		ic := imapFrom(t, "127.0.0.5", h.IMAP)
		if _, err := ic.cmd("AUTHENTICATE PLAIN " + plain("bob@example.test", affinitySecret)); err == nil {
			t.Errorf("public IMAP port of %s took the proxy secret", filepath.Base(h.Dir))
		}
		c := dialFrom(t, "127.0.0.6", h.POP3)
		c.SetDeadline(time.Now().Add(30 * time.Second))
		r := bufio.NewReader(c)
		r.ReadString('\n')
		fmt.Fprintf(c, "AUTH PLAIN %s\r\n", plain("bob@example.test", affinitySecret))
		if l, _ := r.ReadString('\n'); !strings.HasPrefix(l, "-ERR") {
			t.Errorf("public POP3 port of %s took the proxy secret: %q", filepath.Base(h.Dir), l)
		}
	}

	// carol's host= is outside cluster.hosts: a listener there sees
	// nothing, and a serves carol itself.
	trap, err := net.Listen("tcp", fmt.Sprintf("127.0.0.9:%d", ports[0]))
	if err != nil {
		t.Fatal(err)
	}
	defer trap.Close()
	reached := make(chan struct{}, 1)
	go func() {
		if c, err := trap.Accept(); err == nil {
			c.Close()
			reached <- struct{}{}
		}
	}()
	ic = imapFrom(t, "127.0.0.5", a.IMAP)
	ic.must(t, "LOGIN carol@example.test carolpw")
	ic.must(t, "LOGOUT")
	waitLogLine(t, a, "imapd", "event=login", "user=carol@example.test")
	waitLogLine(t, a, "imapd", "not one of cluster.hosts", "host=127.0.0.9")
	select {
	case <-reached:
		t.Error("a proxy connected to a host= outside cluster.hosts")
	case <-time.After(200 * time.Millisecond):
	}
}

// TestAffinityServe: a relayed session is served by common/serve on the
// proxying host like any other once its user is logged in. Host a's
// login.timeout (2s) caps a connection's reads only until login, so a
// relayed IMAP or POP3 session idle past it goes on; at a's shutdown a
// relayed session ends without a BYE from host a (its bytes are the home
// host's), while a session a serves itself gets its BYE.
func TestAffinityServe(t *testing.T) {
	mount := t.TempDir()
	oa, ob, _ := affinityOpts(t)
	oa.cluster += "[login]\ntimeout = \"2s\"\n"
	a, b := startHost(t, "a", mount, oa), startHost(t, "b", mount, ob)
	defer noDataRace(t, a, b)
	const client = "127.0.0.5"

	relayed := imapFrom(t, client, a.IMAP)
	relayed.must(t, "LOGIN bob@example.test bobpw")
	pc := dialFrom(t, client, a.POP3)
	pr := bufio.NewReader(pc)
	pc.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(pc, "USER bob@example.test\r\nPASS bobpw\r\n")
	for range 3 { // greeting, USER, PASS
		if l, err := pr.ReadString('\n'); err != nil || !strings.HasPrefix(l, "+OK") {
			t.Fatalf("POP3 login through host a: %q %v", l, err)
		}
	}
	local := imapFrom(t, client, a.IMAP)
	local.must(t, "LOGIN demo@example.test demo")
	waitLogLine(t, a, "pop3d", "event=proxied", "user=bob@example.test", "proto=pop3")

	time.Sleep(3 * time.Second) // past host a's login.timeout
	relayed.must(t, "NOOP")
	fmt.Fprintf(pc, "STAT\r\n")
	if l, err := pr.ReadString('\n'); err != nil || !strings.HasPrefix(l, "+OK") {
		t.Fatalf("relayed POP3 session idle past host a's login.timeout: STAT = %q %v", l, err)
	}
	fmt.Fprintf(pc, "QUIT\r\n")
	pr.ReadString('\n')

	a.Stop(t, "imapd")
	rest, _ := io.ReadAll(io.LimitReader(relayed.r, 1<<16))
	if strings.Contains(string(rest), "BYE") {
		t.Errorf("relayed session got %q at host a's shutdown, want the connection closed without a BYE of host a", rest)
	}
	if l, err := local.line(); !strings.HasPrefix(l, "* BYE") {
		t.Errorf("session of host a's own user at its shutdown: %q %v, want * BYE", l, err)
	}
}
