package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// Messages in a Maildir are stored with LF line ends (what MTAs and MDAs
// write), but POP3 sends them as a multi-line response: CRLF line ends and
// byte-stuffing (RFC 1939 3). The conversion is streamed, a buffer at a time,
// so a large message never sits in memory:
//
//   - a bare LF becomes CRLF; a CRLF pair stays as it is;
//   - a CR not followed by LF is sent as it is stored, so that a client that
//     turns CRLF back into LF gets the stored bytes back exactly;
//   - a line that begins with "." gets one more "." in front;
//   - a message whose last line has no line end gets one, so that the
//     terminating "." stands on a line of its own.
//
// The octet count in STAT, LIST and the RETR status line is the size of the
// converted message before byte-stuffing (wireSize), which is what the
// client receives once it undoes the stuffing (RFC 1939 5, LIST).

// copyMessage writes the message in r to w, converted as above. With
// bodyLines < 0 it writes the whole message; otherwise (TOP, RFC 1939 7) the
// header, the blank line after it, and at most bodyLines lines of the body.
// It does not write the terminating "." line.
func copyMessage(w *bufio.Writer, r *bufio.Reader, bodyLines int) error {
	atStart := true    // the next byte begins a line
	inHeader := true   // no empty line seen yet
	pendingCR := false // a CR ended a buffer-sized piece; a LF may follow
	for {
		seg, err := r.ReadSlice('\n')
		if len(seg) > 0 {
			if pendingCR {
				pendingCR = false
				if seg[0] != '\n' {
					w.WriteByte('\r')
				}
			}
			complete := seg[len(seg)-1] == '\n'
			text := seg
			if complete {
				text = seg[:len(seg)-1]
				if n := len(text); n > 0 && text[n-1] == '\r' {
					text = text[:n-1]
				}
			} else if text[len(text)-1] == '\r' {
				// A line longer than the buffer ends this piece with a CR:
				// whether it is half of a CRLF shows only in the next piece.
				text = text[:len(text)-1]
				pendingCR = true
			}
			empty := atStart && len(text) == 0 && !pendingCR
			if atStart && len(text) > 0 && text[0] == '.' {
				w.WriteByte('.')
			}
			w.Write(text)
			if len(text) > 0 || pendingCR {
				atStart = false
			}
			if complete {
				if _, err := w.WriteString("\r\n"); err != nil {
					return err
				}
				atStart = true
				if bodyLines >= 0 {
					if inHeader {
						if empty {
							inHeader = false
							if bodyLines == 0 {
								return nil
							}
						}
					} else if bodyLines--; bodyLines == 0 {
						return nil
					}
				}
			}
		}
		switch {
		case err == nil, errors.Is(err, bufio.ErrBufferFull):
		case errors.Is(err, io.EOF):
			if pendingCR {
				w.WriteByte('\r')
				atStart = false
			}
			if !atStart {
				w.WriteString("\r\n")
			}
			_, err := w.Write(nil) // reports an earlier write error
			return err
		default:
			return fmt.Errorf("read message: %w", err)
		}
	}
}

// wireSize is the number of octets copyMessage writes for the whole message
// in r, not counting byte-stuffing.
func wireSize(r io.Reader, buf []byte) (int64, error) {
	var size int64
	var last byte
	for {
		n, err := r.Read(buf)
		chunk := buf[:n]
		size += int64(n)
		for len(chunk) > 0 {
			i := bytes.IndexByte(chunk, '\n')
			if i < 0 {
				break
			}
			prev := last
			if i > 0 {
				prev = chunk[i-1]
			}
			if prev != '\r' {
				size++ // a bare LF is sent as CRLF
			}
			last = '\n'
			chunk = chunk[i+1:]
		}
		if len(chunk) > 0 {
			last = chunk[len(chunk)-1]
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, fmt.Errorf("read message: %w", err)
		}
	}
	if size > 0 && last != '\n' {
		size += 2 // the line end added after an unterminated last line
	}
	return size, nil
}
