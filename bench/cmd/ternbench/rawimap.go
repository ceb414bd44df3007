package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

// rawIMAP is a minimal IMAP client for the loads where a full client
// library would cost more than the server being measured: reading 100,000
// FETCH lines, or holding 10,000 connections. It counts lines; it does not
// parse them.
type rawIMAP struct {
	conn net.Conn
	r    *bufio.Reader
	tag  int
}

func dialRawIMAP(ctx context.Context, addr string, bufSize int) (*rawIMAP, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("imap dial %s: %w", addr, err)
	}
	c := &rawIMAP{conn: conn, r: bufio.NewReaderSize(conn, bufSize)}
	conn.SetReadDeadline(time.Now().Add(time.Minute))
	l, err := c.r.ReadSlice('\n')
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("imap greeting: %w", err)
	}
	if !bytes.HasPrefix(l, []byte("* OK")) {
		conn.Close()
		return nil, fmt.Errorf("imap greeting: %q", l)
	}
	return c, nil
}

func (c *rawIMAP) close() { c.conn.Close() }

// send writes one tagged command and returns its tag.
func (c *rawIMAP) send(command string) (string, error) {
	c.tag++
	tag := "a" + strconv.Itoa(c.tag)
	c.conn.SetWriteDeadline(time.Now().Add(time.Minute))
	if _, err := io.WriteString(c.conn, tag+" "+command+"\r\n"); err != nil {
		return "", fmt.Errorf("imap write: %w", err)
	}
	return tag, nil
}

// cmd runs one command and returns how many untagged lines contained
// match (all untagged lines when match is empty).
func (c *rawIMAP) cmd(command, match string, timeout time.Duration) (int, error) {
	tag, err := c.send(command)
	if err != nil {
		return 0, err
	}
	return c.wait(tag, match, timeout)
}

func (c *rawIMAP) wait(tag, match string, timeout time.Duration) (int, error) {
	m := []byte(match)
	n := 0
	err := c.untagged(tag, timeout, func(l []byte) {
		if len(m) == 0 || bytes.Contains(l, m) {
			n++
		}
	})
	return n, err
}

// lines runs one command and returns its untagged lines (without their
// literals' contents).
func (c *rawIMAP) lines(command string, timeout time.Duration) ([]string, error) {
	tag, err := c.send(command)
	if err != nil {
		return nil, err
	}
	var out []string
	err = c.untagged(tag, timeout, func(l []byte) { out = append(out, string(bytes.TrimSpace(l))) })
	return out, err
}

// untagged calls each with every untagged line until the tagged reply of
// tag, which must be OK.
func (c *rawIMAP) untagged(tag string, timeout time.Duration, each func([]byte)) error {
	c.conn.SetReadDeadline(time.Now().Add(timeout))
	prefix := []byte(tag + " ")
	for {
		l, err := c.readLine()
		if err != nil {
			return fmt.Errorf("imap read: %w", err)
		}
		if bytes.HasPrefix(l, prefix) {
			if !bytes.HasPrefix(l[len(prefix):], []byte("OK")) {
				return fmt.Errorf("imap: %s", bytes.TrimSpace(l))
			}
			return nil
		}
		if len(l) > 0 && l[0] == '*' {
			each(l)
		}
	}
}

// readLine reads one response line, skipping over literals ({n}\r\n and n
// bytes) so that their contents are never taken for a tagged reply. What
// it returns holds the line's text around the literals.
func (c *rawIMAP) readLine() ([]byte, error) {
	var acc []byte // the line so far, once it spans buffers or literals
	for {
		l, err := c.r.ReadSlice('\n')
		for err == bufio.ErrBufferFull {
			acc = append(acc, l...)
			l, err = c.r.ReadSlice('\n')
		}
		if err != nil {
			return nil, err
		}
		whole := l
		if acc != nil {
			acc = append(acc, l...)
			whole = acc
		}
		size, ok := literalSize(bytes.TrimRight(whole, "\r\n"))
		if !ok {
			return whole, nil
		}
		if acc == nil {
			// Copy before the reader's buffer is reused.
			acc = append([]byte(nil), whole...)
		}
		if _, err := c.r.Discard(size); err != nil {
			return nil, err
		}
	}
}

// literalSize reports whether a line ends in a literal's announcement,
// {n} or {n+} (RFC 9051 4.3, RFC 7888), and its size.
func literalSize(t []byte) (int, bool) {
	if len(t) == 0 || t[len(t)-1] != '}' {
		return 0, false
	}
	i := bytes.LastIndexByte(t, '{')
	if i < 0 {
		return 0, false
	}
	n, err := strconv.Atoi(string(bytes.TrimSuffix(t[i+1:len(t)-1], []byte("+"))))
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

// login logs in with LOGIN (plaintext is allowed on loopback by both).
func (c *rawIMAP) login(user, pass string) error {
	_, err := c.cmd(fmt.Sprintf("LOGIN %q %q", user, pass), "", time.Minute)
	return err
}
