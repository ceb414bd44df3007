package main

import (
	"bytes"
	"compress/flate"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"

	"github.com/emersion/go-imap/v2"

	"tern/imapd/wire"
)

// COMPRESS=DEFLATE (RFC 4978): after the tagged OK both directions are
// raw DEFLATE (RFC 1951) under the session's buffered reader and writer,
// and over TLS when TLS is on (RFC 4978 4: compression goes inside TLS).
// Everything above — the line and literal limits of wire.Reader, the
// nesting limit, pipelining, the timeouts — works on the inflated bytes,
// so a client gains nothing by compressing: the decompressor only runs
// when the reader asks for more, so no more is inflated than the limits
// let the reader buffer, and a line that grows without end (a deflate
// bomb) is thrown away only up to the reader's DiscardCap.

func init() {
	commands["COMPRESS"] = commandSpec{authState, (*session).cmdCompress}
}

// errCompressionActive: RFC 4978 3, a second COMPRESS.
var errCompressionActive = &imap.Error{Type: imap.StatusResponseTypeNo, Code: "COMPRESSIONACTIVE",
	Text: "DEFLATE is active already"}

// cmdCompress: RFC 4978 3.
func (s *session) cmdCompress(c *wire.Command, p *wire.Parser) (reply, error) {
	if !p.SP() {
		return reply{}, wire.Bad("COMPRESS needs a mechanism")
	}
	mech, err := p.Atom()
	if err != nil {
		return reply{}, wire.Bad("COMPRESS needs a mechanism")
	}
	if err := p.End(); err != nil {
		return reply{}, err
	}
	if !s.srv.cfg().IMAPD.Compress {
		return reply{}, wire.Bad("COMPRESS is not offered here")
	}
	if s.inflate != nil {
		return reply{}, errCompressionActive
	}
	if !strings.EqualFold(mech, "DEFLATE") {
		// RFC 4978 3: BAD for an unknown mechanism.
		return reply{}, wire.Bad("Unknown compression mechanism")
	}
	s.enc.StatusResponse(c.Tag, imap.StatusResponseTypeOK, "", "DEFLATE active")
	if err := s.bw.Flush(); err != nil {
		return reply{}, err
	}
	// RFC 4978 3: the client sends nothing more until it has the reply,
	// and then only compressed data; anything already buffered was sent
	// uncompressed behind COMPRESS and goes, as after STARTTLS.
	if n := s.rd.Buffered(); n > 0 {
		s.log.Info("dropped bytes pipelined after COMPRESS", "bytes", n)
	}
	s.inflate = newInflater(s.conn)
	s.out = &deflater{w: s.out}
	s.pre = prefixReader{r: s.inflate}
	if s.br != nil {
		s.br.Reset(nil)
		readerPool.Put(s.br)
		s.br = nil
	}
	s.bw.Reset(s.out)
	s.acquireReader()
	s.srv.compressed.Add(1)
	s.log.Debug("compression on")
	return reply{}, errReplied
}

// deflater compresses what the session's buffered writer sends. Every
// write ends with a sync flush (RFC 4978 6: Z_SYNC_FLUSH at the end of
// each response batch), so the client never waits for bytes held in the
// compressor; the buffered writer writes only when it flushes a batch or
// is full. The compressed batch, sync marker included, goes out in one
// write: a client that reads a TCP segment or TLS record holding only the
// marker inflates nothing from it, and imaplib2 (offlineimap) then sleeps
// 100 ms. Each write takes a compressor from a pool and starts it afresh,
// which the receiving side cannot tell from a full flush: a session holds
// no compressor (several hundred KiB) between writes, at the price of
// back-references across batches.
type deflater struct {
	w io.Writer
}

type deflateState struct {
	fw  *flate.Writer
	out bytes.Buffer
}

var deflatePool = sync.Pool{New: func() any {
	d := &deflateState{}
	d.fw, _ = flate.NewWriter(&d.out, flate.DefaultCompression)
	return d
}}

func (d *deflater) Write(p []byte) (int, error) {
	st := deflatePool.Get().(*deflateState)
	defer deflatePool.Put(st)
	st.out.Reset()
	st.fw.Reset(&st.out)
	st.fw.Write(p) // writes into a bytes.Buffer cannot fail
	st.fw.Flush()
	if _, err := d.w.Write(st.out.Bytes()); err != nil {
		return 0, err
	}
	if st.out.Cap() > 64<<10 {
		st.out = bytes.Buffer{} // a large FETCH's buffer is not kept
	}
	return len(p), nil
}

// dictSize is how far back a DEFLATE stream may refer (RFC 1951 3.2.5).
const dictSize = 32 << 10

// inflater decompresses what the client sends. Go's decompressor keeps
// the first read error for good, but a read timeout is not always the
// end: IDLE wakes up every imapd.idle_recheck (idle.go). When the
// timeout comes where the client's last sync flush ended, nothing of the
// next block has been read, and a new decompressor seeded with the last
// 32 KiB inflated goes on exactly where the old one stopped. A timeout
// in the middle of a block (a client that did not flush) ends the
// session.
type inflater struct {
	src  *inflateSource
	fr   io.ReadCloser
	hist []byte // the last dictSize bytes inflated, a ring
	n    int64  // bytes inflated in all
	err  error
}

func newInflater(conn net.Conn) *inflater {
	src := &inflateSource{r: conn, tail: syncMarker}
	return &inflater{src: src, fr: flate.NewReader(src)}
}

func (z *inflater) Read(p []byte) (int, error) {
	if z.err != nil {
		return 0, z.err
	}
	n, err := z.fr.Read(p)
	z.remember(p[:n])
	if err == nil {
		return n, nil
	}
	var pe *pauseError
	if errors.As(err, &pe) {
		if rerr := z.fr.(flate.Resetter).Reset(z.src, z.dict()); rerr != nil {
			z.err = rerr
			return n, rerr
		}
		return n, pe.err
	}
	if errors.Is(err, io.EOF) || z.src.eof {
		// The client's final block: it ended the stream, and so the
		// session (RFC 4978 gives no way back to plain text).
		z.err = io.EOF
	} else {
		// %v, not %w: a timeout inside a block is not one the session
		// may wait out again.
		z.err = fmt.Errorf("compressed stream: %v", err)
	}
	return n, z.err
}

// remember keeps the last dictSize inflated bytes.
func (z *inflater) remember(b []byte) {
	if len(b) == 0 {
		return
	}
	if z.hist == nil {
		z.hist = make([]byte, dictSize)
	}
	if len(b) > dictSize {
		z.n += int64(len(b) - dictSize)
		b = b[len(b)-dictSize:]
	}
	for len(b) > 0 {
		i := int(z.n % dictSize)
		c := copy(z.hist[i:], b)
		b = b[c:]
		z.n += int64(c)
	}
}

// dict is the history in order, oldest first.
func (z *inflater) dict() []byte {
	if z.n == 0 {
		return nil
	}
	if z.n < dictSize {
		return z.hist[:z.n]
	}
	i := int(z.n % dictSize)
	d := make([]byte, 0, dictSize)
	return append(append(d, z.hist[i:]...), z.hist[:i]...)
}

// syncMarker is how a sync flush ends: an empty stored block's LEN and
// NLEN (RFC 1951 3.2.4), byte-aligned.
const syncMarker = 0x0000ffff

// inflateSource is the compressed side, read by the decompressor. It
// remembers the last four bytes handed over, to tell a timeout at a
// flush boundary (pauseError) from one inside a block.
type inflateSource struct {
	r        io.Reader
	buf      [2048]byte
	pos, end int
	tail     uint32
	eof      bool // the connection ended
}

// pauseError is a read timeout at a flush boundary.
type pauseError struct{ err error }

func (e *pauseError) Error() string { return e.err.Error() }

func (s *inflateSource) fill() error {
	n, err := s.r.Read(s.buf[:])
	s.pos, s.end = 0, n
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	s.eof = errors.Is(err, io.EOF)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() && s.tail == syncMarker {
		return &pauseError{err}
	}
	return err
}

func (s *inflateSource) ReadByte() (byte, error) {
	if s.pos == s.end {
		if err := s.fill(); err != nil {
			return 0, err
		}
	}
	b := s.buf[s.pos]
	s.pos++
	s.tail = s.tail<<8 | uint32(b)
	return b, nil
}

func (s *inflateSource) Read(p []byte) (int, error) {
	if s.pos == s.end {
		if err := s.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(p, s.buf[s.pos:s.end])
	s.pos += n
	for _, b := range p[max(0, n-4):n] {
		s.tail = s.tail<<8 | uint32(b)
	}
	return n, nil
}
