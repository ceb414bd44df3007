package main

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"tern/common/config"
)

// The limits and timeouts of the connection loop, tested on every
// transport a client can use: plain, STARTTLS and implicit TLS. A rule
// enforced on the raw socket would not hold after STARTTLS.

// wireConn is a line-level client over one transport.
type wireConn struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
}

type transport struct {
	name string
	dial func(t testing.TB, e *testEnv) *wireConn
}

var transports = []transport{
	{"plain", func(t testing.TB, e *testEnv) *wireConn {
		c, err := net.Dial("tcp", e.addr)
		if err != nil {
			t.Fatal(err)
		}
		w := newWireConn(t, c)
		w.line()
		return w
	}},
	{"starttls", func(t testing.TB, e *testEnv) *wireConn {
		c, err := net.Dial("tcp", e.addr)
		if err != nil {
			t.Fatal(err)
		}
		w := newWireConn(t, c)
		w.line()
		w.send("S STARTTLS")
		if l := w.line(); !strings.HasPrefix(l, "S OK") {
			t.Fatalf("STARTTLS: %q", l)
		}
		tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true})
		if err := tc.Handshake(); err != nil {
			t.Fatalf("handshake: %v", err)
		}
		return newWireConn(t, tc)
	}},
	{"implicit", func(t testing.TB, e *testEnv) *wireConn {
		c, err := tls.Dial("tcp", e.tlsAddr, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		w := newWireConn(t, c)
		w.line()
		return w
	}},
}

func newWireConn(t testing.TB, c net.Conn) *wireConn {
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return &wireConn{t: t, conn: c, r: bufio.NewReader(c)}
}

func (w *wireConn) send(line string) {
	w.t.Helper()
	if _, err := io.WriteString(w.conn, line+"\r\n"); err != nil {
		w.t.Fatalf("send %q: %v", line, err)
	}
}

func (w *wireConn) line() string {
	w.t.Helper()
	l, err := w.r.ReadString('\n')
	if err != nil {
		w.t.Fatalf("read: %v (after %q)", err, l)
	}
	return l
}

// until reads responses up to the tagged one and returns them all, the
// tagged line last.
func (w *wireConn) until(tag string) []string {
	w.t.Helper()
	var out []string
	for {
		l := w.line()
		out = append(out, l)
		if strings.HasPrefix(l, tag+" ") {
			return out
		}
	}
}

// ok sends a command and fails unless it is answered OK.
func (w *wireConn) ok(tag, cmd string) []string {
	w.t.Helper()
	w.send(tag + " " + cmd)
	out := w.until(tag)
	if !strings.HasPrefix(out[len(out)-1], tag+" OK") {
		w.t.Fatalf("%s: %q", cmd, out)
	}
	return out
}

// answers sends a command and fails unless its tagged reply starts with
// want after the tag ("NO [NONEXISTENT]", "BAD").
func (w *wireConn) answers(tag, cmd, want string) {
	w.t.Helper()
	w.send(tag + " " + cmd)
	out := w.until(tag)
	if l := out[len(out)-1]; !strings.HasPrefix(l, tag+" "+want) {
		w.t.Errorf("%s: %q, want %s", cmd, out, want)
	}
}

func (w *wireConn) login() {
	w.t.Helper()
	w.ok("L", "LOGIN demo demo")
}

// closed says whether the server closed the connection (after any
// responses still on their way).
func (w *wireConn) closed() bool {
	w.conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	for {
		if _, err := w.r.ReadString('\n'); err != nil {
			return err == io.EOF || strings.Contains(err.Error(), "reset") || strings.Contains(err.Error(), "closed")
		}
	}
}

func eachTransport(t *testing.T, e *testEnv, f func(t *testing.T, w *wireConn)) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) { f(t, tr.dial(t, e)) })
	}
}

func noDelay(c *config.Config) {
	c.Login.Delay = 0
	c.Storage.MinFreeSpace = 0
}

// The bytes of a refused literal are thrown away, never run as commands:
// a message body full of commands cannot touch the mailbox.
func TestRefusedLiteralNeverRuns(t *testing.T) {
	e := startServer(t, noDelay, func(c *config.Config) { c.IMAPD.MaxLiteralSize = 1024 })
	e.deliver(t, "INBOX", testMessage("one", "hello"))
	e.deliver(t, "INBOX", testMessage("two", "world"))
	evil := "X1 STORE 1:* +FLAGS (\\Deleted)\r\nX2 EXPUNGE\r\nX3 DELETE Trash\r\n"
	eachTransport(t, e, func(t *testing.T, w *wireConn) {
		w.login()
		w.ok("S", "SELECT INBOX")
		// An APPEND that fails to parse before its literal (a quoted
		// string is not a flag), and one over APPENDLIMIT.
		big := evil + strings.Repeat("x", 1500)
		for _, c := range []struct{ cmd, body, want string }{
			{`A1 APPEND INBOX (\Seen "x") {%d+}`, evil, "A1 BAD"},
			{`A2 APPEND INBOX {%d+}`, big, "A2 NO [TOOBIG]"},
			{`A3 FROBNICATE {%d+}`, evil, "A3 BAD"},
		} {
			fmt.Fprintf(w.conn, c.cmd+"\r\n%s\r\n", len(c.body), c.body)
			out := w.until(c.want[:2])
			if got := out[len(out)-1]; !strings.HasPrefix(got, c.want) {
				t.Fatalf("%s: %q", c.cmd, out)
			}
			for _, l := range out {
				if strings.HasPrefix(l, "X") {
					t.Fatalf("literal ran as a command: %q", out)
				}
			}
		}
		out := w.ok("N", "NOOP")
		for _, l := range out {
			if strings.HasPrefix(l, "X") || strings.Contains(l, "EXPUNGE") {
				t.Fatalf("literal ran as a command: %q", out)
			}
		}
		f, err := e.mailbox(t).Folder("INBOX")
		if err != nil {
			t.Fatal(err)
		}
		snap, err := f.Sync()
		if err != nil || len(snap.Messages) != 2 {
			t.Fatalf("INBOX has %d messages, want 2 (%v)", len(snap.Messages), err)
		}
		for _, m := range snap.Messages {
			if hasFlag(m.Flags, "\\Deleted") {
				t.Fatalf("message %d got \\Deleted", m.UID)
			}
		}
	})
}

// An over-size synchronizing literal is answered at once, with no
// continuation request: the client is not left waiting.
func TestSyncLiteralTooBigAnsweredAtOnce(t *testing.T) {
	e := startServer(t, noDelay)
	eachTransport(t, e, func(t *testing.T, w *wireConn) {
		start := time.Now()
		w.send("A LOGIN {100000}")
		l := w.line()
		if !strings.HasPrefix(l, "A BAD [TOOBIG]") || time.Since(start) > 2*time.Second {
			t.Fatalf("got %q after %v", l, time.Since(start))
		}
		w.login()
		w.send("B APPEND INBOX {999999999999}")
		if l := w.line(); !strings.HasPrefix(l, "B NO [TOOBIG]") {
			t.Fatalf("APPEND over the limit: %q", l)
		}
		w.ok("C", "NOOP")
	})
}

// Deep SEARCH nesting gets BAD [LIMIT] and costs no more memory than the
// command's own bytes.
func TestDeepSearchNesting(t *testing.T) {
	e := startServer(t, noDelay)
	e.deliver(t, "INBOX", testMessage("one", "hello"))
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	eachTransport(t, e, func(t *testing.T, w *wireConn) {
		w.login()
		w.ok("S", "SELECT INBOX")
		for i := 0; i < 5; i++ {
			w.send("A SEARCH " + strings.Repeat("OR ALL ", 2000) + "ALL")
			if l := w.line(); !strings.HasPrefix(l, "A BAD [LIMIT]") {
				t.Fatalf("deep OR: %q", l)
			}
			w.send("B SEARCH " + strings.Repeat("(", 8000) + "ALL" + strings.Repeat(")", 8000))
			if l := w.line(); !strings.HasPrefix(l, "B BAD") {
				t.Fatalf("deep parentheses: %q", l)
			}
		}
		w.ok("C", "SEARCH (OR (SEEN) (NOT SEEN))")
	})
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grown := int64(after.HeapAlloc) - int64(before.HeapAlloc); grown > 16<<20 {
		t.Fatalf("heap grew by %d bytes", grown)
	}
}

// login.max_failures closes the connection with BYE, whatever the
// transport.
func TestMaxFailuresEveryTransport(t *testing.T) {
	e := startServer(t, noDelay, func(c *config.Config) { c.Login.MaxFailures = 3 })
	eachTransport(t, e, func(t *testing.T, w *wireConn) {
		for i := 1; i <= 3; i++ {
			w.send(fmt.Sprintf("A%d LOGIN demo wrong", i))
			if l := w.line(); !strings.HasPrefix(l, fmt.Sprintf("A%d NO", i)) {
				t.Fatalf("failure %d: %q", i, l)
			}
		}
		if l := w.line(); !strings.HasPrefix(l, "* BYE") {
			t.Fatalf("after max_failures: %q", l)
		}
		if !w.closed() {
			t.Fatal("connection still open")
		}
	})
}

// The pre-login timeout ends a silent unauthenticated connection, and
// only that: a logged-in session and an IDLE stay up past it, on every
// transport.
func TestTimeoutsEveryTransport(t *testing.T) {
	e := startServer(t, noDelay, func(c *config.Config) {
		c.Login.Timeout = config.Duration(700 * time.Millisecond)
		c.IMAPD.IdleRecheck = config.Duration(200 * time.Millisecond)
	})
	eachTransport(t, e, func(t *testing.T, w *wireConn) {
		silent := transportOf(t, w)(t, e)
		w.login()
		w.ok("S", "SELECT INBOX")
		time.Sleep(time.Second)
		if l := silent.line(); !strings.HasPrefix(l, "* BYE") {
			t.Fatalf("silent connection: %q", l)
		}
		w.ok("N", "NOOP")
		w.send("I IDLE")
		if l := w.line(); !strings.HasPrefix(l, "+ ") {
			t.Fatalf("IDLE: %q", l)
		}
		time.Sleep(time.Second)
		e.deliver(t, "INBOX", testMessage("late", "news"))
		if l := w.line(); !strings.HasSuffix(l, " EXISTS\r\n") {
			t.Fatalf("during IDLE: %q", l)
		}
		w.send("DONE")
		if out := w.until("I"); !strings.HasPrefix(out[len(out)-1], "I OK") {
			t.Fatalf("DONE: %q", out)
		}
	})
}

// transportOf returns the dialer of the transport w was made with, from
// the test's name.
func transportOf(t *testing.T, w *wireConn) func(testing.TB, *testEnv) *wireConn {
	name := t.Name()[strings.LastIndexByte(t.Name(), '/')+1:]
	for _, tr := range transports {
		if tr.name == name {
			return tr.dial
		}
	}
	t.Fatalf("no transport %q", name)
	return nil
}

// An APPEND whose connection closes mid-literal stores nothing (RFC 9051
// 6.3.12: the message is the whole literal).
func TestAppendCutShortStoresNothing(t *testing.T) {
	e := startServer(t, noDelay)
	for _, sync := range []bool{true, false} {
		eachTransport(t, e, func(t *testing.T, w *wireConn) {
			w.login()
			if sync {
				w.send("A APPEND INBOX {100}")
				if l := w.line(); !strings.HasPrefix(l, "+ ") {
					t.Fatalf("APPEND: %q", l)
				}
			} else {
				w.send("A APPEND INBOX {100+}")
			}
			io.WriteString(w.conn, strings.Repeat("y", 50))
			switch c := w.conn.(type) {
			case *tls.Conn:
				c.CloseWrite()
			case *net.TCPConn:
				c.CloseWrite()
			}
			w.closed()
			time.Sleep(100 * time.Millisecond)
			f, err := e.mailbox(t).Folder("INBOX")
			if err != nil {
				t.Fatal(err)
			}
			if snap, err := f.Sync(); err != nil || len(snap.Messages) != 0 {
				t.Fatalf("a cut APPEND stored %d messages (%v)", len(snap.Messages), err)
			}
		})
	}
}

// DELETE of the selected mailbox is answered (NO [CANNOT]) and the
// session goes on.
func TestDeleteSelectedAnswered(t *testing.T) {
	e := startServer(t, noDelay)
	eachTransport(t, e, func(t *testing.T, w *wireConn) {
		w.login()
		w.send("C CREATE Doomed")
		w.until("C")
		w.ok("S", "SELECT Doomed")
		w.send("D DELETE Doomed")
		if out := w.until("D"); !strings.HasPrefix(out[len(out)-1], "D NO [CANNOT]") {
			t.Fatalf("DELETE of the selected mailbox: %q", out)
		}
		w.ok("U", "UNSELECT")
		w.ok("D2", "DELETE Doomed")
	})
}

// Under UTF8=ACCEPT names are UTF-8 and "&" is an ordinary character
// (RFC 6855 3): "R&D" and "&ZeVnLIqe-x" are created as written.
func TestUTF8AcceptNames(t *testing.T) {
	e := startServer(t, noDelay)
	eachTransport(t, e, func(t *testing.T, w *wireConn) {
		w.login()
		w.ok("E", "ENABLE UTF8=ACCEPT")
		w.ok("C1", `CREATE "R&D"`)
		w.ok("C2", `CREATE "&ZeVnLIqe-x"`)
		w.ok("C3", `CREATE "日本"`)
		// RFC 6855 4: APPEND's UTF8 data item.
		msg := testMessage("grüße", "hällo")
		fmt.Fprintf(w.conn, "A APPEND \"R&D\" UTF8 (~{%d+}\r\n%s)\r\n", len(msg), msg)
		if out := w.until("A"); !strings.HasPrefix(out[len(out)-1], "A OK") {
			t.Fatalf("APPEND UTF8: %q", out)
		}
		out := strings.Join(w.ok("L", `LIST "" *`), "")
		for _, want := range []string{`"R&D"`, `"&ZeVnLIqe-x"`, `"日本"`} {
			if !strings.Contains(out, want) {
				t.Fatalf("LIST lacks %s: %s", want, out)
			}
		}
		list, err := e.mailbox(t).List()
		if err != nil {
			t.Fatal(err)
		}
		have := map[string]bool{}
		for _, f := range list {
			have[f.Name] = true
		}
		if !have["R&D"] || !have["&ZeVnLIqe-x"] || have["日本語x"] {
			t.Fatalf("store has %v", have)
		}
		// Without UTF8=ACCEPT the same names come out in modified UTF-7.
		other := transportOf(t, w)(t, e)
		other.login()
		out = strings.Join(other.ok("L", `LIST "" *`), "")
		if !strings.Contains(out, `"R&-D"`) || !strings.Contains(out, `"&-ZeVnLIqe-x"`) {
			t.Fatalf("LIST without UTF8=ACCEPT: %s", out)
		}
		for _, n := range []string{`"R&D"`, `"&ZeVnLIqe-x"`, `"日本"`} {
			w.send("D DELETE " + n)
			w.until("D")
		}
		// Invalid names get BAD or NO, never SERVERBUG.
		for _, bad := range []string{`CREATE "a` + "\x01" + `b"`, `CREATE "&Jjo"`, `LIST "" a(b`, `LIST "" "&Jjo"`, `LIST "" "a` + "\x01" + `"`} {
			other.send("B " + bad)
			l := other.until("B")
			last := l[len(l)-1]
			refused := strings.HasPrefix(last, "B BAD") || strings.HasPrefix(last, "B NO")
			// A LIST pattern that is no valid name matches nothing.
			listOK := strings.HasPrefix(bad, "LIST") && strings.HasPrefix(last, "B OK") && len(l) == 1
			if !(refused || listOK) || strings.Contains(last, "SERVERBUG") {
				t.Fatalf("%s: %q", bad, l)
			}
		}
	})
}

// A partial FETCH of a header section whose origin is past its end is
// empty, not the whole header.
func TestPartialHeaderPastEnd(t *testing.T) {
	e := startServer(t, noDelay)
	e.deliver(t, "INBOX", testMessage("one", "hello"))
	eachTransport(t, e, func(t *testing.T, w *wireConn) {
		w.login()
		w.ok("S", "EXAMINE INBOX")
		for _, item := range []string{"BODY.PEEK[HEADER]<10000.10>", "BODY.PEEK[HEADER.FIELDS (Subject)]<500.10>"} {
			out := strings.Join(w.ok("F", "FETCH 1 "+item), "")
			if strings.Contains(out, "Subject: ") || !strings.Contains(out, "{0}") {
				t.Fatalf("%s: %q", item, out)
			}
		}
	})
}

// ID (RFC 2971) before login: a 30 KB line within RFC 2971 3.3's limits
// is answered OK, a longer one BAD, and the connection stays.
func TestLongIDLine(t *testing.T) {
	e := startServer(t, noDelay)
	var pairs []string
	for i := 0; i < 30; i++ {
		pairs = append(pairs, fmt.Sprintf(`"k%02d" "%s"`, i, strings.Repeat("x", 1000)))
	}
	eachTransport(t, e, func(t *testing.T, w *wireConn) {
		out := w.ok("I", "ID ("+strings.Join(pairs, " ")+")")
		if !strings.HasPrefix(out[0], "* ID (") {
			t.Fatalf("ID: %q", out)
		}
		w.send(`J ID ("name" "` + strings.Repeat("x", 60000) + `")`)
		if l := w.line(); !strings.HasPrefix(l, "J BAD") {
			t.Fatalf("long ID: %q", l)
		}
		w.send(`K LOGIN "` + strings.Repeat("x", 20000) + `" y`)
		if l := w.line(); !strings.HasPrefix(l, "K BAD") {
			t.Fatalf("long LOGIN: %q", l)
		}
		w.ok("L", "NOOP")
	})
}

// A command pipelined behind STARTTLS is thrown away, never run inside
// the TLS session (RFC 9051 6.2.1).
func TestStartTLSDropsPipelined(t *testing.T) {
	e := startServer(t, noDelay)
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	w := newWireConn(t, c)
	w.line()
	io.WriteString(c, "S STARTTLS\r\nX LOGIN demo demo\r\n")
	if l := w.line(); !strings.HasPrefix(l, "S OK") {
		t.Fatalf("STARTTLS: %q", l)
	}
	tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	tw := newWireConn(t, tc)
	out := tw.ok("C", "CAPABILITY")
	for _, l := range out {
		if strings.HasPrefix(l, "X ") {
			t.Fatalf("pipelined command ran: %q", out)
		}
	}
	tw.send("N SELECT INBOX")
	if out := tw.until("N"); !strings.HasPrefix(out[len(out)-1], "N BAD") {
		t.Fatalf("SELECT before login inside TLS: %q", out)
	}
}

// Before login an unknown command (an HTTP request sent to the IMAP
// port) is answered BAD and the connection ends with BYE.
func TestUnknownBeforeLogin(t *testing.T) {
	e := startServer(t, noDelay)
	eachTransport(t, e, func(t *testing.T, w *wireConn) {
		w.send("GET / HTTP/1.1")
		if l := w.line(); !strings.HasPrefix(l, "GET BAD") {
			t.Fatalf("GET: %q", l)
		}
		if l := w.line(); !strings.HasPrefix(l, "* BYE") {
			t.Fatalf("after GET: %q", l)
		}
		if !w.closed() {
			t.Fatal("connection still open")
		}
	})
}
