package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/emersion/go-imap/v2"

	"tern/common/maildir"
)

// Fetch answers FETCH (RFC 3501 6.4.5, RFC 9051 6.4.5).
// A message whose MIME structure is broken still answers every item: the
// parsers below fall back to treating a part as opaque text, never fail.
func (s *session) Fetch(w *FetchWriter, numSet imap.NumSet, options *imap.FetchOptions) (err error) {
	v := s.sel
	defer v.endCommand(&err)
	uids, err := v.resolve(numSet)
	if err != nil {
		return err
	}
	if err := v.sync(); err != nil {
		return storeError(s.log, "fetch", err)
	}
	s.fetchVanished(w, numSet, options)

	// RFC 3501 6.4.5: BODY[...] (not BODY.PEEK) sets \Seen, and the new
	// flags SHOULD come back in the same response.
	newFlags := make(map[uint32][]string)
	if !v.readOnly && setsSeen(options) {
		var unseen []uint32
		for _, uid := range uids {
			if m, ok := v.message(uid); ok && !hasFlag(m.Flags, imap.FlagSeen) {
				unseen = append(unseen, uid)
			}
		}
		if len(unseen) > 0 {
			changed, _, err := v.folder.SetFlags(unseen, maildir.FlagsAdd, []string{string(imap.FlagSeen)}, 0)
			if err != nil {
				return storeError(s.log, "fetch set seen", err)
			}
			for _, m := range changed {
				newFlags[m.UID] = m.Flags
				v.markTold(m)
			}
			s.changed(v.folder.Dir())
			if s.condstore {
				// The new modseqs, for MODSEQ (RFC 7162 3.1.4.1).
				if err := v.sync(); err != nil {
					return storeError(s.log, "fetch", err)
				}
			}
		}
	}

	fc := make(flagCache)
	cur := v.cursor()
	for _, uid := range uids {
		m, seq := cur.find(uid)
		if m == nil || seq == 0 {
			// RFC 9051 6.4.5: a message expunged by another session
			// that this client still sees may be skipped.
			continue
		}
		if options.ChangedSince != 0 && m.ModSeq <= options.ChangedSince {
			continue // RFC 7162 3.1.4.1
		}
		flags, flagsChanged := newFlags[uid]
		if !flagsChanged {
			flags = m.Flags
		}
		fl := fc.convert(flags)
		if options.Flags || flagsChanged {
			// A keyword new to the client is announced before the
			// FETCH that carries it (flags.go).
			s.announceFlags(flags)
		}
		if err := s.fetchMessage(w.CreateMessage(seq), m, v.withRecent(uid, fl), options, flagsChanged); err != nil {
			return err
		}
	}
	return nil
}

func setsSeen(options *imap.FetchOptions) bool {
	for _, bs := range options.BodySection {
		if !bs.Peek {
			return true
		}
	}
	for _, bs := range options.BinarySection {
		if !bs.Peek {
			return true
		}
	}
	return false
}

func hasFlag(flags []string, flag imap.Flag) bool {
	for _, f := range flags {
		if imap.Flag(f) == flag {
			return true
		}
	}
	return false
}

// fetchMessage writes one message's FETCH response. Errors writing to the
// client end the command; a message file that vanished meanwhile answers
// with what is known without its content.
func (s *session) fetchMessage(rw *FetchResponseWriter, m *maildir.Message, flags []imap.Flag,
	options *imap.FetchOptions, forceFlags bool) error {
	rw.WriteUID(imap.UID(m.UID))
	if options.Flags || forceFlags {
		rw.WriteFlags(flags)
	}
	if options.ModSeq || (forceFlags && s.condstore) {
		rw.WriteModSeq(m.ModSeq) // RFC 7162 3.1.4.1
	}
	if options.InternalDate {
		rw.WriteInternalDate(m.InternalDate)
	}
	s.writeObjectItems(rw, m)
	needContent := options.Envelope || options.BodyStructure != nil || len(options.BodySection) > 0 ||
		len(options.BinarySection) > 0 || len(options.BinarySectionSize) > 0 || rw.req.Preview
	if options.RFC822Size {
		size, err := s.wireSize(m)
		if err != nil {
			s.log.Warn("fetch size", "uid", m.UID, "err", err)
			size = m.Size
		}
		rw.WriteRFC822Size(size)
	}
	if !needContent {
		return rw.Close()
	}
	src := newMsgSource(s.sel.folder, s.srv.fetchInfo, s.log, m)
	defer src.close()
	if err := s.fetchContent(rw, src, options); err != nil {
		if src.openErr == nil {
			return err
		}
		// Gone meanwhile (or unreadable): the response ends with what
		// was written.
		if !errors.Is(src.openErr, maildir.ErrNoMessage) {
			s.log.Error("open message", "uid", m.UID, "err", src.openErr)
		}
	}
	return rw.Close()
}

// fetchContent writes the items that come from the message's content,
// from the fetch cache where it has them (fetchcache.go).
func (s *session) fetchContent(rw *FetchResponseWriter, src *msgSource, options *imap.FetchOptions) error {
	if options.Envelope {
		env, err := src.envelope()
		if err != nil {
			return err
		}
		rw.WriteEncoded("ENVELOPE ", env)
	}
	if options.BodyStructure != nil {
		body, ext, err := src.bodyStructure()
		if err != nil {
			return err
		}
		rw.WriteBodyStructureEncoded(body, ext)
	}
	for _, bs := range options.BodySection {
		if err := s.writeBodySection(rw, src, bs); err != nil {
			return err
		}
	}
	for _, bs := range options.BinarySection {
		r, err := src.content()
		if err != nil {
			return err
		}
		buf := extractBinarySection(r, bs)
		if err := writeLiteral(rw.WriteBinarySection(bs, int64(len(buf))), bytes.NewReader(buf)); err != nil {
			return err
		}
	}
	for _, bss := range options.BinarySectionSize {
		r, err := src.content()
		if err != nil {
			return err
		}
		rw.WriteBinarySectionSize(bss, extractBinarySectionSize(r, bss))
	}
	if rw.req.Preview {
		r, err := src.content()
		if err != nil {
			return err
		}
		rw.writePreview(makePreview(r, int64(s.srv.cfg().IMAPD.PreviewMaxRead)))
	}
	return nil
}

// writeBodySection writes one BODY[...] item.
func (s *session) writeBodySection(rw *FetchResponseWriter, src *msgSource, bs *imap.FetchItemBodySection) error {
	r, n, err := bodySection(src, bs)
	if err != nil {
		return err
	}
	return writeLiteral(rw.WriteBodySection(bs, n), r)
}

// bodySection gives the bytes of a BODY[...] section of the message src
// reads and their number: what FETCH sends, and what CATENATE (RFC 4469
// 3) puts into a new message. The whole message, the common case and the
// large one, is read from the file as it goes; a part or a header
// selection is cut out in memory, from the fetch cache's header section
// where that is all it needs.
func bodySection(src *msgSource, bs *imap.FetchItemBodySection) (io.Reader, int64, error) {
	m := src.m
	content := src.content
	if len(bs.Part) == 0 && bs.Specifier == imap.PartSpecifierHeader {
		// The message's own header, or fields of it: all is in the
		// header section, which the cache may hold.
		content = func() (io.Reader, error) {
			h, err := src.header()
			if err != nil {
				return nil, err
			}
			return bytes.NewReader(h), nil
		}
	}
	whole := bs.Specifier == imap.PartSpecifierNone && len(bs.Part) == 0
	if whole {
		f, err := src.file()
		if err != nil {
			return nil, 0, err
		}
		size, err := src.folder.WireSize(m.UID, m.Key)
		if err != nil {
			return nil, 0, fmt.Errorf("size of message %d: %w", m.UID, err)
		}
		off, n := int64(0), size
		if p := bs.Partial; p != nil {
			off = min(p.Offset, size)
			n = min(p.Size, size-off)
		}
		var r io.Reader
		if fi, err := f.Stat(); err == nil && fi.Size() == size {
			// No bare LF in the file (its size is already the wire
			// size): it is sent as it is.
			if _, err := f.Seek(off, io.SeekStart); err != nil {
				return nil, 0, fmt.Errorf("seek in message %d: %w", m.UID, err)
			}
			r = f
		} else {
			if r, err = content(); err != nil {
				return nil, 0, err
			}
			if _, err := io.CopyN(io.Discard, r, off); err != nil {
				return nil, 0, fmt.Errorf("skip in message %d: %w", m.UID, err)
			}
		}
		return io.LimitReader(r, n), n, nil
	}
	r, err := content()
	if err != nil {
		return nil, 0, err
	}
	// The section is cut out whole and the partial range applied last:
	// an origin past its end gives an empty string (RFC 3501 6.4.5),
	// which must not be mistaken for a header that did not parse.
	sec := *bs
	sec.Partial = nil
	buf := extractBodySection(r, &sec)
	if buf == nil && bs.Specifier == imap.PartSpecifierHeader && len(bs.Part) == 0 &&
		bs.HeaderFields == nil && bs.HeaderFieldsNot == nil {
		// A header that does not parse is still a header: give the raw
		// bytes up to the first empty line. (Nil is also the answer to
		// a partial fetch whose origin is past the end, RFC 9051 6.4.5,
		// and to header fields that select nothing: those stay empty.)
		r, err := content()
		if err != nil {
			return nil, 0, err
		}
		buf = rawHeader(r)
	}
	if isTopHeader(bs) && bytes.HasSuffix(buf, []byte("\r\n\r\n")) {
		// A message that ends inside its header has no empty line, and
		// its header section is then all of it (RFC 5322 2.1: the body
		// is optional), as Dovecot answers; the section extraction adds
		// the empty line when it writes the header out again.
		r, err := content()
		if err != nil {
			return nil, 0, err
		}
		if h := rawHeader(r); !bytes.HasSuffix(h, []byte("\r\n\r\n")) && !bytes.Equal(h, []byte("\r\n")) {
			buf = buf[:len(buf)-2]
		}
	}
	buf = partial(buf, bs.Partial)
	return bytes.NewReader(buf), int64(len(buf)), nil
}

// isTopHeader says whether a section is the message's own header: HEADER,
// or the MIME header of part 1 of a message that is not multipart, which
// is the same bytes (RFC 3501 6.4.5).
func isTopHeader(bs *imap.FetchItemBodySection) bool {
	switch {
	case bs.Specifier == imap.PartSpecifierHeader && len(bs.Part) == 0 && bs.HeaderFields == nil && bs.HeaderFieldsNot == nil:
		return true
	case bs.Specifier == imap.PartSpecifierMIME && len(bs.Part) == 1 && bs.Part[0] == 1:
		return true
	}
	return false
}

// rawHeader returns the bytes of r up to and including the first empty
// line (or all of r if there is none).
func rawHeader(r io.Reader) []byte {
	br := bufio.NewReader(r)
	var out []byte
	// A line longer than the buffer comes in pieces: only a whole line
	// of its own is the empty one.
	lineStart := true
	for {
		line, err := br.ReadSlice('\n')
		out = append(out, line...)
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return out
		}
		if lineStart && string(line) == "\r\n" {
			return out
		}
		lineStart = err == nil
	}
}

func writeLiteral(wc io.WriteCloser, r io.Reader) error {
	var err error
	if br, ok := r.(*bytes.Reader); ok {
		_, err = br.WriteTo(wc)
	} else {
		_, err = copyChunked(wc, r)
	}
	if cerr := wc.Close(); err == nil {
		err = cerr
	}
	return err
}

// wireSize returns the size of a message as the client receives it
// (common/maildir's wire form).
func (s *session) wireSize(m *maildir.Message) (int64, error) {
	return s.sel.folder.WireSize(m.UID, m.Key)
}

// copyChunked copies r to w through a pooled buffer.
func copyChunked(w io.Writer, r io.Reader) (int64, error) {
	bufp := literalPool.Get().(*[]byte)
	defer literalPool.Put(bufp)
	return io.CopyBuffer(struct{ io.Writer }{w}, struct{ io.Reader }{r}, *bufp)
}

var literalPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}
