// Package binarymime re-encodes the binary parts of a MIME message as
// base64, so that what the store keeps is line-oriented text whatever a
// client sent with IMAP BINARY APPEND (RFC 3516) or SMTP/LMTP BINARYMIME
// (RFC 3030).
package binarymime

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"mime"
	"strings"
	"sync"

	"github.com/emersion/go-message/textproto"
)

// Encode copies a message from src to dst as it is, except that
// every part whose Content-Transfer-Encoding is "binary" is re-encoded as
// base64. RFC 3516 4.3 lets a client APPEND binary content (literal8); a
// server that cannot keep it as such must convert it. tern converts it, as
// Dovecot does, so that what it stores is line-oriented text: BODY[] never
// carries NULs or lone CRs to a client that did not ask for BINARY (RFC
// 3516 4.2), the store's line-end handling cannot alter it, and
// BINARY[part] decodes it back to exactly the octets the client appended,
// bare LFs and all (so BINARY.SIZE is theirs too).
//
// It works in one pass over the message with bounded memory: it follows
// the multipart boundaries (RFC 2046 5.1.1) to know where each part's body
// ends. Every byte outside a binary part's body is copied unchanged; a
// message without one comes out identical. The layer's APPEND streams the
// literal through it (appendReader) on its way to the store.
func Encode(dst io.Writer, src io.Reader) error {
	br, bw := convReaders.Get().(*bufio.Reader), convWriters.Get().(*bufio.Writer)
	br.Reset(src)
	bw.Reset(dst)
	defer func() {
		br.Reset(nil)
		bw.Reset(nil)
		convReaders.Put(br)
		convWriters.Put(bw)
	}()
	c := &binaryConv{r: br, w: bw, atStart: true}
	err := c.run()
	if ferr := c.w.Flush(); err == nil {
		err = ferr
	}
	return err
}

// The conversion's buffers are reused: every APPEND and every BINARYMIME
// delivery goes through it.
var (
	convReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 64<<10) }}
	convWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 32<<10) }}
)

// Reader gives r with its binary parts re-encoded (Encode), read through
// a pipe. The caller calls stop once it has finished reading, whatever
// happened.
func Reader(r io.Reader) (out io.Reader, stop func()) {
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		pw.CloseWithError(Encode(pw, r))
	}()
	return pr, func() {
		pr.CloseWithError(errStopped)
		<-done
	}
}

var errStopped = errors.New("binarymime: reader stopped")

// maxPartHeader bounds the header of one part that the conversion holds in
// memory; past it the rest of the message is copied as it is.
const maxPartHeader = 1 << 20

type binaryConv struct {
	r       *bufio.Reader
	w       *bufio.Writer
	bounds  []string // boundaries of the enclosing multiparts, innermost last
	atStart bool     // the next read starts a line
	pending []byte   // a boundary line read but not yet written
	nl      string   // the message's line end, as its header ended
}

// line reads the next line with its end, or a piece of a line longer than
// the buffer. The slice is valid until the next read.
func (c *binaryConv) line() (b []byte, start bool, err error) {
	start = c.atStart
	b, err = c.r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		err = nil
	}
	c.atStart = len(b) > 0 && b[len(b)-1] == '\n'
	return b, start, err
}

// boundary reports which enclosing multipart a line delimits (the index in
// c.bounds, or -1) and whether it is that multipart's close delimiter.
func (c *binaryConv) boundary(b []byte) (level int, closing bool) {
	if len(c.bounds) == 0 || !bytes.HasPrefix(b, []byte("--")) {
		return -1, false
	}
	// RFC 2046 5.1.1: transport padding (white space) may follow.
	s := strings.TrimRight(string(b[2:]), " \t\r\n")
	for i := len(c.bounds) - 1; i >= 0; i-- {
		bd := c.bounds[i]
		if s == bd {
			return i, false
		}
		if s == bd+"--" {
			return i, true
		}
	}
	return -1, false
}

func (c *binaryConv) run() error {
	for {
		eof, err := c.entity()
		if err != nil || eof {
			return err
		}
		// At a delimiter of an enclosing multipart.
		for {
			level, closing := c.boundary(c.pending)
			c.bounds = c.bounds[:level+1]
			if _, err := c.w.Write(c.pending); err != nil {
				return err
			}
			c.pending = nil
			if !closing {
				break // the next part's header follows
			}
			c.bounds = c.bounds[:level]
			// The epilogue, part of the enclosing body.
			if eof, err := c.copyBody(); err != nil || eof {
				return err
			}
		}
	}
}

// entity converts one entity: its header, then its body up to the next
// delimiter of an enclosing multipart (left in c.pending) or the end.
func (c *binaryConv) entity() (eof bool, err error) {
	var hdr []byte
	for {
		b, start, err := c.line()
		if start {
			if level, _ := c.boundary(b); level >= 0 {
				// A part with no empty line after its header.
				c.pending = append([]byte(nil), b...)
				_, werr := c.w.Write(hdr)
				return false, werr
			}
		}
		hdr = append(hdr, b...)
		if err != nil {
			_, werr := c.w.Write(hdr)
			return true, orEOF(err, werr)
		}
		if start && (string(b) == "\r\n" || string(b) == "\n") {
			if c.nl == "" {
				c.nl = string(b)
			}
			break
		}
		if len(hdr) > maxPartHeader {
			// Not a header any client would write: keep the rest as
			// it is.
			if _, err := c.w.Write(hdr); err != nil {
				return false, err
			}
			_, err := io.Copy(c.w, c.r)
			return true, err
		}
	}
	h, _ := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(hdr)))
	cte := strings.ToLower(strings.TrimSpace(h.Get("Content-Transfer-Encoding")))
	typ, params, _ := mime.ParseMediaType(h.Get("Content-Type"))
	if strings.HasPrefix(typ, "multipart/") {
		if bd := params["boundary"]; bd != "" {
			if _, err := c.w.Write(hdr); err != nil {
				return false, err
			}
			c.bounds = append(c.bounds, bd)
			return c.copyBody() // the preamble
		}
	}
	if cte != "binary" {
		if _, err := c.w.Write(hdr); err != nil {
			return false, err
		}
		return c.copyBody()
	}
	if _, err := c.w.Write(rewriteCTE(hdr)); err != nil {
		return false, err
	}
	return c.encodeBody()
}

// copyBody copies lines up to the next delimiter (kept in c.pending) or the
// end.
func (c *binaryConv) copyBody() (eof bool, err error) {
	for {
		b, start, err := c.line()
		if start {
			if level, _ := c.boundary(b); level >= 0 {
				c.pending = append([]byte(nil), b...)
				return false, nil
			}
		}
		if _, werr := c.w.Write(b); werr != nil {
			return false, werr
		}
		if err != nil {
			return true, orEOF(err, nil)
		}
	}
}

// encodeBody writes a binary body as base64 lines. The line end before a
// delimiter belongs to the delimiter (RFC 2046 5.1.1), not to the body, so
// each line end is held back until the next line shows it is content.
func (c *binaryConv) encodeBody() (eof bool, err error) {
	lw := &lineWrapper{w: c.w, nl: c.nl}
	enc := base64.NewEncoder(base64.StdEncoding, lw)
	var held []byte
	finish := func() error {
		if err := enc.Close(); err != nil {
			return err
		}
		return lw.end()
	}
	for {
		b, start, err := c.line()
		if start {
			if level, _ := c.boundary(b); level >= 0 {
				c.pending = append([]byte(nil), b...)
				return false, finish()
			}
		}
		if len(held) > 0 {
			if _, werr := enc.Write(held); werr != nil {
				return false, werr
			}
			held = held[:0]
		}
		content := b
		if c.atStart {
			// A whole line: hold back its end.
			n := 1
			if len(b) >= 2 && b[len(b)-2] == '\r' {
				n = 2
			}
			content = b[:len(b)-n]
			held = append(held, b[len(b)-n:]...)
		}
		if _, werr := enc.Write(content); werr != nil {
			return false, werr
		}
		if err != nil {
			// The end of the message: a last line end is content.
			if _, werr := enc.Write(held); werr != nil {
				return false, werr
			}
			return true, orEOF(err, finish())
		}
	}
}

// rewriteCTE replaces the Content-Transfer-Encoding field of a raw header
// (with any continuation lines) by "base64", keeping every other byte.
func rewriteCTE(hdr []byte) []byte {
	var out []byte
	skipping := false
	for len(hdr) > 0 {
		i := bytes.IndexByte(hdr, '\n')
		line := hdr
		if i >= 0 {
			line = hdr[:i+1]
		}
		hdr = hdr[len(line):]
		if skipping && len(line) > 0 && (line[0] == ' ' || line[0] == '\t') {
			continue
		}
		skipping = false
		if name, _, ok := bytes.Cut(line, []byte(":")); ok &&
			strings.EqualFold(strings.TrimSpace(string(name)), "Content-Transfer-Encoding") {
			nl := "\n"
			if bytes.HasSuffix(line, []byte("\r\n")) {
				nl = "\r\n"
			}
			out = append(out, "Content-Transfer-Encoding: base64"+nl...)
			skipping = true
			continue
		}
		out = append(out, line...)
	}
	return out
}

// lineWrapper breaks base64 into lines of 76 characters (RFC 2045 6.8).
type lineWrapper struct {
	w   io.Writer
	nl  string
	col int
}

func (l *lineWrapper) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		k := min(len(p), 76-l.col)
		if _, err := l.w.Write(p[:k]); err != nil {
			return 0, err
		}
		p = p[k:]
		l.col += k
		if l.col == 76 {
			if _, err := io.WriteString(l.w, l.nl); err != nil {
				return 0, err
			}
			l.col = 0
		}
	}
	return n, nil
}

// end ends the last line: the delimiter that follows starts on a line of
// its own.
func (l *lineWrapper) end() error {
	if l.col == 0 {
		return nil
	}
	l.col = 0
	_, err := io.WriteString(l.w, l.nl)
	return err
}

// orEOF turns the io.EOF that ends a message into nil, keeping other
// errors (the first of err and werr).
func orEOF(err, werr error) error {
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return werr
}
