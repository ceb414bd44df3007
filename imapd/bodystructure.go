package main

import (
	"bufio"
	"io"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	gomessage "github.com/emersion/go-message"
	"github.com/emersion/go-message/textproto"
)

// maxMIMEDepth bounds the nesting of multiparts and message/rfc822 parts
// that BODYSTRUCTURE descends into; deeper parts are described as opaque.
// It protects the server's stack from a crafted message, not a policy, so
// it is not a configuration key; real mail nests a handful of levels.
const maxMIMEDepth = 50

// parseBodyStructure describes the MIME structure of a message for
// BODYSTRUCTURE (RFC 3501 7.4.2). It never fails: missing or unparsable
// Content-Type headers take the RFC 2045 5.2 default, and a multipart
// without a usable boundary or without parts is described as the text it
// then is, so the answer always follows the grammar (RFC 3501 9 requires
// at least one part in a body-type-mpart).
func parseBodyStructure(r io.Reader) imap.BodyStructure {
	br := bufio.NewReader(r)
	h, _ := textproto.ReadHeader(br)
	return partStructure(h, br, "", 0)
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

func partStructure(h textproto.Header, body io.Reader, parentType string, depth int) imap.BodyStructure {
	header := gomessage.Header{Header: h}
	mediaType, params, err := header.ContentType()
	if err != nil || !strings.Contains(mediaType, "/") {
		// RFC 2046 5.1.5: in a multipart/digest the default is
		// message/rfc822; elsewhere RFC 2045 5.2's text/plain.
		if parentType == "multipart/digest" {
			mediaType, params = "message/rfc822", nil
		} else {
			mediaType, params = "text/plain", map[string]string{"charset": "us-ascii"}
		}
	}
	typ, sub, _ := strings.Cut(mediaType, "/")
	cr := &countingReader{r: body}

	if typ == "multipart" && depth < maxMIMEDepth && params["boundary"] != "" {
		mr := textproto.NewMultipartReader(cr, params["boundary"])
		var children []imap.BodyStructure
		for {
			p, err := mr.NextPart()
			if err != nil {
				break
			}
			children = append(children, partStructure(p.Header, p, mediaType, depth+1))
		}
		if len(children) > 0 {
			return &imap.BodyStructureMultiPart{
				Subtype:  sub,
				Children: children,
				Extended: &imap.BodyStructureMultiPartExt{
					Params:      params,
					Disposition: disposition(header),
					Language:    languages(header),
					Location:    header.Get("Content-Location"),
				},
			}
		}
	}
	if typ == "multipart" {
		// No boundary, or no part found: the body is plain text.
		typ, sub, mediaType = "text", "plain", "text/plain"
		params = map[string]string{"charset": "us-ascii"}
	}

	encoding := header.Get("Content-Transfer-Encoding")
	if encoding == "" {
		encoding = "7BIT"
	}
	bs := &imap.BodyStructureSinglePart{
		Type:        typ,
		Subtype:     sub,
		Params:      params,
		ID:          header.Get("Content-Id"),
		Description: header.Get("Content-Description"),
		Encoding:    encoding,
		Extended: &imap.BodyStructureSinglePartExt{
			Disposition: disposition(header),
			Language:    languages(header),
			Location:    header.Get("Content-Location"),
		},
	}
	if (mediaType == "message/rfc822" || mediaType == "message/global") && depth < maxMIMEDepth {
		inner := bufio.NewReader(cr)
		ih, _ := textproto.ReadHeader(inner)
		child := partStructure(ih, inner, "", depth+1)
		io.Copy(io.Discard, inner)
		bs.MessageRFC822 = &imap.BodyStructureMessageRFC822{
			Envelope:      imapserver.ExtractEnvelope(ih),
			BodyStructure: child,
			NumLines:      cr.lines,
		}
	} else {
		io.Copy(io.Discard, cr)
		if mediaType == "message/rfc822" || mediaType == "message/global" {
			// Too deep to describe: present it as an opaque part so the
			// grammar (which requires an envelope for message/rfc822) holds.
			bs.Type, bs.Subtype = "application", "octet-stream"
		}
	}
	if typ == "text" {
		bs.Text = &imap.BodyStructureText{NumLines: cr.lines}
	}
	bs.Size = uint32(min(cr.n, int64(^uint32(0))))
	return bs
}

func disposition(h gomessage.Header) *imap.BodyStructureDisposition {
	disp, params, err := h.ContentDisposition()
	if err != nil || disp == "" {
		return nil
	}
	return &imap.BodyStructureDisposition{Value: disp, Params: params}
}

func languages(h gomessage.Header) []string {
	v := h.Get("Content-Language")
	if v == "" {
		return nil
	}
	var out []string
	for _, l := range strings.Split(v, ",") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}
