package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// Messages in a Maildir are stored with LF line ends (what MTAs and MDAs
// write); POP3 sends them as a multi-line response: CRLF line ends and
// byte-stuffing (RFC 1939 3). The session reads a message through
// common/maildir's WireReader (the CRLF form imapd serves too) and
// copyMessage streams it, a buffer at a time, so a large message never sits
// in memory:
//
//   - a bare LF becomes CRLF; a CRLF pair stays as it is (so copyMessage
//     changes nothing of the wire form's line ends);
//   - a CR not followed by LF is sent as it is stored;
//   - a line that begins with "." gets one more "." in front;
//   - a message whose last line has no line end gets one, so that the
//     terminating "." stands on a line of its own.
//
// The octet count in STAT, LIST and the RETR status line is the size of the
// wire form (maildir.Folder.WireSize), which is what the client receives
// once it undoes the stuffing (RFC 1939 5, LIST). The line end added after
// an unterminated last line belongs to the terminator and is not counted,
// as in Dovecot and in imapd's RFC822.SIZE, so that both protocols give
// one size for one message.

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
