package maildir

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"sync"
)

// The wire form of a message. RFC 5322 2.3, RFC 3501 2.3.1 and RFC 1939 3:
// on the wire a message ends its lines with CRLF. On disk tern writes LF, as
// procmail, maildrop, Postfix local(8) and Dovecot do, so that every Maildir
// tool reads the files as its own; files with CRLF (older tern, other
// writers) or with both are read as well. This file is the one place that
// maps the one onto the other, for imapd and pop3d alike:
//
//   - writing (lfWriter): a CRLF becomes LF, unless its CR follows another
//     CR (so that "\r\r\n" reads back unchanged); every other byte is kept;
//   - reading (WireReader): an LF not preceded by CR becomes CRLF; every
//     other byte, a lone CR included, is sent as it is stored.
//
// Reading what was written gives back the bytes received whenever they had
// no bare LF, which is always the case for SMTP (RFC 5321 2.3.8). The wire
// size is the length of the read form. It is recorded in the file name
// (",W=", as Dovecot writes it) by every writer in this package, so that
// listing a folder reads no message; for files without it, Folder.WireSize
// counts once per process and caches.

// wireChunk is how much of a message file is read at a time. The buffers
// are pooled, so a large value costs memory only while a message is read.
const wireChunk = 32 << 10

var chunkPool = sync.Pool{New: func() any { b := make([]byte, wireChunk); return &b }}

// WireReader turns each bare LF of r into CRLF. It converts a chunk at a
// time (the runs between line ends are copied whole), so its cost is that
// of a copy. Close gives its buffer back to the pool.
type WireReader struct {
	r          io.Reader
	bufp       *[]byte
	start, end int   // unconverted bytes are (*bufp)[start:end]
	err        error // of the last read from r, returned once buf is drained
	prevCR     bool  // the last byte handed out was CR
	pendingLF  bool  // an LF is owed after the CR just handed out
}

// NewWireReader returns a reader of the wire form of the message in r.
func NewWireReader(r io.Reader) *WireReader {
	return &WireReader{r: r, bufp: chunkPool.Get().(*[]byte)}
}

// Reset starts the reader over on r, keeping its buffer.
func (c *WireReader) Reset(r io.Reader) {
	c.r, c.start, c.end, c.err, c.prevCR, c.pendingLF = r, 0, 0, nil, false, false
}

// Close releases the reader's buffer; the reader must not be used again.
func (c *WireReader) Close() error {
	if c.bufp != nil {
		chunkPool.Put(c.bufp)
		c.bufp = nil
	}
	return nil
}

func (c *WireReader) Read(p []byte) (int, error) {
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

// CountWire returns the length of the wire form of the message in r
// without converting it.
func CountWire(r io.Reader) (int64, error) {
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

// lfWriter stores a message with LF line ends (see above) and counts what
// it writes: size, the bytes on disk, and wire, the length of their wire
// form. Flush must be called at the end: a CR is held back until the next
// byte shows whether it starts a CRLF.
type lfWriter struct {
	w          *bufio.Writer
	size, wire int64
	prevIn     byte // the last byte received
	pendingCR  bool // a CR (not after a CR) is held back
	lastOut    byte // the last byte written
}

func newLFWriter(w io.Writer) *lfWriter {
	return &lfWriter{w: bufio.NewWriterSize(w, wireChunk)}
}

func (c *lfWriter) out(p []byte) {
	if len(p) == 0 {
		return
	}
	c.w.Write(p)
	c.size += int64(len(p))
	c.wire += int64(len(p))
	prev := c.lastOut
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			break
		}
		if i > 0 {
			prev = p[i-1]
		}
		if prev != '\r' {
			c.wire++ // read back as CRLF
		}
		prev = '\n'
		p = p[i+1:]
	}
	c.lastOut = prev
	if len(p) > 0 {
		c.lastOut = p[len(p)-1]
	}
}

func (c *lfWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if c.pendingCR {
			c.pendingCR = false
			if p[0] == '\n' {
				c.out(p[:1])
				c.prevIn = '\n'
				p = p[1:]
				continue
			}
			c.out([]byte{'\r'})
		}
		i := bytes.IndexByte(p, '\r')
		if i < 0 {
			c.out(p)
			c.prevIn = p[len(p)-1]
			break
		}
		c.out(p[:i])
		prev := c.prevIn
		if i > 0 {
			prev = p[i-1]
		}
		if prev == '\r' {
			// A CR after a CR is kept, and so is the CRLF it may start.
			c.out(p[i : i+1])
		} else {
			c.pendingCR = true
		}
		c.prevIn = '\r'
		p = p[i+1:]
	}
	return n, nil
}

// Flush writes what is held back and the buffer.
func (c *lfWriter) Flush() error {
	if c.pendingCR {
		c.pendingCR = false
		c.out([]byte{'\r'})
	}
	return c.w.Flush()
}

// copyLF writes r to w in stored form and returns the stored and the wire
// sizes.
func copyLF(w io.Writer, r io.Reader) (size, wire int64, err error) {
	lw := newLFWriter(w)
	bufp := chunkPool.Get().(*[]byte)
	defer chunkPool.Put(bufp)
	if _, err := io.CopyBuffer(struct{ io.Writer }{lw}, struct{ io.Reader }{r}, *bufp); err != nil {
		return 0, 0, err
	}
	if err := lw.Flush(); err != nil {
		return 0, 0, err
	}
	return lw.size, lw.wire, nil
}

// wireSizes remembers the wire size of message files that do not record
// it in their name. Maildir files never change content (only the flags
// part of the name changes), so each is counted once per process. It is
// bounded: when full it starts over, which costs only recounting.
var wireSizes = struct {
	sync.Mutex
	m map[string]int64
}{m: make(map[string]int64)}

// wireSizeEntries bounds wireSizes (about 100 bytes an entry).
const wireSizeEntries = 200000

// WireSize returns the size of the wire form of message uid, whose key is
// key: from the file name when the writer recorded it (",W=", tern and
// Dovecot do), else counted once and cached.
func (f *Folder) WireSize(uid uint32, key string) (int64, error) {
	if n, ok := wireSizeFromKey(key); ok {
		return n, nil
	}
	ck := f.st.dir + "/" + key
	wireSizes.Lock()
	n, ok := wireSizes.m[ck]
	wireSizes.Unlock()
	if ok {
		return n, nil
	}
	fh, err := f.Open(uid)
	if err != nil {
		return 0, err
	}
	defer fh.Close()
	n, err = CountWire(fh)
	if err != nil {
		return 0, fmt.Errorf("read message %q: %w", ck, err)
	}
	wireSizes.Lock()
	if len(wireSizes.m) >= wireSizeEntries {
		wireSizes.m = make(map[string]int64)
	}
	wireSizes.m[ck] = n
	wireSizes.Unlock()
	return n, nil
}
