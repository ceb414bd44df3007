package main

import (
	"bufio"
	"bytes"
	"compress/flate"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"tern/common/config"
	"tern/imapd/wire"
)

// COMPRESS=DEFLATE (RFC 4978) on every transport: the client side is Go's
// compress/flate, raw DEFLATE with a sync flush after every write, as
// RFC 4978 6 asks of both sides.

// deflateConn is a client connection after COMPRESS DEFLATE. Its
// compressor keeps its history across flushes, as zlib's does, so what
// it sends refers back across the server's resumptions after a timeout.
type deflateConn struct {
	net.Conn
	r io.ReadCloser
	w *flate.Writer
}

func (d *deflateConn) Read(p []byte) (int, error) { return d.r.Read(p) }

func (d *deflateConn) Write(p []byte) (int, error) {
	n, err := d.w.Write(p)
	if err == nil {
		err = d.w.Flush()
	}
	return n, err
}

// compress logs in, turns compression on and returns the compressed
// connection.
func compress(t *testing.T, w *wireConn) *wireConn {
	t.Helper()
	w.login()
	if out := w.ok("C", "CAPABILITY"); !strings.Contains(out[0], " COMPRESS=DEFLATE") {
		t.Fatalf("CAPABILITY after login: %q", out)
	}
	w.ok("Z", "COMPRESS DEFLATE")
	if w.r.Buffered() > 0 {
		t.Fatalf("server sent %d bytes after COMPRESS's OK", w.r.Buffered())
	}
	fw, err := flate.NewWriter(w.conn, flate.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	return newWireConn(t, &deflateConn{Conn: w.conn, r: flate.NewReader(w.conn), w: fw})
}

// A whole session inside compression: the capability goes, a second
// COMPRESS is NO [COMPRESSIONACTIVE], literals both ways, a large FETCH
// written in several pieces, LOGOUT.
func TestCompressSession(t *testing.T) {
	e := startServer(t, noDelay)
	big := testMessage("big", strings.Repeat("All work and no play makes Jack a dull boy.\r\n", 6000))
	eachTransport(t, e, func(t *testing.T, w *wireConn) {
		z := compress(t, w)
		if out := z.ok("C", "CAPABILITY"); strings.Contains(out[0], "COMPRESS=") {
			t.Fatalf("COMPRESS still offered: %q", out)
		}
		z.send("Z2 COMPRESS DEFLATE")
		if l := z.line(); !strings.HasPrefix(l, "Z2 NO [COMPRESSIONACTIVE]") {
			t.Fatalf("second COMPRESS: %q", l)
		}
		z.send("D DELETE Box") // left by the previous transport, if any
		z.until("D")
		z.ok("B", "CREATE Box")
		z.send(fmt.Sprintf("A APPEND Box {%d}", len(big)))
		if l := z.line(); !strings.HasPrefix(l, "+ ") {
			t.Fatalf("APPEND: %q", l)
		}
		z.send(big)
		if out := z.until("A"); !strings.HasPrefix(out[len(out)-1], "A OK [APPENDUID") {
			t.Fatalf("APPEND: %q", out)
		}
		z.ok("S", "SELECT Box")
		z.send("F FETCH 1 BODY.PEEK[]")
		head := z.line()
		lit, ok := wire.LiteralAt([]byte(head))
		n := lit.Size
		if !ok || n != int64(len(big)) {
			t.Fatalf("FETCH: %q", head)
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(z.r, body); err != nil {
			t.Fatal(err)
		}
		if string(body) != big {
			t.Fatal("FETCH BODY[] differs from what was appended")
		}
		if out := z.until("F"); !strings.HasPrefix(out[len(out)-1], "F OK") {
			t.Fatalf("FETCH: %q", out)
		}
		z.send("L LOGOUT")
		if out := z.until("L"); !strings.HasPrefix(out[0], "* BYE") || !strings.HasPrefix(out[len(out)-1], "L OK") {
			t.Fatalf("LOGOUT: %q", out)
		}
	})
}

// COMPRESS refused: an unknown mechanism is BAD and the session stays
// uncompressed; before login it is not valid; switched off by
// imapd.compress it is neither offered nor accepted.
func TestCompressRefused(t *testing.T) {
	e := startServer(t, noDelay)
	eachTransport(t, e, func(t *testing.T, w *wireConn) {
		w.send("Z0 COMPRESS DEFLATE")
		if l := w.line(); !strings.HasPrefix(l, "Z0 BAD") {
			t.Fatalf("COMPRESS before login: %q", l)
		}
		w.login()
		w.send("Z1 COMPRESS LZW")
		if l := w.line(); !strings.HasPrefix(l, "Z1 BAD") {
			t.Fatalf("unknown mechanism: %q", l)
		}
		w.send("Z2 COMPRESS")
		if l := w.line(); !strings.HasPrefix(l, "Z2 BAD") {
			t.Fatalf("no mechanism: %q", l)
		}
		w.ok("N", "NOOP") // still plain text
	})
	off := startServer(t, noDelay, func(c *config.Config) { c.IMAPD.Compress = false })
	eachTransport(t, off, func(t *testing.T, w *wireConn) {
		w.login()
		if out := w.ok("C", "CAPABILITY"); strings.Contains(out[0], "COMPRESS") {
			t.Fatalf("imapd.compress = false still offers it: %q", out)
		}
		w.send("Z COMPRESS DEFLATE")
		if l := w.line(); !strings.HasPrefix(l, "Z BAD") {
			t.Fatalf("COMPRESS when off: %q", l)
		}
		w.ok("N", "NOOP")
	})
	// RFC 4978 4: compression is inside TLS, never under it.
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	w := newWireConn(t, c)
	w.line()
	z := compress(t, w)
	z.ok("U", "UNAUTHENTICATE")
	if out := z.ok("C", "CAPABILITY"); strings.Contains(out[0], "STARTTLS") {
		t.Fatalf("STARTTLS offered inside COMPRESS: %q", out)
	}
	z.send("T STARTTLS")
	if l := z.line(); !strings.HasPrefix(l, "T BAD") {
		t.Fatalf("STARTTLS inside COMPRESS: %q", l)
	}
	z.ok("N", "NOOP")
}

// The limits hold on the inflated commands: an over-long line and an
// over-size literal are refused as without compression, and the session
// goes on; a literal that deflates to almost nothing is still counted at
// its inflated size.
func TestCompressLimits(t *testing.T) {
	e := startServer(t, noDelay, func(c *config.Config) { c.IMAPD.MaxLiteralSize = 64 << 10 })
	eachTransport(t, e, func(t *testing.T, w *wireConn) {
		z := compress(t, w)
		z.send("A NOOP " + strings.Repeat("x", 40000))
		if l := z.line(); !strings.HasPrefix(l, "A BAD [TOOBIG]") {
			t.Fatalf("over-long line: %q", l)
		}
		z.send("B APPEND INBOX {999999999}")
		if l := z.line(); !strings.HasPrefix(l, "B NO [TOOBIG]") {
			t.Fatalf("over-size literal: %q", l)
		}
		// 100 KiB of zeros deflate to a few hundred bytes; it is still
		// over the 64 KiB APPENDLIMIT, and its bytes never run.
		zeros := "X1 DELETE INBOX\r\n" + strings.Repeat("\x00", 100<<10)
		fmt.Fprintf(z.conn, "C APPEND INBOX {%d+}\r\n%s\r\n", len(zeros), zeros)
		out := z.until("C")
		if !strings.HasPrefix(out[len(out)-1], "C NO [TOOBIG]") {
			t.Fatalf("over-size non-synchronizing literal: %q", out)
		}
		z.send("D SEARCH " + strings.Repeat("(", 500) + "ALL" + strings.Repeat(")", 500))
		if l := z.line(); !strings.HasPrefix(l, "D BAD") {
			t.Fatalf("deep nesting: %q", l)
		}
		// Pipelined commands in one compressed write, answered in order.
		io.WriteString(z.conn, "P1 NOOP\r\nP2 NOOP\r\nP3 NOOP\r\n")
		if out := z.until("P3"); len(out) != 3 || !strings.HasPrefix(out[0], "P1 OK") || !strings.HasPrefix(out[1], "P2 OK") {
			t.Fatalf("pipelined: %q", out)
		}
		z.ok("N", "NOOP")
	})
}

// A deflate bomb: a few hundred KiB that inflate to a 64 MiB line. The
// server skips an over-long line only up to its discard cap (twice
// imapd.max_literal_size) and then ends the session with BYE, well before
// it has inflated the rest.
func TestCompressBomb(t *testing.T) {
	e := startServer(t, noDelay, func(c *config.Config) { c.IMAPD.MaxLiteralSize = 1 << 20 })
	// The bomb, made once: "B NOOP " and 64 MiB of "x", deflated.
	var bomb bytes.Buffer
	fw, _ := flate.NewWriter(&bomb, flate.BestSpeed)
	fw.Write([]byte("B NOOP "))
	chunk := bytes.Repeat([]byte("x"), 1<<20)
	for i := 0; i < 64; i++ {
		fw.Write(chunk)
	}
	fw.Flush()
	t.Logf("bomb: %d bytes deflated, %d inflated", bomb.Len(), 64<<20+7)
	eachTransport(t, e, func(t *testing.T, w *wireConn) {
		z := compress(t, w)
		z.ok("N", "NOOP")
		start := time.Now()
		go func() {
			// The client's compressor starts afresh, as after a
			// full flush: the server's decompressor cannot tell.
			w.conn.Write(bomb.Bytes())
		}()
		l := z.line()
		if !strings.HasPrefix(l, "* BYE [TOOBIG]") {
			t.Fatalf("deflate bomb: %q", l)
		}
		// The server closes while the client may still be writing
		// the bomb: the read ends with EOF, a reset, or a truncated
		// deflate stream, but not a timeout.
		z.conn.SetReadDeadline(time.Now().Add(3 * time.Second))
		_, err := io.Copy(io.Discard, z.r)
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatal("connection still open after the bomb")
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("the bomb took %v", d)
		}
	})
}

// IDLE through compression, with imapd.idle_recheck short enough that
// the server's reads time out several times at the client's flush
// boundary and go on: the update arrives, DONE ends IDLE, and a command
// that the client's compressor encodes as a back-reference to one sent
// before IDLE is read right.
func TestCompressIdle(t *testing.T) {
	e := startServer(t, noDelay, func(c *config.Config) {
		c.IMAPD.IdleRecheck = config.Duration(100 * time.Millisecond)
	})
	eachTransport(t, e, func(t *testing.T, w *wireConn) {
		z := compress(t, w)
		status := "T STATUS INBOX (MESSAGES UIDNEXT UIDVALIDITY UNSEEN HIGHESTMODSEQ SIZE)"
		z.ok("T", status[2:])
		z.ok("S", "SELECT INBOX")
		z.ok("N", "NOOP")
		z.send("I IDLE")
		if l := z.line(); !strings.HasPrefix(l, "+ ") {
			t.Fatalf("IDLE: %q", l)
		}
		time.Sleep(500 * time.Millisecond)
		e.deliver(t, "INBOX", testMessage("news", "through deflate"))
		if l := z.line(); !strings.HasSuffix(l, " EXISTS\r\n") {
			t.Fatalf("during IDLE: %q", l)
		}
		time.Sleep(300 * time.Millisecond)
		z.send("DONE")
		if out := z.until("I"); !strings.HasPrefix(out[len(out)-1], "I OK") {
			t.Fatalf("DONE: %q", out)
		}
		out := z.ok("T", status[2:])
		if !strings.Contains(out[0], "* STATUS INBOX (") {
			t.Fatalf("STATUS after IDLE: %q", out)
		}
	})
}

// A Python client on a raw socket with zlib, flushing each command with
// Z_PARTIAL_FLUSH as mbsync's zlib use does, on every transport: LOGIN,
// COMPRESS, SELECT, an IDLE long enough for several rechecks (each a
// read timeout in the middle of the client's last block), the update,
// DONE, and a command after it.
func TestCompressPythonPartialFlush(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed (Debian package python3)")
	}
	e := startServer(t, noDelay, func(c *config.Config) {
		c.IMAPD.IdleRecheck = config.Duration(100 * time.Millisecond)
	})
	script := `
import socket, ssl, sys, zlib, time
mode, addr = sys.argv[1], sys.argv[2]
host, port = addr.rsplit(":", 1)
s = socket.create_connection((host, int(port)), timeout=10)
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
if mode == "implicit":
    s = ctx.wrap_socket(s)
buf = b""
def line():
    global buf
    while b"\r\n" not in buf:
        d = s.recv(4096)
        assert d, "connection closed"
        buf += d
    l, buf = buf.split(b"\r\n", 1)
    return l
def until(tag):
    while True:
        l = line()
        if l.startswith(tag + b" "):
            assert l.startswith(tag + b" OK"), l
            return
line()
if mode == "starttls":
    s.sendall(b"S STARTTLS\r\n"); until(b"S")
    s = ctx.wrap_socket(s)
s.sendall(b"L LOGIN demo demo\r\n"); until(b"L")
s.sendall(b"Z COMPRESS DEFLATE\r\n"); until(b"Z")
assert buf == b"", buf
comp = zlib.compressobj(6, zlib.DEFLATED, -15)
dec = zlib.decompressobj(-15)
def send(cmd):
    s.sendall(comp.compress(cmd + b"\r\n") + comp.flush(zlib.Z_PARTIAL_FLUSH))
def cline():
    global buf
    while b"\r\n" not in buf:
        d = s.recv(4096)
        assert d, "connection closed"
        buf += dec.decompress(d)
    l, buf = buf.split(b"\r\n", 1)
    return l
def cuntil(tag):
    out = []
    while True:
        l = cline(); out.append(l)
        if l.startswith(tag + b" "):
            assert l.startswith(tag + b" OK"), out
            return out
send(b"S SELECT INBOX"); cuntil(b"S")
send(b"I IDLE"); assert cline().startswith(b"+ ")
print("idling", flush=True)
assert cline().endswith(b" EXISTS")
time.sleep(0.5)
send(b"DONE"); cuntil(b"I")
send(b"F FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
out = cuntil(b"F")
assert any(b"partial-flush" in l for l in out), out
send(b"O LOGOUT"); cuntil(b"O")
print("done")
`
	for _, mode := range []string{"plain", "starttls", "implicit"} {
		t.Run(mode, func(t *testing.T) {
			addr := e.addr
			if mode == "implicit" {
				addr = e.tlsAddr
			}
			cmd := exec.Command(py, "-c", script, mode, addr)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			// Once the client idles, a delivery after a few rechecks.
			r := bufio.NewReader(stdout)
			if l, _ := r.ReadString('\n'); l == "idling\n" {
				time.Sleep(400 * time.Millisecond)
				e.deliver(t, "INBOX", testMessage("partial-flush", "through zlib\r\n"))
			}
			rest, _ := io.ReadAll(r)
			if err := cmd.Wait(); err != nil || string(rest) != "done\n" {
				t.Fatalf("python client: %v\n%s%s", err, rest, stderr.String())
			}
		})
	}
}
