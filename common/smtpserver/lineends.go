package smtpserver

import (
	"bytes"
	"io"
)

// lineEnds applies the DATA reader's rule to BDAT chunks, unless the
// message is BODY=BINARYMIME (RFC 3030 3): no NUL and no bare CR or LF
// (RFC 5321 2.3.8), also where a CRLF is split between two chunks or two
// reads. A message that breaks it could end early at a more lenient next
// hop, which would run the rest as commands.
type lineEnds struct{ prevCR bool }

// ok checks the next bytes of the content.
func (l *lineEnds) ok(b []byte) bool {
	if len(b) == 0 {
		return true
	}
	if !cleanLineEnds(b, l.prevCR) {
		return false
	}
	l.prevCR = b[len(b)-1] == '\r'
	return true
}

// complete reports whether the content may end here (not after a CR).
func (l *lineEnds) complete() bool { return !l.prevCR }

// cleanLineEnds reports whether b, which follows a CR when prevCR, has no
// NUL (RFC 6152 2 / RFC 5322 2.3: some MTAs drop it, which would turn
// "\r\n\x00.\r\n" into an end of data) and no bare LF or CR, a CR at its
// very end being left for the next bytes to complete. Every LF must follow
// a CR, and then there must be no CR besides those and a final one.
func cleanLineEnds(b []byte, prevCR bool) bool {
	if bytes.IndexByte(b, 0) >= 0 {
		return false
	}
	if prevCR && b[0] != '\n' {
		return false
	}
	paired := 0 // CRs of b that precede an LF
	for i := 0; ; {
		k := bytes.IndexByte(b[i:], '\n')
		if k < 0 {
			break
		}
		k += i
		switch {
		case k > 0 && b[k-1] == '\r':
			paired++
		case k == 0 && prevCR:
		default:
			return false
		}
		i = k + 1
	}
	if b[len(b)-1] == '\r' {
		paired++
	}
	return bytes.Count(b, []byte{'\r'}) == paired
}

// checkedWriter passes BDAT content on while it keeps the rule.
type checkedWriter struct {
	w io.Writer
	l *lineEnds
}

func (c checkedWriter) Write(p []byte) (int, error) {
	if !c.l.ok(p) {
		return 0, replyDataBareLineEnd
	}
	return c.w.Write(p)
}
