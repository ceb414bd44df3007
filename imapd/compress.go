package main

import (
	"bytes"
	"compress/flate"
	"io"
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
// so a client gains nothing by compressing: the decompressor (inflate.go)
// only runs when the reader asks for more, so no more is inflated than
// the limits let the reader buffer, and a line that grows without end (a
// deflate bomb) is thrown away only up to the reader's DiscardCap.

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
// 100 ms.
//
// A compressor is several hundred KiB, so none is kept per session: each
// chunk takes one from a pool, starts it afresh (which the receiving side
// cannot tell from a full flush) and gives it back before the compressed
// bytes are written, so a client that reads slowly holds only those bytes.
// The price is that back-references do not reach across batches.
type deflater struct {
	w io.Writer
}

var (
	deflatePool = sync.Pool{New: func() any {
		fw, _ := flate.NewWriter(nil, flate.DefaultCompression)
		return fw
	}}
	deflateOutPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}
)

// deflateChunk bounds what is compressed at once: a FETCH of a large
// message passes the buffered writer in one piece, and is sent in flushed
// chunks rather than compressed whole into memory.
const deflateChunk = 64 << 10

func (d *deflater) Write(p []byte) (int, error) {
	out := deflateOutPool.Get().(*bytes.Buffer)
	defer deflateOutPool.Put(out)
	for done := 0; done < len(p); {
		n := min(len(p)-done, deflateChunk)
		out.Reset()
		fw := deflatePool.Get().(*flate.Writer)
		fw.Reset(out)
		fw.Write(p[done : done+n]) // writes into a bytes.Buffer cannot fail
		fw.Flush()
		deflatePool.Put(fw)
		if _, err := d.w.Write(out.Bytes()); err != nil {
			return done, err
		}
		done += n
	}
	return len(p), nil
}
