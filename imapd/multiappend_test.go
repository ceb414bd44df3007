package main

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"tern/common/config"
)

// MULTIAPPEND (RFC 3502) and CATENATE (RFC 4469) on every transport.

// sendCommand sends a command whose literals are written inline as
// "{n}\r\n" followed by n octets: after a synchronizing announcement it
// waits for the continuation request, and stops (returning the line) if
// the server answers instead.
func (w *wireConn) sendCommand(cmd string) (answered string) {
	w.t.Helper()
	lit := regexp.MustCompile(`~?\{(\d+)(\+?)\}\r\n`)
	for {
		loc := lit.FindStringSubmatchIndex(cmd)
		if loc == nil {
			if _, err := io.WriteString(w.conn, cmd+"\r\n"); err != nil {
				w.t.Fatalf("send: %v", err)
			}
			return ""
		}
		if _, err := io.WriteString(w.conn, cmd[:loc[1]]); err != nil {
			w.t.Fatalf("send: %v", err)
		}
		var n int
		fmt.Sscan(cmd[loc[2]:loc[3]], &n)
		if loc[4] == loc[5] {
			if l := w.line(); !strings.HasPrefix(l, "+") {
				return l
			}
		}
		if _, err := io.WriteString(w.conn, cmd[loc[1]:loc[1]+n]); err != nil {
			w.t.Fatalf("send: %v", err)
		}
		cmd = cmd[loc[1]+n:]
	}
}

// answer sends a command (sendCommand) and returns its responses, the
// tagged one last.
func (w *wireConn) answer(cmd string) []string {
	w.t.Helper()
	if l := w.sendCommand(cmd); l != "" {
		return []string{l}
	}
	return w.until(cmd[:strings.IndexByte(cmd, ' ')])
}

// fetchAndDelete checks that a FETCH in mbox answers with each of wants,
// then deletes mbox.
func (w *wireConn) fetchAndDelete(mbox, fetch string, wants ...string) {
	w.t.Helper()
	w.ok("E", "EXAMINE "+mbox)
	out := w.ok("F", "FETCH "+fetch)
	got := strings.Join(out, "")
	for _, want := range wants {
		if !strings.Contains(got, want) {
			w.t.Fatalf("missing %q in %q", want, got)
		}
	}
	w.ok("U", "UNSELECT")
	w.ok("D", "DELETE "+mbox)
}

// lit is s as a literal, synchronizing or not.
func lit(s string, sync bool) string {
	if sync {
		return fmt.Sprintf("{%d}\r\n%s", len(s), s)
	}
	return fmt.Sprintf("{%d+}\r\n%s", len(s), s)
}

// folderState returns the number of messages in demo's folder and of files
// left in its tmp/.
func (e *testEnv) folderState(t testing.TB, name string) (msgs, tmp int) {
	t.Helper()
	f, err := e.mailbox(t).Folder(name)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := f.Sync()
	if err != nil {
		t.Fatal(err)
	}
	left, _ := os.ReadDir(filepath.Join(f.Dir(), "tmp"))
	return len(snap.Messages), len(left)
}

// wantFolder waits until the folder holds msgs messages and tmp/ is empty
// (the server cleans up after a connection ends).
func (e *testEnv) wantFolder(t testing.TB, name string, msgs int) {
	t.Helper()
	var n, tmp int
	for i := 0; i < 50; i++ {
		if n, tmp = e.folderState(t, name); n == msgs && tmp == 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: %d messages, %d files in tmp/; want %d and 0", name, n, tmp, msgs)
}

func TestMultiAppendWire(t *testing.T) {
	e := startServer(t, noDelay)
	eachTransport(t, e, func(t *testing.T, w *wireConn) {
		w.login()
		mbox := "Multi-" + filepath.Base(t.Name())
		w.ok("C", "CREATE "+mbox)
		out := w.ok("K", "CAPABILITY")
		if !strings.Contains(out[0], " MULTIAPPEND") || !strings.Contains(out[0], " CATENATE") {
			t.Fatalf("capabilities: %q", out[0])
		}
		for _, sync := range []bool{true, false} {
			cmd := `A APPEND ` + mbox + ` (\Seen) ` + lit(testMessage("one", "1\r\n"), sync) +
				` (\Flagged $Work) "05-Mar-2021 10:00:00 +0100" ` + lit(testMessage("two", "2\r\n"), sync) +
				" " + lit(testMessage("three", "3\r\n"), sync)
			out := w.answer(cmd)
			m := regexp.MustCompile(`^A OK \[APPENDUID (\d+) (\d+):(\d+)\]`).FindStringSubmatch(out[len(out)-1])
			if m == nil {
				t.Fatalf("MULTIAPPEND: %q", out)
			}
		}
		w.fetchAndDelete(mbox, "1:6 (FLAGS INTERNALDATE BODY.PEEK[HEADER.FIELDS (SUBJECT)])",
			`* 1 FETCH (UID 1 FLAGS (\Seen \Recent)`, `* 2 FETCH (UID 2 FLAGS ($Work \Flagged \Recent) INTERNALDATE "05-Mar-2021 09:00:00 +0000"`,
			"Subject: three", `* 4 FETCH (UID 4 FLAGS (\Seen \Recent)`, "* 6 FETCH")
	})
}

// The arguments of messages already read do not count against the line
// limit: a MULTIAPPEND may carry more flags and dates than one command
// line could hold.
func TestMultiAppendMany(t *testing.T) {
	e := startServer(t, noDelay, func(c *config.Config) { c.IMAPD.MaxLineLength = 8192 })
	eachTransport(t, e, func(t *testing.T, w *wireConn) {
		w.login()
		mbox := "Many-" + filepath.Base(t.Name())
		w.ok("C", "CREATE "+mbox)
		var b strings.Builder
		b.WriteString("A APPEND " + mbox)
		const n = 400
		for i := 0; i < n; i++ {
			b.WriteString(` (\Seen $Label1 $Label2) "05-Mar-2021 10:00:00 +0100" ` + lit(fmt.Sprintf("Subject: %d\r\n\r\n", i), false))
		}
		if b.Len() < 3*8192 { // well over the line limit
			t.Fatalf("command of %d octets", b.Len())
		}
		out := w.answer(b.String())
		if !strings.HasPrefix(out[len(out)-1], "A OK [APPENDUID ") || !strings.Contains(out[len(out)-1], fmt.Sprintf(" 1:%d]", n)) {
			t.Fatalf("MULTIAPPEND of %d: %q", n, out)
		}
		e.wantFolder(t, mbox, n)
	})
}

// RFC 3502 6.3.11: when one message of the command cannot be appended,
// none is.
func TestMultiAppendAllOrNothing(t *testing.T) {
	e := startServer(t, noDelay)
	eachTransport(t, e, func(t *testing.T, w *wireConn) {
		w.login()
		msg := testMessage("x", "body\r\n")
		for _, c := range []struct {
			cmd, want string
			early     bool // answered instead of a continuation request
		}{
			// An invalid flag on the third message.
			{"A APPEND INBOX " + lit(msg, false) + " " + lit(msg, false) + ` (\Bogus) ` + lit(msg, false), "A BAD", false},
			{"A APPEND INBOX " + lit(msg, true) + " " + lit(msg, true) + ` (\Bogus) ` + lit(msg, true), "A BAD", true},
			// A bad date on the second.
			{"A APPEND INBOX " + lit(msg, true) + ` "31-Feb-2021 99:00:00 +0000" ` + lit(msg, true), "A BAD", true},
			// Garbage after the last message.
			{"A APPEND INBOX " + lit(msg, false) + " " + lit(msg, false) + " junk", "A BAD", false},
			// RFC 3502 6.3.11: a zero-length message cancels the
			// command.
			{"A APPEND INBOX " + lit(msg, true) + " " + lit("", true), "A NO", true},
			{"A APPEND INBOX " + lit(msg, false) + " " + lit("", false) + " " + lit("X1 DELETE Trash\r\n", false), "A NO", false},
			// A mailbox that does not exist.
			{"A APPEND Nope " + lit(msg, true) + " " + lit(msg, true), "A NO [TRYCREATE]", true},
		} {
			l := w.sendCommand(c.cmd)
			early := l != ""
			if !early {
				out := w.until("A")
				l = out[len(out)-1]
			}
			if !strings.HasPrefix(l, c.want) {
				t.Fatalf("%q: %q", c.cmd, l)
			}
			if c.early && !early {
				t.Fatalf("%q: the client was asked for a literal the server refused: %q", c.cmd, l)
			}
			w.ok("N", "NOOP")
			e.wantFolder(t, "INBOX", 0)
		}
	})
}

// A store short of space refuses the whole command, whatever the
// transport (RFC 5530 OVERQUOTA), with its literals consumed.
func TestMultiAppendNoSpace(t *testing.T) {
	e := startServer(t, noDelay, func(c *config.Config) { c.Storage.MinFreeSpace = 1 << 60 })
	msg := testMessage("x", "body\r\n")
	eachTransport(t, e, func(t *testing.T, w *wireConn) {
		w.login()
		for _, sync := range []bool{true, false} {
			out := w.answer("A APPEND INBOX " + lit(msg, sync) + " " + lit("X1 DELETE Trash\r\n", sync))
			if l := out[len(out)-1]; !strings.HasPrefix(l, "A NO [OVERQUOTA]") {
				t.Fatalf("APPEND: %q", out)
			}
			w.ok("N", "NOOP")
			e.wantFolder(t, "INBOX", 0)
		}
		if out := w.ok("L", `LIST "" Trash`); !strings.Contains(strings.Join(out, ""), "Trash") {
			t.Fatalf("Trash gone: %q", out)
		}
	})
}

// The limits of one APPEND hold on every transport, and the literals of a
// refused command never run as commands.
func TestMultiAppendLimits(t *testing.T) {
	e := startServer(t, noDelay, func(c *config.Config) {
		c.IMAPD.MaxLiteralSize = 1024
		c.IMAPD.MaxAppendMessages = 3
		c.IMAPD.MaxAppendSize = 2000
	})
	evil := "X1 DELETE Trash\r\nX2 CREATE Evil\r\n"
	msg := testMessage("x", "body\r\n")
	big := testMessage("big", strings.Repeat("y", 700)+"\r\n")
	e.deliver(t, "Trash", big)
	eachTransport(t, e, func(t *testing.T, w *wireConn) {
		w.login()
		for _, c := range []struct{ cmd, want string }{
			// A fourth message: LIMIT, its literal (full of commands)
			// thrown away.
			{"A APPEND INBOX " + lit(msg, false) + " " + lit(msg, false) + " " + lit(msg, false) + " " + lit(evil, false) + " " + lit(evil, false), "A NO [LIMIT]"},
			{"A APPEND INBOX " + lit(msg, true) + " " + lit(msg, true) + " " + lit(msg, true) + " " + lit(evil, true), "A NO [LIMIT]"},
			// Over max_append_size together.
			{"A APPEND INBOX " + lit(big, false) + " " + lit(big, false) + " " + lit(evil+strings.Repeat("z", 700), false), "A NO [TOOBIG]"},
			// One message over APPENDLIMIT.
			{"A APPEND INBOX " + lit(msg, false) + " " + lit(evil+strings.Repeat("z", 1100), false), "A NO [TOOBIG]"},
			// CATENATE TEXT parts over APPENDLIMIT together.
			{"A APPEND INBOX CATENATE (TEXT " + lit(big, false) + " TEXT " + lit(evil+strings.Repeat("z", 400), false) + ")", "A NO [TOOBIG]"},
			// URL parts over APPENDLIMIT together (RFC 4469 4.2).
			{`A APPEND INBOX CATENATE (URL "/Trash/;UID=1" URL "/Trash/;UID=1" TEXT ` + lit(evil, false) + ")", "A NO [TOOBIG]"},
		} {
			out := w.answer(c.cmd)
			if l := out[len(out)-1]; !strings.HasPrefix(l, c.want) {
				t.Fatalf("%q: %q", c.cmd[:60], out)
			}
			out = append(out, w.ok("N", "NOOP")...)
			for _, l := range out {
				if strings.HasPrefix(l, "X") {
					t.Fatalf("literal ran as a command: %q", out)
				}
			}
			e.wantFolder(t, "INBOX", 0)
		}
		out := w.ok("L", `LIST "" *`)
		if got := strings.Join(out, ""); !strings.Contains(got, "Trash") || strings.Contains(got, "Evil") {
			t.Fatalf("a refused literal ran: %q", out)
		}
	})
}

// A connection that ends halfway through the third message of a
// MULTIAPPEND, with a FIN or a RST, leaves nothing in the folder and
// nothing in tmp/.
func TestMultiAppendCutShort(t *testing.T) {
	e := startServer(t, noDelay)
	msg := testMessage("x", strings.Repeat("body\r\n", 100))
	for _, rst := range []bool{false, true} {
		eachTransport(t, e, func(t *testing.T, w *wireConn) {
			w.login()
			cmd := "A APPEND INBOX " + lit(msg, false) + " " + lit(msg, false) + " " + lit(msg, false)
			io.WriteString(w.conn, cmd[:len(cmd)-len(msg)/2])
			// The first two messages are in tmp/ before the cut.
			for i := 0; i < 50; i++ {
				if _, tmp := e.folderState(t, "INBOX"); tmp >= 2 {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			raw := w.conn
			if tc, ok := raw.(*tls.Conn); ok {
				raw = tc.NetConn()
			}
			if rst {
				raw.(*net.TCPConn).SetLinger(0)
				raw.Close()
			} else if tc, ok := w.conn.(*tls.Conn); ok {
				tc.CloseWrite()
			} else {
				raw.(*net.TCPConn).CloseWrite()
			}
			if !rst {
				w.closed()
			}
			e.wantFolder(t, "INBOX", 0)
		})
	}
}

func TestCatenateWire(t *testing.T) {
	e := startServer(t, noDelay)
	e.deliver(t, "INBOX", testMessage("src", "source body\r\n"))
	e.deliver(t, "INBOX", "From: a@example.test\r\nSubject: mp\r\nMIME-Version: 1.0\r\n"+
		"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\npart one\r\n--b\r\n"+
		"Content-Type: text/plain\r\n\r\npart two\r\n--b--\r\n")
	eachTransport(t, e, func(t *testing.T, w *wireConn) {
		w.login()
		out := w.ok("S", "STATUS INBOX (UIDVALIDITY)")
		uidv := regexp.MustCompile(`UIDVALIDITY (\d+)`).FindStringSubmatch(out[0])[1]
		mbox := "Cat-" + filepath.Base(t.Name())
		w.ok("C", "CREATE "+mbox)
		for _, sync := range []bool{true, false} {
			cmd := `A APPEND ` + mbox + ` (\Seen) CATENATE (URL "/INBOX;UIDVALIDITY=` + uidv + `/;UID=1/;SECTION=HEADER" TEXT ` +
				lit("new text\r\n", sync) + ` URL "imap://demo%40example.test@mail.example.test/INBOX/;UID=2/;SECTION=2") ` +
				`CATENATE (URL {26}` + "\r\n" + `/inbox/;uid=1/;partial=0.4 TEXT ` + lit("!\r\n\r\nx\r\n", sync) + `) ` + lit("plain\r\n\r\n", sync)
			if !sync {
				cmd = strings.Replace(cmd, "{26}", "{26+}", 1)
			}
			out := w.answer(cmd)
			if !regexp.MustCompile(`^A OK \[APPENDUID \d+ \d+:\d+\]`).MatchString(out[len(out)-1]) {
				t.Fatalf("CATENATE: %q", out)
			}
		}
		// RFC 5092 names mailboxes in UTF-8, RFC 2192 in modified
		// UTF-7: both are understood.
		w.ok("R", "CREATE Entw&APw-rfe")
		if out := w.answer(`A APPEND Entw&APw-rfe CATENATE (URL "/INBOX/;UID=1")`); !strings.HasPrefix(out[len(out)-1], "A OK") {
			t.Fatalf("APPEND: %q", out)
		}
		for _, u := range []string{"/Entw%C3%BCrfe/;UID=1/;SECTION=TEXT", "/Entw&APw-rfe/;UID=1/;SECTION=TEXT"} {
			if out := w.answer("A APPEND " + mbox + ` CATENATE (URL "` + u + `")`); !strings.HasPrefix(out[len(out)-1], "A OK") {
				t.Fatalf("%s: %q", u, out)
			}
		}
		w.ok("R", "DELETE Entw&APw-rfe")
		// RFC 4469 3: in the selected state a relative URL is based
		// on the selected mailbox.
		w.ok("S", "SELECT INBOX")
		if out := w.answer("A APPEND " + mbox + ` CATENATE (URL ";UID=1/;SECTION=TEXT")`); !strings.HasPrefix(out[len(out)-1], "A OK") {
			t.Fatalf("relative URL: %q", out)
		}
		want1 := strings.SplitAfter(testMessage("src", ""), "\r\n\r\n")[0] + "new text\r\npart two"
		w.fetchAndDelete(mbox, "1:9 BODY.PEEK[]", want1, "From!\r\n\r\nx\r\n", "plain\r\n\r\n", "* 8 FETCH (UID 8 BODY[] {13}\r\nsource body\r\n", "* 9 FETCH (UID 9 BODY[] {13}\r\nsource body\r\n")
	})
}

// RFC 4469 5: a URL that is bad, unknown or not this user's on this server
// is NO [BADURL], and nothing of the command is stored.
func TestCatenateBadURL(t *testing.T) {
	e := startServer(t, noDelay)
	e.deliver(t, "INBOX", testMessage("src", "source body\r\n"))
	eachTransport(t, e, func(t *testing.T, w *wireConn) {
		w.login()
		mbox := "Cat-" + filepath.Base(t.Name())
		w.ok("C", "CREATE "+mbox)
		for _, u := range []string{
			"/INBOX;UIDVALIDITY=1/;UID=1", // wrong UIDVALIDITY
			"/INBOX/;UID=9",               // no such message
			"/Nope/;UID=1",                // no such mailbox
			"/INBOX/;UID=1/;SECTION=7",    // no such part
			"/INBOX",                      // not a message
			"imap://alice%40example.test@mail.example.test/INBOX/;UID=1", // another user
			"imap://demo%40example.test@elsewhere.test/INBOX/;UID=1",     // another server
			"/INBOX/;UID=1;EXPIRE=2030-01-01T00:00:00Z;URLAUTH=user+demo",
			"http://x/",
		} {
			for _, sync := range []bool{true, false} {
				cmd := "A APPEND " + mbox + " " + lit(testMessage("ok", "fine\r\n"), sync) + " CATENATE (TEXT " + lit("Hdr: 1\r\n\r\n", sync) +
					` URL "` + u + `" TEXT ` + lit("X1 DELETE Trash\r\n", sync) + ")"
				l := w.sendCommand(cmd)
				out := []string{l}
				if l == "" {
					out = w.until("A")
				} else if !sync {
					t.Fatalf("%s: answered before the command ended", u)
				}
				if l := out[len(out)-1]; !strings.HasPrefix(l, "A NO [BADURL ") {
					t.Fatalf("%s: %q", u, out)
				}
				if sync && l == "" {
					// RFC 3502 6.3.11: the error may come before the
					// rest; the TEXT after a bad URL is not asked for.
					t.Fatalf("%s: the client was asked for the literal after a bad URL", u)
				}
				out = append(out, w.ok("N", "NOOP")...)
				for _, l := range out {
					if strings.HasPrefix(l, "X") {
						t.Fatalf("literal ran as a command: %q", out)
					}
				}
				e.wantFolder(t, mbox, 0)
			}
		}
		out := w.ok("L", `LIST "" Trash`)
		if !strings.Contains(strings.Join(out, ""), "Trash") {
			t.Fatalf("Trash gone: %q", out)
		}
	})
}

// RFC 4469 with RFC 3516: a CATENATE TEXT may be a literal8, and a part
// it makes binary is stored re-encoded like a binary APPEND's, so that
// BINARY[part] gives back the octets sent.
func TestCatenateBinary(t *testing.T) {
	e := startServer(t, noDelay)
	raw := "\x00-\xe4\n\r\n\n"
	hdr := "From: user@example.test\r\nMime-Version: 1.0\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n"
	eachTransport(t, e, func(t *testing.T, w *wireConn) {
		w.login()
		mbox := "Bin-" + filepath.Base(t.Name())
		w.ok("C", "CREATE "+mbox)
		out := w.answer("A APPEND " + mbox + " CATENATE (TEXT " + lit(hdr, true) + " TEXT ~" + lit(raw, false) + ")")
		if !strings.HasPrefix(out[len(out)-1], "A OK [APPENDUID") {
			t.Fatalf("CATENATE literal8: %q", out)
		}
		w.fetchAndDelete(mbox, "1 (BINARY.PEEK[1] BODY.PEEK[1])", "BINARY[1] ~{7}\r\n"+raw,
			"BODY[1] {14}\r\nAC3kCg0KCg==\r\n")
	})
}
