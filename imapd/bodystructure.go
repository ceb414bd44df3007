package main

import (
	"bufio"
	"io"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-message/textproto"
)

// maxMIMEDepth bounds the nesting of multiparts and message/rfc822 parts
// that BODYSTRUCTURE descends into; deeper parts are described as opaque.
// It protects the server's stack from a crafted message, not a policy, so
// it is not a configuration key; real mail nests a handful of levels.
const maxMIMEDepth = 50

// parseBodyStructure describes the MIME structure of a message for
// BODYSTRUCTURE (RFC 3501 7.4.2) the way Dovecot does, so that clients see
// the same answer from both. It never fails: a missing or unparsable
// Content-Type takes the RFC 2045 5.2 default, and a multipart without a
// usable boundary or without parts gets one empty text/plain part, so
// the answer always follows the grammar (RFC 3501 9 requires at least one
// part in a body-type-mpart).
func parseBodyStructure(r io.Reader) imap.BodyStructure {
	br := bufio.NewReader(r)
	h, _ := textproto.ReadHeader(br)
	return partStructure(h, br, false, 0)
}

// countingReader counts the bytes and lines read through it.
type countingReader struct {
	r     io.Reader
	n     int64
	lines int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	for _, b := range p[:n] {
		if b == '\n' {
			c.lines++
		}
	}
	return n, err
}

// defaultCharset is RFC 2045 5.2's: text without a charset parameter is
// US-ASCII, and BODYSTRUCTURE says so.
var defaultCharset = mimeParam{"charset", "us-ascii"}

// partStructure describes one entity. inDigest says that its parent is a
// multipart/digest, where the default type is message/rfc822 (RFC 2046
// 5.1.5).
func partStructure(h textproto.Header, body io.Reader, inDigest bool, depth int) imap.BodyStructure {
	v, present := rawField(h, "Content-Type")
	ct, ok := parseContentType(v, true)
	switch {
	case ok:
	case present && v != "":
		// Unparsable: RFC 2045 5.2 says to take the default.
		ct = contentType{typ: "text", sub: "plain", params: []mimeParam{defaultCharset}}
	case inDigest:
		ct = contentType{typ: "message", sub: "rfc822"}
	default:
		ct = contentType{typ: "text", sub: "plain", params: []mimeParam{defaultCharset}}
	}
	isText := strings.EqualFold(ct.typ, "text")
	if _, has := ct.param("charset"); isText && !has {
		ct.params = append(ct.params, defaultCharset)
	}
	cr := &countingReader{r: body}

	if strings.EqualFold(ct.typ, "multipart") {
		var children []imap.BodyStructure
		if boundary, _ := ct.param("boundary"); boundary != "" && depth < maxMIMEDepth {
			mr := textproto.NewMultipartReader(cr, boundary)
			digest := strings.EqualFold(ct.sub, "digest")
			for {
				p, err := mr.NextPart()
				if err != nil {
					break
				}
				children = append(children, partStructure(p.Header, p, digest, depth+1))
			}
		}
		io.Copy(io.Discard, cr)
		if len(children) == 0 {
			// Dovecot's answer for a multipart it cannot split.
			children = []imap.BodyStructure{emptyTextPart()}
		}
		return &imap.BodyStructureMultiPart{
			Subtype:  ct.sub,
			Children: children,
			Extended: &imap.BodyStructureMultiPartExt{
				Params:      ct.paramMap(),
				Disposition: disposition(h),
				Language:    languages(h),
				Location:    fieldValue(h, "Content-Location"),
			},
		}
	}

	encoding := fieldValue(h, "Content-Transfer-Encoding")
	if encoding == "" {
		encoding = "7bit"
	}
	bs := &imap.BodyStructureSinglePart{
		Type:        ct.typ,
		Subtype:     ct.sub,
		Params:      ct.paramMap(),
		ID:          fieldValue(h, "Content-Id"),
		Description: fieldValue(h, "Content-Description"),
		Encoding:    encoding,
		Extended: &imap.BodyStructureSinglePartExt{
			Disposition: disposition(h),
			Language:    languages(h),
			Location:    fieldValue(h, "Content-Location"),
		},
	}
	// RFC 3501 9: only message/rfc822 has the envelope and inner
	// structure in its body-type-msg; message/global (RFC 6532) is
	// described as a basic part, as Dovecot does, so that IMAP4rev1
	// clients can parse it.
	if strings.EqualFold(ct.typ, "message") && strings.EqualFold(ct.sub, "rfc822") && depth < maxMIMEDepth {
		inner := bufio.NewReader(cr)
		ih, _ := textproto.ReadHeader(inner)
		child := partStructure(ih, inner, false, depth+1)
		io.Copy(io.Discard, inner)
		bs.MessageRFC822 = &imap.BodyStructureMessageRFC822{
			Envelope:      envelope(ih),
			BodyStructure: child,
			NumLines:      cr.lines,
		}
	} else {
		io.Copy(io.Discard, cr)
		if strings.EqualFold(ct.typ, "message") && strings.EqualFold(ct.sub, "rfc822") {
			// Too deep to describe: present it as an opaque part so the
			// grammar (which requires an envelope for message/rfc822) holds.
			bs.Type, bs.Subtype = "application", "octet-stream"
		}
	}
	if isText {
		bs.Text = &imap.BodyStructureText{NumLines: cr.lines}
	}
	bs.Size = uint32(min(cr.n, int64(^uint32(0))))
	return bs
}

// emptyTextPart stands for the missing parts of a multipart.
func emptyTextPart() *imap.BodyStructureSinglePart {
	return &imap.BodyStructureSinglePart{
		Type: "text", Subtype: "plain",
		Params:   map[string]string{defaultCharset.key: defaultCharset.value},
		Encoding: "7bit",
		Text:     &imap.BodyStructureText{},
		Extended: &imap.BodyStructureSinglePartExt{},
	}
}

// fieldValue is the unfolded value of a header field, "" if absent.
func fieldValue(h textproto.Header, key string) string {
	v, _ := rawField(h, key)
	return v
}

func disposition(h textproto.Header) *imap.BodyStructureDisposition {
	v, _ := rawField(h, "Content-Disposition")
	d, ok := parseContentType(v, false)
	if !ok {
		return nil
	}
	return &imap.BodyStructureDisposition{Value: d.typ, Params: d.paramMap()}
}

// languages parses Content-Language (RFC 3282 2): a list of tags.
func languages(h textproto.Header) []string {
	v, _ := rawField(h, "Content-Language")
	var out []string
	for _, l := range strings.Split(v, ",") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}
