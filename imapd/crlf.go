package main

import (
	"bytes"
	"io"
	"sync"
)

// RFC 3501 2.3.1 (and RFC 5322 2.3): messages on the wire end their lines
// with CRLF. Maildir files are often written with bare LF (by procmail,
// mutt, or Dovecot); imapd serves every message through crlfReader so that
// what a client receives, and every size it is told, is in CRLF form
// whatever the file holds.

// crlfChunk is how much of a message file is read at a time. The buffers
// are pooled, so a large value costs memory only while a message is being
// read.
const crlfChunk = 32 << 10

var chunkPool = sync.Pool{New: func() any { b := make([]byte, crlfChunk); return &b }}

// crlfReader turns each bare LF of r into CRLF. It converts a chunk at a
// time (the runs between line ends are copied whole), so its cost is that
// of a copy. Close gives its buffer back to the pool.
type crlfReader struct {
	r          io.Reader
	bufp       *[]byte
	start, end int   // unconverted bytes are (*bufp)[start:end]
	err        error // of the last read from r, returned once buf is drained
	prevCR     bool  // the last byte handed out was CR
	pendingLF  bool  // an LF is owed after the CR just handed out
}

func newCRLFReader(r io.Reader) *crlfReader {
	return &crlfReader{r: r, bufp: chunkPool.Get().(*[]byte)}
}

// reset starts the reader over on r, keeping its buffer.
func (c *crlfReader) reset(r io.Reader) {
	c.r, c.start, c.end, c.err, c.prevCR, c.pendingLF = r, 0, 0, nil, false, false
}

// Close releases the reader's buffer; the reader must not be used again.
func (c *crlfReader) Close() error {
	if c.bufp != nil {
		chunkPool.Put(c.bufp)
		c.bufp = nil
	}
	return nil
}

func (c *crlfReader) Read(p []byte) (int, error) {
	if c.bufp == nil {
		return 0, io.ErrClosedPipe
	}
	buf := *c.bufp
	n := 0
	for n < len(p) {
		if c.pendingLF {
			p[n] = '\n'
			n++
			c.pendingLF, c.prevCR = false, false
			continue
		}
		if c.start == c.end {
			if c.err != nil || n > 0 {
				// Return what is converted rather than block on
				// another read.
				break
			}
			m, err := c.r.Read(buf)
			c.start, c.end, c.err = 0, m, err
			if m == 0 && err == nil {
				// A reader that returns nothing without an error is
				// asked again by the caller, not here.
				return 0, nil
			}
			continue
		}
		src := buf[c.start:c.end]
		i := bytes.IndexByte(src, '\n')
		seg := src
		if i >= 0 {
			seg = src[:i]
		}
		k := copy(p[n:], seg)
		if k > 0 {
			c.prevCR = seg[k-1] == '\r'
		}
		n += k
		c.start += k
		if k < len(seg) || i < 0 || n == len(p) {
			continue
		}
		// At an LF, with room for at least one byte.
		c.start++
		if c.prevCR {
			p[n] = '\n'
			c.prevCR = false
		} else {
			p[n] = '\r'
			c.prevCR, c.pendingLF = true, true
		}
		n++
	}
	if n == 0 && c.start == c.end && c.err != nil {
		return 0, c.err
	}
	return n, nil
}

// wireSize counts the bytes of r once bare LFs become CRLF, without
// converting them.
func wireSize(r io.Reader) (int64, error) {
	bufp := chunkPool.Get().(*[]byte)
	defer chunkPool.Put(bufp)
	buf := *bufp
	var (
		n      int64
		prevCR bool
	)
	for {
		m, err := r.Read(buf)
		chunk := buf[:m]
		n += int64(m)
		for len(chunk) > 0 {
			i := bytes.IndexByte(chunk, '\n')
			if i < 0 {
				prevCR = chunk[len(chunk)-1] == '\r'
				break
			}
			if (i == 0 && !prevCR) || (i > 0 && chunk[i-1] != '\r') {
				n++
			}
			prevCR = false
			chunk = chunk[i+1:]
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// copyChunked copies r to w through a pooled buffer.
func copyChunked(w io.Writer, r io.Reader) (int64, error) {
	bufp := chunkPool.Get().(*[]byte)
	defer chunkPool.Put(bufp)
	return io.CopyBuffer(struct{ io.Writer }{w}, struct{ io.Reader }{r}, *bufp)
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
