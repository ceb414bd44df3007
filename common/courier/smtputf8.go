package courier

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/textproto"
	"strings"

	"tern/common/queue"
	"tern/common/smtpserver"
)

// errNoUTF8 marks a next hop that does not announce SMTPUTF8 for a
// message that cannot travel without it.
var errNoUTF8 = errors.New("SMTPUTF8 is required, but was not offered by host")

// utf8Need is why a transaction needs SMTPUTF8 (RFC 6531 3.4); the zero
// value is a transaction that does not.
type utf8Need struct {
	code   int    // the reply code reported for the recipients
	status string // RFC 3463 enhanced status, registered by RFC 6531 4.2
}

func (n utf8Need) needed() bool { return n.code != 0 }

// refused is the error of hop, which does not announce SMTPUTF8, and the
// reply recorded for each recipient. RFC 6531 3.2: the message must not
// go there, and, with no standard downgrade of an address (RFC 6530 5),
// it is returned with a notice (RFC 6533) at once instead of waiting out
// queue_lifetime.
func (n utf8Need) refused(hop string) error {
	return fmt.Errorf("%s %w %s", n.status, errNoUTF8, hop)
}

// RFC 6531 3.5: X.6.7 for an address, with 550 for the sender's and 553
// for a recipient's; X.6.9 with 554 for UTF-8 header fields.
var (
	needSender    = utf8Need{550, "5.6.7"}
	needRecipient = utf8Need{553, "5.6.7"}
	needHeader    = utf8Need{554, "5.6.9"}
)

// addressNeedsUTF8 says whether the envelope of e to the recipients idx
// has a non-ASCII address, and which.
func addressNeedsUTF8(e *queue.Envelope, idx []int) utf8Need {
	if !smtpserver.IsASCII(e.From) {
		return needSender
	}
	for _, i := range idx {
		if !smtpserver.IsASCII(e.Recipients[i].Addr) {
			return needRecipient
		}
	}
	return utf8Need{}
}

// needsUTF8 says whether sending e, whose message r reads (to its end),
// to the recipients idx needs SMTPUTF8. RFC 6531 3.2: a non-ASCII
// address in the envelope, or, in a message that came with SMTPUTF8,
// UTF-8 header fields (RFC 6532) at any level of its MIME structure. A
// message that only claimed SMTPUTF8, all ASCII, needs nothing: RFC 6531
// 3.4, it goes without the parameter.
func needsUTF8(e *queue.Envelope, idx []int, r io.Reader) utf8Need {
	if n := addressNeedsUTF8(e, idx); n.needed() {
		return n
	}
	if e.UTF8 && entityUTF8(bufio.NewReader(r), 0) {
		return needHeader
	}
	return utf8Need{}
}

// maxMIMEDepth bounds the nesting entityUTF8 follows, against a message
// built to exhaust the stack; deeper parts are not looked into.
const maxMIMEDepth = 20

// entityUTF8 reports whether the MIME entity r starts has a non-ASCII
// byte in its header section, or in that of a part or of an enclosed
// message/rfc822. A malformed entity counts as far as it could be read.
// A message/global is not looked into: RFC 6532 3.5 made it an opaque
// body, which may even be base64-encoded, so that a UTF-8 message travels
// inside it without SMTPUTF8; a notice returning one (RFC 6533) thus
// reaches a sender whose server lacks SMTPUTF8.
func entityUTF8(r *bufio.Reader, depth int) bool {
	utf8, head := utf8Header(r)
	if utf8 {
		return true
	}
	h, _ := textproto.NewReader(bufio.NewReader(bytes.NewReader(head))).ReadMIMEHeader()
	return bodyUTF8(h, r, depth)
}

// bodyUTF8 is entityUTF8 for the body of an entity whose header is h.
func bodyUTF8(h textproto.MIMEHeader, body io.Reader, depth int) bool {
	if depth >= maxMIMEDepth {
		return false
	}
	mt, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil {
		return false
	}
	switch {
	case strings.HasPrefix(mt, "multipart/") && params["boundary"] != "":
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextRawPart()
			if err != nil {
				return false
			}
			for _, vs := range p.Header {
				for _, v := range vs {
					if !smtpserver.IsASCII(v) {
						return true
					}
				}
			}
			if bodyUTF8(p.Header, p, depth+1) {
				return true
			}
		}
	case mt == "message/rfc822":
		return entityUTF8(bufio.NewReader(body), depth+1)
	}
	return false
}

// utf8Header reads the header section of r, through the blank line that
// ends it, and reports whether it holds a non-ASCII byte.
func utf8Header(r *bufio.Reader) (utf8 bool, head []byte) {
	var b bytes.Buffer
	mid := false
	for {
		line, err := r.ReadSlice('\n')
		b.Write(line)
		if !utf8 && !smtpserver.IsASCII(string(line)) {
			utf8 = true
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			mid = true // a long line: the rest of it next
			continue
		}
		blank := !mid && (bytes.Equal(line, []byte("\r\n")) || bytes.Equal(line, []byte("\n")))
		mid = false
		if err != nil || blank {
			return utf8, b.Bytes()
		}
	}
}
