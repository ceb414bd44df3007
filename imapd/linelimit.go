package main

import (
	"bytes"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// lineConn enforces the command line limit (RFC 9051 4: a line is
// terminated by CRLF; RFC 7162 4 asks servers to take at least 8192
// octets) and the idle timeout below imapserver, which has neither as an
// option. It holds each command line back until it is complete; a line
// longer than the limit is discarded up to its end and answered
// "tag BAD", so the session goes on and memory stays bounded.
//
// Literal data announced at the end of a line ({n} or {n+}) is passed
// through without counting; imapserver bounds literals itself (4 KiB
// outside APPEND, AppendLimit in APPEND). After a successful STARTTLS the
// bytes are TLS records, so the connection becomes a plain pipe, and the
// limit is imapserver's own (50 KiB) from then on.
type lineConn struct {
	net.Conn
	maxLine int
	idle    time.Duration
	maxLit  int64

	wmu sync.Mutex // serialises writes with the BAD replies written here

	in       []byte // bytes read from the peer, not yet processed
	out      []byte // bytes ready for the reader that did not fit in place
	line     []byte // the current, incomplete line
	dst      []byte // during a Read: the caller's buffer, filtered in place
	w        int    // during a Read: bytes of dst handed out so far
	skipping bool   // discarding the rest of an overlong line
	badTag   string
	literal  int64  // literal bytes to pass through
	discard  int64  // bytes of a refused non-synchronizing literal to drop
	tlsTag   string // tag of a STARTTLS command awaiting its reply
	pipe     bool   // STARTTLS done: no more processing

	// Connection identity for the session's logs, and the release of its
	// connection slots, run once when the connection closes.
	id        uint64
	ip        string
	log       *slog.Logger
	release   func()
	closeOnce sync.Once

	// Login state for the pre-login timeout and the BYE after too many
	// failed logins (throttle.go).
	loginTimeout time.Duration
	loggedIn     atomic.Bool
	bye          string // guarded by wmu
}

// Close closes the connection and gives back its slots.
func (c *lineConn) Close() error {
	err := c.Conn.Close()
	c.closeOnce.Do(func() {
		if c.release != nil {
			c.release()
		}
		if c.log != nil {
			c.log.Debug("disconnected")
		}
	})
	return err
}

func newLineConn(c net.Conn, maxLine int, idle time.Duration, maxLiteral int64) *lineConn {
	return &lineConn{Conn: c, maxLine: maxLine, idle: idle, maxLit: maxLiteral}
}

// SetReadDeadline caps every read deadline imapserver sets at the
// configured idle timeout (RFC 9051 5.4: at least 30 minutes).
func (c *lineConn) SetReadDeadline(t time.Time) error {
	if limit := time.Now().Add(c.readLimit()); c.readLimit() > 0 && (t.IsZero() || t.After(limit)) {
		t = limit
	}
	return c.Conn.SetReadDeadline(t)
}

func (c *lineConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.tlsTag != "" {
		if bytes.HasPrefix(p, []byte(c.tlsTag+" OK")) {
			c.pipe = true
		}
		c.tlsTag = ""
	}
	defer c.afterWrite()
	return c.Conn.Write(p)
}

// Read reads from the peer straight into p, the caller's buffer, and
// filters it there: the rules only ever drop bytes, so what is kept fits
// in place. A connection waiting for its next command therefore holds no
// buffer of its own (ten thousand idle sessions would otherwise keep ten
// thousand). Only a line that arrives in pieces is gathered in line, and
// only what cannot be handed out in place waits in out.
func (c *lineConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if len(c.out) > 0 {
			n := copy(p, c.out)
			c.out = c.out[n:]
			if len(c.out) == 0 {
				c.out = nil
			}
			return n, nil
		}
		if c.pipe {
			if len(c.in) > 0 || len(c.line) > 0 {
				c.out = append(append(c.out, c.line...), c.in...)
				c.line, c.in = nil, nil
				continue
			}
			return c.Conn.Read(p)
		}
		if len(c.in) > 0 {
			// Left over after STARTTLS (kept in a buffer of its own).
			if err := c.process(); err != nil {
				return 0, err
			}
			continue
		}
		n, err := c.Conn.Read(p)
		if n == 0 {
			if err == nil {
				continue
			}
			return 0, err
		}
		c.dst, c.w, c.in = p[:n], 0, p[:n]
		perr := c.process()
		w := c.w
		if len(c.in) > 0 {
			// STARTTLS stopped the processing; what follows must
			// survive the caller reusing p.
			c.in = bytes.Clone(c.in)
		}
		c.dst, c.w = nil, 0
		if perr != nil {
			return 0, perr
		}
		if w > 0 {
			return w, nil
		}
	}
}

// emit hands bytes of in to the reader: in place in dst when nothing is
// waiting before them (their place in dst is at or after the write
// position, since in is the unread tail of dst), else after what waits.
func (c *lineConn) emit(b []byte) {
	if len(c.out) == 0 && c.dst != nil && len(c.in) > 0 && &b[0] == &c.in[0] {
		c.w += copy(c.dst[c.w:], b)
		return
	}
	c.out = append(c.out, b...)
}

// process moves bytes from in to the reader (or discards them) as the
// rules say.
func (c *lineConn) process() error {
	for len(c.in) > 0 && !c.pipe {
		if c.discard > 0 {
			n := min(int64(len(c.in)), c.discard)
			c.in = c.in[n:]
			c.discard -= n
			if c.discard == 0 {
				// The rest of the refused command goes too; imapserver
				// has already answered it.
				c.skipping, c.badTag = true, ""
			}
			continue
		}
		if c.literal > 0 {
			n := int64(len(c.in))
			if n > c.literal {
				n = c.literal
			}
			c.emit(c.in[:n])
			c.in = c.in[n:]
			c.literal -= n
			continue
		}
		i := bytes.IndexByte(c.in, '\n')
		if c.skipping {
			if i < 0 {
				c.in = nil
				return nil
			}
			c.in = c.in[i+1:]
			c.skipping = false
			if c.badTag != "" {
				if err := c.writeBad(c.badTag); err != nil {
					return err
				}
			}
			continue
		}
		end := len(c.in)
		if i >= 0 {
			end = i + 1
		}
		if len(c.line)+end > c.maxLine {
			c.badTag = tagOf(append(c.line, c.in[:min(end, 64)]...))
			c.line = nil
			c.skipping = true
			continue
		}
		if i < 0 {
			// Held back until the line is complete.
			c.line = append(c.line, c.in...)
			c.in = nil
			return nil
		}
		whole := c.in[:end]
		if len(c.line) > 0 {
			whole = append(c.line, whole...)
		}
		n, nonSync := literalSize(whole)
		switch {
		case n <= c.maxLit:
			c.literal = n
		case nonSync:
			// RFC 7888 4: imapserver refuses the command, but the
			// client sends the literal anyway; it must not be taken
			// for commands.
			c.discard = n
		}
		tag, startTLS := isStartTLS(whole)
		if startTLS {
			c.wmu.Lock()
			c.tlsTag = tag
			c.wmu.Unlock()
		}
		if len(c.line) > 0 {
			c.out = append(c.out, whole...)
		} else {
			c.emit(whole)
		}
		c.line = nil
		c.in = c.in[end:]
		if startTLS {
			// What follows STARTTLS is the handshake, or nothing until
			// the reply says the command failed.
			return nil
		}
	}
	return nil
}

func (c *lineConn) writeBad(tag string) error {
	_, err := c.Write([]byte(tag + " BAD [TOOBIG] Command line too long\r\n"))
	return err
}

// tagOf returns the tag of a command line, or "*" when it has none that
// could be echoed safely.
func tagOf(line []byte) string {
	tag, _, _ := bytes.Cut(line, []byte(" "))
	if len(tag) == 0 || len(tag) > 32 {
		return "*"
	}
	for _, b := range tag {
		// RFC 3501 9: tag = 1*<any ASTRING-CHAR except "+">
		if b <= ' ' || b >= 0x7f || bytes.IndexByte([]byte(`(){%*"\+]`), b) >= 0 {
			return "*"
		}
	}
	return string(tag)
}

// literalSize returns the size of the literal announced at the end of a
// line ("{n}\r\n", "{n+}\r\n", "~{n}\r\n"), 0 if none, and whether it is
// non-synchronizing (RFC 7888).
func literalSize(line []byte) (n int64, nonSync bool) {
	l := bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
	if !bytes.HasSuffix(l, []byte("}")) {
		return 0, false
	}
	open := bytes.LastIndexByte(l, '{')
	if open < 0 {
		return 0, false
	}
	num := l[open+1 : len(l)-1]
	num, nonSync = bytes.CutSuffix(num, []byte("+"))
	n, err := strconv.ParseInt(string(num), 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, nonSync
}

func isStartTLS(line []byte) (string, bool) {
	tag, rest, ok := bytes.Cut(bytes.TrimRight(line, "\r\n"), []byte(" "))
	if !ok || !bytes.EqualFold(rest, []byte("STARTTLS")) {
		return "", false
	}
	return string(tag), true
}
