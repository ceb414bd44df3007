package main

import (
	"bufio"
	"bytes"
	"io"
	"strings"

	"github.com/emersion/go-imap/v2"
	gomessage "github.com/emersion/go-message"
	"github.com/emersion/go-message/textproto"
)

// Body sections (RFC 9051 6.4.5): a part is found by walking the part
// numbers down the MIME tree; HEADER, TEXT and MIME then pick a piece of
// it. A section that does not exist is nil, which FETCH answers as an
// empty string.

// mimePart is one entity of the tree: its header and the reader of its
// body, and the media type of the multipart it came from (a part of
// multipart/digest is message/rfc822 by default, RFC 2046 5.1.5).
type mimePart struct {
	header textproto.Header
	body   io.Reader
	parent string
}

// findPart walks to the part numbered path. RFC 9051 6.4.5: part 1 of a
// message that is not multipart is its body; the parts of a
// message/rfc822 part are those of the message it carries.
func findPart(r io.Reader, path []int) (*mimePart, bool) {
	br := bufio.NewReader(r)
	h, err := textproto.ReadHeader(br)
	if err != nil {
		return nil, false
	}
	p := &mimePart{header: h, body: br}
	if t, _ := mediaType(p.header, ""); !strings.HasPrefix(t, "multipart/") && len(path) > 0 && path[0] == 1 {
		path = path[1:]
	}
	for _, n := range path {
		p.enter()
		t, params := mediaType(p.header, "")
		if !strings.HasPrefix(t, "multipart/") {
			if n != 1 {
				return nil, false
			}
			continue
		}
		mr := textproto.NewMultipartReader(p.body, params["boundary"])
		var child *textproto.Part
		for i := 0; i < n; i++ {
			if child, err = mr.NextPart(); err != nil {
				return nil, false
			}
		}
		p = &mimePart{header: child.Header, body: child, parent: t}
	}
	return p, true
}

// enter moves from a message/rfc822 (or message/global) part to the
// message it carries.
func (p *mimePart) enter() {
	if t, _ := mediaType(p.header, p.parent); t == "message/rfc822" || t == "message/global" {
		br := bufio.NewReader(p.body)
		p.header, _ = textproto.ReadHeader(br)
		p.body = br
		p.parent = ""
	}
}

// mediaType is the part's content type, with the digest default.
func mediaType(h textproto.Header, parent string) (string, map[string]string) {
	mh := gomessage.Header{Header: h}
	if !mh.Has("Content-Type") && parent == "multipart/digest" {
		return "message/rfc822", nil
	}
	t, params, _ := mh.ContentType()
	return t, params
}

// extractBodySection returns the bytes of a BODY[...] section.
func extractBodySection(r io.Reader, bs *imap.FetchItemBodySection) []byte {
	p, ok := findPart(r, bs.Part)
	if !ok {
		return nil
	}
	if len(bs.Part) > 0 && (bs.Specifier == imap.PartSpecifierHeader || bs.Specifier == imap.PartSpecifierText) {
		p.enter()
	}
	h := p.header
	if len(bs.HeaderFields) > 0 {
		keep := make(map[string]bool, len(bs.HeaderFields))
		for _, k := range bs.HeaderFields {
			keep[strings.ToLower(k)] = true
		}
		for f := h.Fields(); f.Next(); {
			if !keep[strings.ToLower(f.Key())] {
				f.Del()
			}
		}
	}
	for _, k := range bs.HeaderFieldsNot {
		h.Del(k)
	}
	var buf bytes.Buffer
	withHeader := bs.Specifier == imap.PartSpecifierHeader || bs.Specifier == imap.PartSpecifierMIME ||
		(bs.Specifier == imap.PartSpecifierNone && len(bs.Part) == 0)
	if withHeader && textproto.WriteHeader(&buf, h) != nil {
		return nil
	}
	if bs.Specifier == imap.PartSpecifierNone || bs.Specifier == imap.PartSpecifierText {
		if _, err := io.Copy(&buf, p.body); err != nil {
			return nil
		}
	}
	return partial(buf.Bytes(), bs.Partial)
}

// extractBinarySection returns a BINARY[...] section: the part's content
// with its transfer encoding undone (RFC 3516 4.2).
func extractBinarySection(r io.Reader, bs *imap.FetchItemBinarySection) []byte {
	p, ok := findPart(r, bs.Part)
	if !ok {
		return nil
	}
	e, err := gomessage.New(gomessage.Header{Header: p.header}, p.body)
	if e == nil {
		_ = err
		return nil
	}
	var buf bytes.Buffer
	if len(bs.Part) == 0 && textproto.WriteHeader(&buf, e.Header.Header) != nil {
		return nil
	}
	if _, err := io.Copy(&buf, e.Body); err != nil {
		return nil
	}
	return partial(buf.Bytes(), bs.Partial)
}

// extractBinarySectionSize is the size of BINARY[...] (RFC 3516 4.3).
func extractBinarySectionSize(r io.Reader, bs *imap.FetchItemBinarySectionSize) uint32 {
	return uint32(len(extractBinarySection(r, &imap.FetchItemBinarySection{Part: bs.Part})))
}

// partial cuts <origin.size> out of b; an origin past the end is empty
// (RFC 9051 6.4.5).
func partial(b []byte, p *imap.SectionPartial) []byte {
	if p == nil {
		return b
	}
	if p.Offset >= int64(len(b)) {
		// Empty, not nil: nil means the section did not parse.
		return []byte{}
	}
	return b[p.Offset:min(p.Offset+p.Size, int64(len(b)))]
}
