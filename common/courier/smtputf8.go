package courier

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

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
	status string // RFC 3463 enhanced status, as RFC 6531 3.6 registers it
}

func (n utf8Need) needed() bool { return n.code != 0 }

// refused is the error of hop, which does not announce SMTPUTF8, and the
// reply recorded for each recipient: there is no standard downgrade of an
// address (RFC 6530 5, RFC 6531 3.4), so the message cannot reach them
// that way and is returned at once instead of waiting out queue_lifetime.
func (n utf8Need) refused(hop string) error {
	return fmt.Errorf("%s %w %s", n.status, errNoUTF8, hop)
}

// needsUTF8 says whether sending e to the recipients idx needs SMTPUTF8,
// and returns a reader of the whole of r (which it has read the header
// section of). RFC 6531 3.4: a non-ASCII address in the envelope, or, in
// a message that came with SMTPUTF8, a UTF-8 header field (RFC 6532 3.2).
// A message that only claimed SMTPUTF8, all ASCII, needs nothing: it
// goes to a server without the extension as any other message.
func needsUTF8(e *queue.Envelope, idx []int, r io.Reader) (utf8Need, io.Reader) {
	ascii := smtpserver.IsASCII(e.From)
	for _, i := range idx {
		ascii = ascii && smtpserver.IsASCII(e.Recipients[i].Addr)
	}
	if !ascii {
		// RFC 6531 3.6: 553 5.6.7, non-ASCII addresses not permitted for
		// that sender/recipient.
		return utf8Need{553, "5.6.7"}, r
	}
	if !e.UTF8 {
		return utf8Need{}, r
	}
	utf8, r := utf8Header(r)
	if utf8 {
		// RFC 6531 3.6: 5.6.9, a UTF-8 header message cannot be
		// transferred to one or more recipients.
		return utf8Need{550, "5.6.9"}, r
	}
	return utf8Need{}, r
}

// utf8Header reports whether the header section of r holds a non-ASCII
// byte, and returns a reader of the whole of r.
func utf8Header(r io.Reader) (bool, io.Reader) {
	br := bufio.NewReader(r)
	var head bytes.Buffer
	utf8, mid := false, false
	for {
		line, err := br.ReadSlice('\n')
		head.Write(line)
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
			break
		}
	}
	return utf8, io.MultiReader(&head, br)
}
