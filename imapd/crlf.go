package main

import (
	"bufio"
	"io"
	"sync"
)

// RFC 3501 2.3.1 (and RFC 5322 2.3): messages on the wire end their lines
// with CRLF. Maildir files are often written with bare LF (by procmail,
// mutt, or Dovecot); imapd serves every message through crlfReader so that
// what a client receives, and every size it is told, is in CRLF form
// whatever the file holds.

// crlfReader turns each bare LF of r into CRLF.
type crlfReader struct {
	r       *bufio.Reader
	prevCR  bool
	pending bool // an LF is owed after the CR just returned
}

func newCRLFReader(r io.Reader) *crlfReader {
	return &crlfReader{r: bufio.NewReader(r)}
}

func (c *crlfReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if c.pending {
			p[n] = '\n'
			n++
			c.pending = false
			c.prevCR = false
			continue
		}
		b, err := c.r.ReadByte()
		if err != nil {
			if n > 0 {
				return n, nil
			}
			return 0, err
		}
		if b == '\n' && !c.prevCR {
			p[n] = '\r'
			n++
			c.pending = true
			continue
		}
		p[n] = b
		n++
		c.prevCR = b == '\r'
	}
	return n, nil
}

// wireSize counts the bytes of r once bare LFs become CRLF.
func wireSize(r io.Reader) (int64, error) {
	return io.Copy(io.Discard, newCRLFReader(r))
}

// sizeCache remembers the wire size of message files, which never change
// content (Maildir files are immutable; only their flags part of the name
// changes), so that listing sizes for a whole mailbox reads each file once
// per process. It is bounded: when full it starts over, which costs only
// recomputation.
type sizeCache struct {
	mu  sync.Mutex
	max int
	m   map[string]int64
}

func newSizeCache(max int) *sizeCache {
	return &sizeCache{max: max, m: make(map[string]int64)}
}

func (c *sizeCache) get(key string) (int64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, ok := c.m[key]
	return n, ok
}

func (c *sizeCache) put(key string, n int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		c.m = make(map[string]int64)
	}
	c.m[key] = n
}
