package e2e

// The security suite: the real daemons against hostile clients. Password
// guessing (the per-connection limit, the per-address delay shared by
// smtpd, imapd and pop3d, the fail2ban line), enumeration, every input
// limit with its reply, 1,000 slowloris connections against an RSS bound,
// a full file system, and (with TERN_TESTSSL=1) testssl.sh on every TLS
// port.
//
// Each test dials from its own loopback source address (127.0.0.0/8 is all
// loopback on Linux), because the login delay is per client address and is
// shared between the daemons: tests must not slow one another down.

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
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
)

// secStart starts a tern whose config is changed by the given settings,
// "section.key = value" lines (section "" for top-level keys).
func secStart(t testing.TB, settings ...string) *Tern {
	t.Helper()
	tn := StartTern(t)
	secReconfigure(t, tn, nil, settings...)
	return tn
}

// secReconfigure stops the daemons, applies settings to the config, runs
// between (if not nil) and starts the daemons again.
func secReconfigure(t testing.TB, tn *Tern, between func(), settings ...string) {
	t.Helper()
	for _, d := range []string{"pop3d", "imapd", "smtpd", "lmtpd"} {
		tn.Stop(t, d)
	}
	b, err := os.ReadFile(tn.Config)
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(b)
	for _, s := range settings {
		cfg = secSetKey(cfg, s)
	}
	if err := os.WriteFile(tn.Config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if between != nil {
		between()
	}
	for _, d := range []string{"lmtpd", "smtpd", "imapd", "pop3d"} {
		tn.Start(t, d)
	}
}

// secSetKey sets "section.key = value" in a TOML text: it replaces the key
// in its table, adds it to the table, or adds the table.
func secSetKey(cfg, setting string) string {
	dotted, value, _ := strings.Cut(setting, "=")
	dotted, value = strings.TrimSpace(dotted), strings.TrimSpace(value)
	section, key, ok := strings.Cut(dotted, ".")
	if !ok {
		section, key = "", dotted
	}
	lines := strings.Split(cfg, "\n")
	current := ""
	insertAt := -1
	if section == "" {
		insertAt = 0
	}
	for i, l := range lines {
		tl := strings.TrimSpace(l)
		if strings.HasPrefix(tl, "[") {
			current = strings.Trim(tl, "[] ")
			if current == section {
				insertAt = i + 1
			}
			continue
		}
		if k, _, ok := strings.Cut(tl, "="); ok && current == section && strings.TrimSpace(k) == key {
			lines[i] = key + " = " + value
			return strings.Join(lines, "\n")
		}
	}
	if insertAt < 0 {
		return cfg + "\n[" + section + "]\n" + key + " = " + value + "\n"
	}
	lines = append(lines[:insertAt], append([]string{key + " = " + value}, lines[insertAt:]...)...)
	return strings.Join(lines, "\n")
}

// secDialFrom connects to addr from the loopback source address src.
func secDialFrom(t testing.TB, src, addr string) *Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, src, err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(60 * time.Second))
	return &Conn{t: t, c: c, r: bufio.NewReader(c)}
}

// secTagged reads IMAP lines up to the one tagged tag and returns it; ok
// is false if the server hung up first (the untagged lines read are in
// untagged).
func secTagged(c *Conn, tag string) (line string, untagged []string, ok bool) {
	for {
		l, err := c.r.ReadString('\n')
		if err != nil {
			return "", untagged, false
		}
		l = strings.TrimRight(l, "\r\n")
		if strings.HasPrefix(l, tag+" ") {
			return l, untagged, true
		}
		untagged = append(untagged, l)
	}
}

// secClosed reports whether the server closed the connection (EOF or
// reset) within a few seconds, after any remaining lines.
func secClosed(c *Conn) bool {
	c.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		if _, err := c.r.ReadString('\n'); err != nil {
			var ne net.Error
			return !(errorsAs(err, &ne) && ne.Timeout())
		}
	}
}

func errorsAs(err error, ne *net.Error) bool {
	e, ok := err.(net.Error)
	if ok {
		*ne = e
	}
	return ok
}

func secPlain(user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + pass))
}

// secLoginer is one protocol's way to try a password on a fresh or open
// connection.
type secLoginer struct {
	name string
	dial func(t testing.TB, src string) *Conn
	try  func(c *Conn, user, pass string) (reply string, ok bool)
}

func secLoginers(tn *Tern) []secLoginer {
	return []secLoginer{
		{"smtp", func(t testing.TB, src string) *Conn {
			c := secDialFrom(t, src, tn.Submission)
			c.SMTPReply()
			c.Send("EHLO client.example\r\n")
			c.SMTPReply()
			return c
		}, func(c *Conn, user, pass string) (string, bool) {
			c.Send("AUTH PLAIN " + secPlain(user, pass) + "\r\n")
			l := c.SMTPReply()
			return l, strings.HasPrefix(l, "235")
		}},
		{"imap", func(t testing.TB, src string) *Conn {
			c := secDialFrom(t, src, tn.IMAP)
			c.Line()
			return c
		}, func(c *Conn, user, pass string) (string, bool) {
			c.Send(fmt.Sprintf("L LOGIN %s %s\r\n", user, pass))
			l, untagged, ok := secTagged(c, "L")
			if !ok {
				return strings.Join(untagged, "|"), false
			}
			return l, strings.HasPrefix(l, "L OK")
		}},
		{"pop3", func(t testing.TB, src string) *Conn {
			c := secDialFrom(t, src, tn.POP3)
			c.Line()
			return c
		}, func(c *Conn, user, pass string) (string, bool) {
			c.Send("USER " + user + "\r\n")
			c.Line()
			c.Send("PASS " + pass + "\r\n")
			l := c.Line()
			return l, strings.HasPrefix(l, "+OK")
		}},
	}
}

// TestSecurityBruteForce: three failed logins end a connection with the
// protocol's goodbye; failures from one address delay its next logins in
// every daemon, growing; an account that logged in from an address is not
// delayed there, while other accounts from that address still are; each
// failure is a line fail2ban's filter finds.
func TestSecurityBruteForce(t *testing.T) {
	tn := secStart(t, `login.delay = "300ms"`, `login.max_delay = "1200ms"`, `login.good_ip_lifetime = "1h"`)
	ls := secLoginers(tn)
	closing := map[string]*regexp.Regexp{
		"smtp": regexp.MustCompile(`^421 4\.7\.0 `),
		"imap": regexp.MustCompile(`\* BYE `),
		"pop3": regexp.MustCompile(`^-ERR `),
	}

	t.Run("per-connection limit", func(t *testing.T) {
		for i, l := range ls {
			src := fmt.Sprintf("127.0.1.%d", 10+i)
			c := l.dial(t, src)
			var replies []string
			for n := 1; n <= 3; n++ {
				r, ok := l.try(c, "demo", "wrong"+strconv.Itoa(n))
				if ok {
					t.Fatalf("%s: wrong password accepted", l.name)
				}
				replies = append(replies, r)
			}
			if l.name == "imap" {
				// The tagged NO, then BYE.
				c.c.SetReadDeadline(time.Now().Add(5 * time.Second))
				bye, _ := c.r.ReadString('\n')
				replies[2] = strings.TrimRight(bye, "\r\n")
			}
			if !closing[l.name].MatchString(replies[2]) {
				t.Errorf("%s: third failure answered %q, want %v", l.name, replies[2], closing[l.name])
			}
			if !secClosed(c) {
				t.Errorf("%s: connection still open after 3 failed logins", l.name)
			}
		}
	})

	t.Run("delay grows across daemons", func(t *testing.T) {
		const src = "127.0.1.40"
		// One failure in each daemon in turn: the waits before the 2nd,
		// 3rd and 4th checks are 300, 600 and 1200 ms, whichever daemon
		// takes the login.
		order := []secLoginer{ls[1], ls[2], ls[0], ls[1]}
		var took []time.Duration
		for _, l := range order {
			c := l.dial(t, src)
			start := time.Now()
			if _, ok := l.try(c, "demo", "guess"); ok {
				t.Fatalf("%s: wrong password accepted", l.name)
			}
			took = append(took, time.Since(start))
			c.c.Close()
		}
		t.Logf("failed logins took %v", took)
		for i, want := range []time.Duration{300, 600, 1200} {
			want *= time.Millisecond
			if got := took[i+1]; got < want*8/10 {
				t.Errorf("login %d (%s) took %v, want at least %v", i+2, order[i+1].name, got, want*8/10)
			}
		}
		if took[0] > 250*time.Millisecond {
			t.Errorf("first login from a fresh address took %v", took[0])
		}
		// The right password from this address waits too: the delay
		// comes before the check, so it cannot be cut short by hanging
		// up on a slow failure.
		c := ls[2].dial(t, src)
		start := time.Now()
		if r, ok := ls[2].try(c, "demo", "demo"); !ok {
			t.Fatalf("right password refused: %q", r)
		}
		if el := time.Since(start); el < 900*time.Millisecond {
			t.Errorf("right password after 4 failures answered in %v, want the 1.2 s delay", el)
		}
	})

	t.Run("known-good account at an address", func(t *testing.T) {
		const src = "127.0.1.50"
		c := ls[1].dial(t, src)
		if r, ok := ls[1].try(c, "demo", "demo"); !ok {
			t.Fatalf("login refused: %q", r)
		}
		c.c.Close()
		// Someone else behind the same address guesses ...
		for _, l := range ls {
			c := l.dial(t, src)
			l.try(c, "alice", "nope")
			c.c.Close()
		}
		// ... and the user's right password still works at once.
		for _, l := range ls {
			c := l.dial(t, src)
			start := time.Now()
			if r, ok := l.try(c, "demo", "demo"); !ok {
				t.Fatalf("%s: right password from a known-good address refused: %q", l.name, r)
			}
			if el := time.Since(start); el > 250*time.Millisecond {
				t.Errorf("%s: right password from a known-good address took %v", l.name, el)
			}
			c.c.Close()
		}
		// The exemption is demo's at this address, not the address's:
		// the guesser's target still meets the brake in every daemon,
		// demo's good logins notwithstanding.
		for _, l := range ls {
			c := l.dial(t, src)
			start := time.Now()
			if _, ok := l.try(c, "alice", "guess"); ok {
				t.Fatalf("%s: wrong password accepted", l.name)
			}
			if el := time.Since(start); el < 900*time.Millisecond {
				t.Errorf("%s: a guess for alice after demo's good login answered in %v, want the 1.2 s delay", l.name, el)
			}
			c.c.Close()
		}
	})

	t.Run("fail2ban line", func(t *testing.T) {
		time.Sleep(200 * time.Millisecond) // the last log lines
		var lines []string
		for _, d := range []string{"smtpd", "imapd", "pop3d"} {
			n := 0
			for _, l := range strings.Split(tn.Log(d), "\n") {
				if strings.Contains(l, "event=auth_failed") {
					lines = append(lines, l)
					n++
				}
			}
			// 3 (limit) + 1 or 2 (delay) + 2 (known-good) failures each.
			if n < 5 {
				t.Errorf("%s logged %d auth_failed lines, want at least 5", d, n)
			}
		}
		secCheckFail2ban(t, lines)
	})
}

// secCheckFail2ban runs the shipped fail2ban filter over log lines: every
// line must match, with the loopback address the test dialled from.
func secCheckFail2ban(t *testing.T, lines []string) {
	t.Helper()
	f2b, err := exec.LookPath("fail2ban-regex")
	if err != nil {
		t.Skip("fail2ban-regex not installed (apt-get install fail2ban)")
	}
	logFile := filepath.Join(t.TempDir(), "mail.log")
	writeFile(t, logFile, strings.Join(lines, "\n")+"\n")
	filter := filepath.Join(repoRoot(t), "packaging", "fail2ban", "tern.conf")
	out, err := exec.Command(f2b, "-o", "ip", logFile, filter).Output()
	if err != nil {
		t.Fatalf("fail2ban-regex: %v", err)
	}
	ips := strings.Fields(string(out))
	if len(ips) != len(lines) {
		t.Errorf("fail2ban matched %d of %d auth_failed lines", len(ips), len(lines))
	}
	for _, ip := range ips {
		if !strings.HasPrefix(ip, "127.0.1.") {
			t.Errorf("fail2ban found address %q, want the test's 127.0.1.x", ip)
		}
	}
}

// TestSecurityNoEnumeration: VRFY and EXPN say nothing about addresses;
// a login with an unknown user gets the same reply as one with a wrong
// password, in about the same time (the users file's hash is SHA512-CRYPT,
// so a shortcut for unknown users would show).
func TestSecurityNoEnumeration(t *testing.T) {
	// No delay: the timing is of the password check alone.
	tn := secStart(t, `login.delay = "0s"`, `login.max_failures = 100`, `pop3d.max_auth_failures = 100`)
	c := Dial(t, tn.MX)
	c.SMTPReply()
	c.Send("EHLO client.example\r\n")
	c.SMTPReply()
	var vrfy []string
	for _, a := range []string{"demo@example.test", "nobody@example.test", "demo", "postmaster"} {
		c.Send("VRFY " + a + "\r\n")
		vrfy = append(vrfy, c.SMTPReply())
	}
	for _, r := range vrfy {
		if !strings.HasPrefix(r, "252 ") || r != vrfy[0] {
			t.Errorf("VRFY replies differ or are not 252: %q", vrfy)
			break
		}
	}
	c.Send("EXPN team\r\n")
	if r := c.SMTPReply(); !strings.HasPrefix(r, "502") {
		t.Errorf("EXPN: %q, want 502", r)
	}

	for _, l := range secLoginers(tn) {
		conn := l.dial(t, "127.0.2.1")
		times := map[string][]time.Duration{}
		replies := map[string]string{}
		for i := 0; i < 20; i++ {
			for _, user := range []string{"demo", "nosuchuser"} {
				start := time.Now()
				r, ok := l.try(conn, user, "wrong-password")
				times[user] = append(times[user], time.Since(start))
				if ok {
					t.Fatalf("%s: login accepted", l.name)
				}
				if l.name == "smtp" && i%3 == 2 {
					// smtpd counts failed AUTHs as errors too.
					conn.c.Close()
					conn = l.dial(t, "127.0.2.1")
				}
				if prev, seen := replies[user]; seen && prev != r {
					t.Errorf("%s: replies for %s vary: %q, %q", l.name, user, prev, r)
				}
				replies[user] = r
			}
		}
		if replies["demo"] != replies["nosuchuser"] {
			t.Errorf("%s: wrong password answers %q, unknown user %q", l.name, replies["demo"], replies["nosuchuser"])
		}
		known, unknown := secMedian(times["demo"]), secMedian(times["nosuchuser"])
		ratio := float64(unknown) / float64(known)
		t.Logf("%s: median wrong password %v, unknown user %v, ratio %.2f", l.name, known, unknown, ratio)
		if ratio < 0.5 || ratio > 2.0 {
			t.Errorf("%s: unknown user answered %.2f times as fast as a wrong password", l.name, 1/ratio)
		}
	}
}

func secMedian(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// TestSecurityLimits: each input limit gets its reply, and the daemon goes
// on serving the same or the next client.
func TestSecurityLimits(t *testing.T) {
	tn := secStart(t,
		`smtpd.max_message_size = "64K"`, `smtpd.max_recipients = 5`, `smtpd.max_line_length = 1000`,
		`smtpd.max_header_size = "16K"`,
		`imapd.max_literal_size = "64K"`, `imapd.max_connections_per_ip = 4`, `imapd.max_connections = 12`,
		`login.timeout = "2s"`)

	t.Run("smtp", func(t *testing.T) {
		c := secDialFrom(t, "127.0.3.1", tn.MX)
		c.SMTPReply()
		c.Send("EHLO " + strings.Repeat("a", 2000) + "\r\n")
		if r := c.SMTPReply(); !strings.HasPrefix(r, "500") {
			t.Errorf("overlong command line: %q, want 500", r)
		}
		c = secDialFrom(t, "127.0.3.1", tn.MX)
		c.SMTPReply()
		c.Send("EHLO client.example\r\n")
		c.SMTPReply()
		c.Send("MAIL FROM:<a@remote.example> SIZE=1000000\r\n")
		if r := c.SMTPReply(); !strings.HasPrefix(r, "552") {
			t.Errorf("MAIL with SIZE over the limit: %q, want 552", r)
		}
		c.Send("MAIL FROM:<a@remote.example>\r\n")
		c.SMTPReply()
		for i := 0; i < 6; i++ {
			c.Send("RCPT TO:<demo@example.test>\r\n")
			r := c.SMTPReply()
			if i < 5 && !strings.HasPrefix(r, "250") {
				t.Errorf("RCPT %d: %q", i+1, r)
			}
			if i == 5 && !strings.HasPrefix(r, "452") {
				t.Errorf("RCPT over max_recipients: %q, want 452", r)
			}
		}
		c.Send("DATA\r\n")
		c.SMTPReply()
		body := strings.Repeat(strings.Repeat("x", 76)+"\r\n", 1200) // 94 KB
		c.Send("Subject: big\r\n\r\n" + body + ".\r\n")
		if r := c.SMTPReply(); !strings.HasPrefix(r, "552") {
			t.Errorf("message over max_message_size: %q, want 552", r)
		}
		// Many header fields: the header is over max_header_size.
		c.Send("RSET\r\n")
		c.SMTPReply()
		c.Send("MAIL FROM:<a@remote.example>\r\nRCPT TO:<demo@example.test>\r\nDATA\r\n")
		c.SMTPReply()
		c.SMTPReply()
		c.SMTPReply()
		hdr := strings.Repeat("X-Filler: "+strings.Repeat("h", 40)+"\r\n", 1000) // 53 KB
		c.Send(hdr + "Subject: headers\r\n\r\nbody\r\n.\r\n")
		if r := c.SMTPReply(); !strings.HasPrefix(r, "552") && !strings.HasPrefix(r, "554") {
			t.Errorf("header over max_header_size: %q, want 552", r)
		}
		secSMTPServes(t, tn)
	})

	t.Run("imap", func(t *testing.T) {
		c := secDialFrom(t, "127.0.3.2", tn.IMAP)
		c.Line()
		// Before login no literal over 4 KiB is invited: no "+"
		// continuation comes (imapserver refuses it or lets the command
		// time out).
		c.Send("a LOGIN {100000}\r\n")
		c.c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if l, err := c.r.ReadString('\n'); err == nil && strings.HasPrefix(l, "+") {
			t.Errorf("a 100 KB literal before login was invited: %q", l)
		}
		c = secDialFrom(t, "127.0.3.2", tn.IMAP)
		c.Line()
		c.Send("b NOOP " + strings.Repeat("x", 20000) + "\r\n")
		if l, _, _ := secTagged(c, "b"); !strings.HasPrefix(l, "b BAD") {
			t.Errorf("overlong line: %q, want BAD", l)
		}
		c.Send("c LOGIN demo demo\r\n")
		if l, _, _ := secTagged(c, "c"); !strings.HasPrefix(l, "c OK") {
			t.Fatalf("login after an overlong line: %q", l)
		}
		c.Send("d APPEND INBOX {200000}\r\n")
		if l, _, _ := secTagged(c, "d"); !strings.Contains(l, "NO") {
			t.Errorf("APPEND over max_literal_size: %q, want NO [TOOBIG]", l)
		}
		c.Send("e SELECT INBOX\r\n")
		secTagged(c, "e")
		// Deep nesting: within the line limit, far past any sane depth.
		c.Send("f SEARCH " + strings.Repeat("(", 5000) + "ALL" + strings.Repeat(")", 5000) + "\r\n")
		if l, _, ok := secTagged(c, "f"); !ok {
			t.Errorf("deeply nested SEARCH: connection closed")
		} else {
			t.Logf("deeply nested SEARCH: %.60s", l)
		}
		c.Send("g NOOP\r\n")
		if l, _, _ := secTagged(c, "g"); !strings.HasPrefix(l, "g OK") {
			t.Errorf("NOOP after nesting: %q", l)
		}

		// Connections per address, then in total.
		var held []*Conn
		for i := 0; i < 3; i++ { // c is the fourth
			h := secDialFrom(t, "127.0.3.2", tn.IMAP)
			h.Line()
			held = append(held, h)
		}
		extra := secDialFrom(t, "127.0.3.2", tn.IMAP)
		if l := extra.Line(); !strings.HasPrefix(l, "* BYE") {
			t.Errorf("5th connection from one address: %q, want BYE", l)
		}
		for i := 0; i < 8; i++ {
			h := secDialFrom(t, fmt.Sprintf("127.0.3.%d", 100+i), tn.IMAP)
			h.Line()
			held = append(held, h)
		}
		over := secDialFrom(t, "127.0.3.200", tn.IMAP)
		if l := over.Line(); !strings.HasPrefix(l, "* BYE") {
			t.Errorf("connection over max_connections: %q, want BYE", l)
		}
		for _, h := range held {
			h.c.Close()
		}
		c.c.Close()
		time.Sleep(300 * time.Millisecond)
		n := secDialFrom(t, "127.0.3.201", tn.IMAP)
		if l := n.Line(); !strings.HasPrefix(l, "* OK") {
			t.Errorf("after the crowd left: %q", l)
		}
	})

	t.Run("pop3", func(t *testing.T) {
		c := secDialFrom(t, "127.0.3.3", tn.POP3)
		c.Line()
		c.Send("USER " + strings.Repeat("u", 1000) + "\r\n")
		if l := c.Line(); !strings.HasPrefix(l, "-ERR") {
			t.Errorf("overlong line: %q", l)
		}
		c.Send("CAPA\r\n")
		if l := c.Line(); !strings.HasPrefix(l, "+OK") {
			t.Errorf("CAPA after an overlong line: %q", l)
		}
	})

	t.Run("pre-login timeout", func(t *testing.T) {
		for _, a := range []struct{ name, addr string }{{"smtp", tn.Submission}, {"imap", tn.IMAP}, {"pop3", tn.POP3}, {"pop3s", tn.POP3S}, {"smtps", tn.Submissions}, {"imaps", tn.IMAPS}} {
			c := secDialFrom(t, "127.0.3.4", a.addr)
			start := time.Now()
			closed := make(chan time.Duration, 1)
			go func() {
				c.c.SetReadDeadline(time.Now().Add(40 * time.Second))
				buf := make([]byte, 512)
				for {
					if _, err := c.c.Read(buf); err != nil {
						closed <- time.Since(start)
						return
					}
				}
			}()
			select {
			case d := <-closed:
				// login.timeout is 2 s; imapd's TLS handshake has
				// imapd.handshake_timeout (30 s by default) too.
				if d > 8*time.Second {
					t.Errorf("%s: idle client before login kept %v", a.name, d)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("%s: idle client before login still connected after 10 s", a.name)
			}
		}
	})
}

// secSMTPServes checks that smtpd still takes a message.
func secSMTPServes(t testing.TB, tn *Tern) {
	t.Helper()
	c := Dial(t, tn.MX)
	c.SMTPReply()
	c.Send("EHLO ok.example\r\nMAIL FROM:<a@remote.example>\r\nRCPT TO:<demo@example.test>\r\nDATA\r\n")
	for i := 0; i < 4; i++ {
		c.SMTPReply()
	}
	c.Send("Subject: still here\r\n\r\nhello\r\n.\r\n")
	if r := c.SMTPReply(); !strings.HasPrefix(r, "250") {
		t.Errorf("smtpd does not serve a normal client: %q", r)
	}
}

// secRSS is a process's resident set size in bytes (VmRSS).
func secRSS(t testing.TB, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	t.Fatalf("no VmRSS for %d", pid)
	return 0
}

// TestSecurityHostileConnections: 1,000 slowloris connections to each of
// smtpd, imapd and pop3d (half send a byte every second, half nothing)
// grow no daemon's RSS by more than 64 MiB, a normal client is served
// meanwhile, and the pre-login timeout then clears them.
func TestSecurityHostileConnections(t *testing.T) {
	const hostile = 1000
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Cur < 8*hostile {
		lim.Cur = min(max(lim.Max, 8*hostile), 1<<20)
		lim.Max = max(lim.Max, lim.Cur)
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			t.Skipf("cannot raise RLIMIT_NOFILE to %d: %v", lim.Cur, err)
		}
	}
	tn := secStart(t, `login.timeout = "6s"`,
		`smtpd.max_connections = 4000`, `pop3d.max_connections = 4000`, `imapd.max_connections = 4000`,
		`smtpd.max_connections_per_ip = 4000`, `imapd.max_connections_per_ip = 4000`, `pop3d.max_connections_per_ip = 4000`)
	targets := []struct{ name, addr string }{{"smtpd", tn.MX}, {"imapd", tn.IMAP}, {"pop3d", tn.POP3}}
	before := map[string]int64{}
	for _, tg := range targets {
		before[tg.name] = secRSS(t, tn.procs[tg.name].Process.Pid)
	}
	var mu sync.Mutex
	var conns []net.Conn
	owner := map[net.Conn]string{}
	var wg sync.WaitGroup
	for ti, tg := range targets {
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < hostile; i += 4 {
					src := fmt.Sprintf("127.%d.%d.%d", 10+ti, i/250, 1+i%250)
					d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
					c, err := d.Dial("tcp", tg.addr)
					if err != nil {
						t.Errorf("%s: hostile connection %d: %v", tg.name, i, err)
						return
					}
					mu.Lock()
					conns = append(conns, c)
					owner[c] = tg.name
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	// Half of them drip a byte a second; the others send nothing.
	stop := make(chan struct{})
	dripDone := make(chan struct{})
	go func() {
		defer close(dripDone)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				mu.Lock()
				for i, c := range conns {
					if i%2 == 0 {
						c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
						c.Write([]byte("N"))
					}
				}
				mu.Unlock()
			}
		}
	}()
	time.Sleep(3 * time.Second)
	// A normal client is served meanwhile, by every daemon.
	secSMTPServes(t, tn)
	ic := Dial(t, tn.IMAP)
	ic.Line()
	ic.Send("a LOGIN demo demo\r\n")
	if l, _, _ := secTagged(ic, "a"); !strings.HasPrefix(l, "a OK") {
		t.Errorf("imapd under load: %q", l)
	}
	pc := Dial(t, tn.POP3)
	if l := pc.Line(); !strings.HasPrefix(l, "+OK") {
		t.Errorf("pop3d under load: %q", l)
	}
	for _, tg := range targets {
		after := secRSS(t, tn.procs[tg.name].Process.Pid)
		growth := after - before[tg.name]
		t.Logf("%s: RSS %d MiB -> %d MiB with %d hostile connections (+%.1f MiB)",
			tg.name, before[tg.name]>>20, after>>20, hostile, float64(growth)/(1<<20))
		limit := int64(64 << 20)
		if raceEnabled {
			// The race detector's shadow memory multiplies every
			// allocation; the bound stands for the real build.
			limit *= 4
		}
		if growth > limit {
			t.Errorf("%s: RSS grew by %d MiB, more than %d MiB", tg.name, growth>>20, limit>>20)
		}
	}
	// The pre-login timeout (6 s) then closes the hostile connections.
	close(stop)
	<-dripDone
	deadline := time.Now().Add(15 * time.Second)
	stillOpen := map[string]int{}
	for _, c := range conns {
		c.SetReadDeadline(deadline)
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 4096)
			for {
				_, err := c.Read(buf)
				if err == nil {
					continue
				}
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					mu.Lock()
					stillOpen[owner[c]]++
					mu.Unlock()
				}
				return
			}
		}()
	}
	wg.Wait()
	for d, n := range stillOpen {
		t.Errorf("%s: %d hostile connections still open 15 s after the pre-login timeout", d, n)
	}
}

// secTmpfs mounts a small tmpfs at dir for the test, or skips.
func secTmpfs(t testing.TB, dir, size string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs (needs root): %v %s", err, out)
	}
	t.Cleanup(func() {
		// The daemons are stopped by StartTern's cleanup, registered
		// earlier and so run later: unmount lazily.
		exec.Command("umount", "-l", dir).Run()
	})
}

// secFreeBytes is the space available on dir's file system.
func secFreeBytes(t testing.TB, dir string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * int64(st.Bsize)
}

// secSend sends one message over SMTP and returns the reply to DATA's end
// (or the first refusal).
func secSend(t testing.TB, addr, subject string, size int) string {
	t.Helper()
	c := Dial(t, addr)
	defer c.c.Close()
	c.SMTPReply()
	c.Send("EHLO fill.example\r\n")
	c.SMTPReply()
	for _, cmd := range []string{"MAIL FROM:<a@remote.example>", "RCPT TO:<demo@example.test>", "DATA"} {
		c.Send(cmd + "\r\n")
		if r := c.SMTPReply(); !strings.HasPrefix(r, "250") && !strings.HasPrefix(r, "354") {
			return r
		}
	}
	line := strings.Repeat("z", 78) + "\r\n"
	body := strings.Repeat(line, size/len(line))
	c.Send("Subject: " + subject + "\r\n\r\n" + body + ".\r\n")
	return c.SMTPReply()
}

// TestSecurityDiskFull: on a small file system, new mail is refused with
// 452 4.3.1 below the reserve and APPEND gets NO, nothing acknowledged is
// lost or truncated, and mail is taken again once space returns.
func TestSecurityDiskFull(t *testing.T) {
	tn := StartTern(t)
	disk := filepath.Join(tn.Dir, "disk")
	secReconfigure(t, tn, func() { secTmpfs(t, disk, "4m") },
		`.maildir = "`+filepath.Join(disk, "vmail", "%d", "%n", "Maildir")+`"`,
		`.state_dir = "`+filepath.Join(disk, "spool")+`"`,
		`storage.min_free_space = "1M"`, `storage.min_free_inodes = 50`, `login.table_size = 256`)
	const msgSize = 200 << 10
	accepted := map[string]bool{}
	refused := ""
	for i := 0; i < 40; i++ {
		subj := fmt.Sprintf("fill-%02d", i)
		r := secSend(t, tn.MX, subj, msgSize)
		if strings.HasPrefix(r, "250") {
			accepted[subj] = true
			continue
		}
		refused = r
		break
	}
	t.Logf("accepted %d messages of %d KiB, then %q; %d KiB free", len(accepted), msgSize>>10, refused, secFreeBytes(t, disk)>>10)
	if !strings.HasPrefix(refused, "452 4.3.1") {
		t.Errorf("full disk answered %q, want 452 4.3.1", refused)
	}
	if len(accepted) == 0 {
		t.Fatal("nothing was accepted before the disk filled")
	}
	// IMAP APPEND below the reserve.
	c := Dial(t, tn.IMAP)
	c.Line()
	c.Send("a LOGIN demo demo\r\n")
	secTagged(c, "a")
	c.Send("b APPEND INBOX {20}\r\n")
	if l := c.Line(); strings.HasPrefix(l, "+") {
		c.Send("Subject: x\r\n\r\n12345\r\n")
		l, _, _ = secTagged(c, "b")
		if !strings.HasPrefix(l, "b NO") {
			t.Errorf("APPEND on a full disk: %q, want NO", l)
		}
	} else if !strings.HasPrefix(l, "b NO") {
		t.Errorf("APPEND on a full disk: %q, want NO", l)
	}
	// Every accepted message is there, whole (in the Maildir or still in
	// the queue, never truncated).
	secCheckAccepted(t, tn, disk, accepted, msgSize)
	// Space returns: remove some delivered mail; new mail is taken again
	// within seconds, without a restart.
	md := filepath.Join(disk, "vmail", "example.test", "demo", "Maildir")
	removed := 0
	for _, sub := range []string{"new", "cur"} {
		es, _ := os.ReadDir(filepath.Join(md, sub))
		for _, e := range es {
			if removed < 6 {
				os.Remove(filepath.Join(md, sub, e.Name()))
				removed++
			}
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := secSend(t, tn.MX, "after", 10<<10)
		if strings.HasPrefix(r, "250") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("mail still refused 10 s after space returned: %q", r)
		}
		time.Sleep(500 * time.Millisecond)
	}
	// A message larger than the space left above the reserve passes the
	// check and then meets ENOSPC while it is written: it must be either
	// refused with a 4xx or kept whole.
	free := secFreeBytes(t, disk)
	big := int(free) - (1 << 20) + (600 << 10)
	r := secSend(t, tn.MX, "fill-99", big)
	t.Logf("%d KiB message with %d KiB free: %q", big>>10, free>>10, r)
	switch {
	case strings.HasPrefix(r, "250"):
		time.Sleep(time.Second)
		secCheckAccepted(t, tn, disk, map[string]bool{"fill-99": true}, big)
	case !strings.HasPrefix(r, "4"):
		t.Errorf("a message meeting a full disk was answered %q, want 4xx or 250", r)
	}
	// And the service comes back once more.
	os.RemoveAll(filepath.Join(md, "cur"))
	os.MkdirAll(filepath.Join(md, "cur"), 0o700)
	deadline = time.Now().Add(10 * time.Second)
	for {
		r := secSend(t, tn.MX, "after2", 10<<10)
		if strings.HasPrefix(r, "250") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("mail still refused 10 s after space returned: %q", r)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// secCheckAccepted finds each accepted message, by subject, in the Maildir
// or the queue, with its whole body.
func secCheckAccepted(t *testing.T, tn *Tern, disk string, accepted map[string]bool, size int) {
	t.Helper()
	found := map[string]bool{}
	filepath.WalkDir(disk, func(p string, d os.DirEntry, err error) error {
		rel, _ := filepath.Rel(disk, p)
		if err != nil || d.IsDir() || strings.Contains("/"+rel, "/tmp/") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		s := string(b)
		i := strings.Index(s, "Subject: fill-")
		if i < 0 {
			return nil
		}
		subj := s[i+9 : i+16]
		body := strings.Count(s, strings.Repeat("z", 78))
		if !accepted[subj] {
			return nil
		}
		if body != size/80 {
			t.Errorf("%s: message %s has %d of %d body lines", p, subj, body, size/80)
		}
		found[subj] = true
		return nil
	})
	for s := range accepted {
		if !found[s] {
			t.Errorf("accepted message %s is lost", s)
		}
	}
}

// TestSecurityTestSSL runs Debian's testssl.sh against every TLS port and
// STARTTLS service and fails on any finding rated MEDIUM or worse. It
// takes minutes, so it runs only with TERN_TESTSSL=1.
func TestSecurityTestSSL(t *testing.T) {
	if os.Getenv("TERN_TESTSSL") != "1" {
		t.Skip("set TERN_TESTSSL=1 to run testssl.sh (slow)")
	}
	bin, err := exec.LookPath("testssl")
	if err != nil {
		if bin, err = exec.LookPath("testssl.sh"); err != nil {
			t.Skip("testssl.sh not installed (apt-get install testssl.sh)")
		}
	}
	tn := StartTern(t)
	targets := []struct{ name, addr, starttls string }{
		{"smtps", tn.Submissions, ""}, {"imaps", tn.IMAPS, ""}, {"pop3s", tn.POP3S, ""},
		{"smtp", tn.MX, "smtp"}, {"submission", tn.Submission, "smtp"},
		{"imap", tn.IMAP, "imap"}, {"pop3", tn.POP3, "pop3"},
	}
	for _, tg := range targets {
		t.Run(tg.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out.json")
			args := []string{"--quiet", "--warnings", "off", "--color", "0", "--sneaky",
				"-p", "-s", "-f", "-U", "-S", "--jsonfile", out}
			if tg.starttls != "" {
				args = append(args, "-t", tg.starttls)
			}
			args = append(args, tg.addr)
			cmd := exec.Command(bin, args...)
			b, err := cmd.CombinedOutput()
			if _, statErr := os.Stat(out); statErr != nil {
				t.Fatalf("testssl.sh: %v\n%s", err, b)
			}
			for _, f := range secTestSSLFindings(t, out) {
				t.Errorf("%s: %s %s: %s", tg.name, f.Severity, f.ID, f.Finding)
			}
		})
	}
}

type secFinding struct {
	ID       string `json:"id"`
	Severity string `json:"severity"`
	Finding  string `json:"finding"`
}

// secTestSSLFindings returns the findings rated MEDIUM, HIGH or CRITICAL.
// Findings about the certificate itself are left out: the test instance's
// certificate is self-signed for a test name, which testssl.sh rates
// rightly but which says nothing about tern.
func secTestSSLFindings(t testing.TB, path string) []secFinding {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var all []secFinding
	if err := json.Unmarshal(b, &all); err != nil {
		t.Fatalf("testssl.sh JSON: %v", err)
	}
	var bad []secFinding
	for _, f := range all {
		switch f.Severity {
		case "MEDIUM", "HIGH", "CRITICAL":
		default:
			continue
		}
		if secCertFinding(f.ID) {
			continue
		}
		bad = append(bad, f)
	}
	return bad
}

func secCertFinding(id string) bool {
	for _, p := range []string{"cert_", "chain_of_trust", "intermediate_cert", "OCSP", "DNS_CAArecord", "cert"} {
		if strings.HasPrefix(id, p) {
			return true
		}
	}
	return false
}
