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
	out      []byte // complete lines ready for the reader
	line     []byte // the current, incomplete line
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

func (c *lineConn) Read(p []byte) (int, error) {
	for {
		if len(c.out) > 0 {
			n := copy(p, c.out)
			c.out = c.out[n:]
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
		if len(c.in) == 0 {
			buf := make([]byte, 4096)
			n, err := c.Conn.Read(buf)
			if n == 0 && err != nil {
				return 0, err
			}
			c.in = buf[:n]
		}
		if err := c.process(); err != nil {
			return 0, err
		}
	}
}

// process moves bytes from in to out (or discards them) as the rules say.
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
			c.out = append(c.out, c.in[:n]...)
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
		c.line = append(c.line, c.in[:end]...)
		c.in = c.in[end:]
		if i < 0 {
			return nil
		}
		n, nonSync := literalSize(c.line)
		switch {
		case n <= c.maxLit:
			c.literal = n
		case nonSync:
			// RFC 7888 4: imapserver refuses the command, but the
			// client sends the literal anyway; it must not be taken
			// for commands.
			c.discard = n
		}
		tag, startTLS := isStartTLS(c.line)
		if startTLS {
			c.wmu.Lock()
			c.tlsTag = tag
			c.wmu.Unlock()
		}
		c.out = append(c.out, c.line...)
		c.line = nil
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
