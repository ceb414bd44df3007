package smtpserver

import (
	"bufio"
	"bytes"
	"errors"
	"io"

	"github.com/emersion/go-smtp"
)

// Errors of the command reader. Each ends the connection: after them the
// server cannot be sure where the client's next command starts.
var (
	// ErrBareLineEnd: RFC 5321 2.3.8: lines end in CRLF only. A command
	// line holding a bare CR or a bare LF is what a peer that splits lines
	// differently from us sends, and that is how SMTP smuggling starts.
	ErrBareCR = errors.New("smtpserver: bare CR in command line")
	ErrBareLF = errors.New("smtpserver: bare LF in command line")
	// ErrLineTooLong: RFC 5321 4.5.3.1.4 bounds a command line; a longer
	// one is refused rather than buffered without end.
	ErrLineTooLong = errors.New("smtpserver: command line too long")
)

// readCommandLine reads one command line ending in CRLF from r and returns
// it without the CRLF. It reads at most max bytes (CRLF included; 0 = no
// limit), so memory stays bounded whatever the client sends. A bare CR or
// LF anywhere in the line is an error.
func readCommandLine(r *bufio.Reader, max int) (string, error) {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		line = append(line, chunk...)
		if max > 0 && len(line) > max {
			return "", ErrLineTooLong
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			if err == io.EOF && len(line) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return "", err
		}
		break
	}
	// line ends in '\n'.
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return "", ErrBareLF
	}
	body := line[:len(line)-2]
	if bytes.IndexByte(body, '\r') >= 0 {
		return "", ErrBareCR
	}
	return string(body), nil
}

// Replies of the DATA reader, one per refused message. The reader keeps
// reading to the end of data after any of them, so the client's next
// command is read where the client meant it to start, and the message
// gets this one reply (RFC 5321 4.2.5: one reply per command).
var (
	// RFC 5321 4.5.3.1.6: a text line is at most 1000 octets; the limit
	// here is max_line_length. The line is not the sender's to shorten
	// later, so the refusal is permanent.
	replyDataLineTooLong = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0},
		Message: "Message has a line longer than the limit (RFC 5321 4.5.3.1.6)"}
	// RFC 5321 2.3.8 and 4.1.1.4: lines end in CRLF; a bare CR or LF, or
	// a NUL some MTAs drop, could end the data early at a more lenient
	// next hop and smuggle the rest as commands, so the message is refused.
	replyDataBareLineEnd = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0},
		Message: "Bare CR, bare LF or NUL in message data is not allowed (RFC 5321 2.3.8)"}
	// RFC 1870 6: a message larger than the SIZE limit.
	replyDataTooLarge = &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4},
		Message: "Message exceeds the maximum size"}
)

// dotReader reads DATA content (RFC 5321 4.1.1.4, 4.5.2): it removes the
// dot of dot-stuffed lines, ends at CRLF.CRLF and nowhere else, and
// refuses bare CR, bare LF, NUL, lines longer than maxLine and content
// larger than maxBytes. After a refusal it reads on to the end of data,
// so the refusal can be answered and the session go on in step.
type dotReader struct {
	r        *bufio.Reader
	state    int
	lineLen  int   // bytes of the current line read so far, CRLF included
	maxLine  int   // 0 = no limit
	maxBytes int64 // 0 = no limit
	n        int64 // content bytes passed on
	err      error // the refusal, sticky
	done     bool
}

const (
	dotBOL   = iota // at the beginning of a line
	dotDot          // read "." at the beginning of a line
	dotDotCR        // read ".\r" at the beginning of a line
	dotCR           // read "\r" inside a line
	dotText         // inside a line
)

func newDotReader(r *bufio.Reader, maxLine int, maxBytes int64) *dotReader {
	return &dotReader{r: r, maxLine: maxLine, maxBytes: maxBytes}
}

// Read returns content up to the end of data (io.EOF), or the refusal.
func (d *dotReader) Read(p []byte) (int, error) {
	if d.err != nil {
		return 0, d.err
	}
	if d.done {
		return 0, io.EOF
	}
	n, err := d.read(p, false)
	if d.maxBytes > 0 && d.n+int64(n) > d.maxBytes && d.err == nil {
		d.err = replyDataTooLarge
	}
	d.n += int64(n)
	if d.err != nil {
		return 0, d.err
	}
	if err == nil && d.done {
		err = io.EOF
	}
	return n, err
}

// Err is the refusal found in the content, if any.
func (d *dotReader) Err() error { return d.err }

// drain reads and drops what is left up to the end of data.
func (d *dotReader) drain() error {
	var buf [4096]byte
	for !d.done {
		if _, err := d.read(buf[:], true); err != nil {
			return err
		}
	}
	return nil
}

// read runs the state machine over the input, writing content to p (unless
// discard) until p is full or the end of data. It returns a read error of
// the connection; a refusal is recorded in d.err and reading goes on.
func (d *dotReader) read(p []byte, discard bool) (n int, err error) {
	fail := func(e error) {
		if d.err == nil {
			d.err = e
		}
		discard = true
	}
	if d.err != nil {
		discard = true
	}
	emit := func(c byte) {
		if !discard {
			p[n] = c
		}
		n++
	}
	for n < len(p) && !d.done {
		if d.state == dotText {
			// The fast path: copy a run of plain bytes at once.
			buf, _ := d.r.Peek(1)
			if len(buf) > 0 {
				buf, _ = d.r.Peek(d.r.Buffered())
				k := 0
				for k < len(buf) && k < len(p)-n && buf[k] != '\r' && buf[k] != '\n' && buf[k] != 0 {
					k++
				}
				if k > 0 {
					if d.maxLine > 0 && d.lineLen+k > d.maxLine {
						fail(replyDataLineTooLong)
					}
					if !discard {
						copy(p[n:], buf[:k])
					}
					d.lineLen += k
					n += k
					d.r.Discard(k)
					continue
				}
			}
		}
		var c byte
		c, err = d.r.ReadByte()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			break
		}
		d.lineLen++
		if d.maxLine > 0 && d.lineLen > d.maxLine {
			fail(replyDataLineTooLong)
		}
		if c == 0 {
			fail(replyDataBareLineEnd)
		}
		switch d.state {
		case dotBOL:
			switch c {
			case '.':
				// RFC 5321 4.5.2: the first dot of a line is removed.
				d.state = dotDot
				continue
			case '\r':
				d.state = dotCR
			default:
				// A bare LF included: only a CRLF starts a line, so that
				// nothing after a bare LF can be taken for the end.
				if c == '\n' {
					fail(replyDataBareLineEnd)
				}
				d.state = dotText
			}
			emit(c)
		case dotDot:
			switch c {
			case '\r':
				d.state = dotDotCR
				continue
			default:
				if c == '\n' {
					fail(replyDataBareLineEnd)
				}
				d.state = dotText
			}
			emit(c)
		case dotDotCR:
			if c == '\n' {
				// CRLF.CRLF, the end of data.
				d.done = true
				d.state, d.lineLen = dotBOL, 0
				continue
			}
			// ".\r" and then not LF: a bare CR, never an end of data.
			fail(replyDataBareLineEnd)
			d.state = dotText
			if c == '\r' {
				d.state = dotCR
			}
			emit('\r')
			if n < len(p) {
				emit(c)
			}
		case dotCR:
			if c == '\n' {
				d.state, d.lineLen = dotBOL, 0
				emit(c)
				continue
			}
			fail(replyDataBareLineEnd)
			if c != '\r' {
				d.state = dotText
			}
			emit(c)
		case dotText:
			switch c {
			case '\r':
				d.state = dotCR
			case '\n':
				fail(replyDataBareLineEnd)
			}
			emit(c)
		}
	}
	return n, err
}
