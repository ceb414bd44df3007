package main

import (
	"bufio"
	"fmt"
	"strings"

	"tern/common/trace"
)

// Response codes of RFC 2449 8 (and RFC 3206), put in brackets after -ERR so
// that a client can tell why a command failed without parsing the text.
const (
	codeNone    = ""
	codeInUse   = "IN-USE"   // RFC 2449 8.1.1: the maildrop is locked by another session
	codeAuth    = "AUTH"     // RFC 3206 5: the failure is about the credentials
	codeSysTemp = "SYS/TEMP" // RFC 3206 4: a temporary system problem; try again later
	codeSysPerm = "SYS/PERM" // RFC 3206 4: a permanent system problem
)

// reply is one response to a command: a status line, and for multi-line
// responses a body, either as short lines or streamed by a function.
// Handlers return replies; only writeReply puts them on the wire.
type reply struct {
	ok   bool
	code string // RFC 2449 8 response code, only on -ERR
	text string

	// lines is a multi-line body of short protocol lines (CAPA, LIST,
	// UIDL). It is byte-stuffed when written.
	lines []string
	// body streams a multi-line body (RETR, TOP); it must byte-stuff what
	// it writes, and must not write the terminating "." line.
	body func(w *bufio.Writer) error
	// multi marks a multi-line response even when lines is empty (LIST of
	// an empty maildrop still sends its terminating ".").
	multi bool

	// then runs after the reply has been flushed (STLS starts the TLS
	// handshake there).
	then func() error
	// quit closes the connection after the reply.
	quit bool
	// bad marks a client error (syntax, sequence) that counts towards the
	// session's error limit.
	bad bool
}

func okReply(format string, args ...any) reply {
	return reply{ok: true, text: fmt.Sprintf(format, args...)}
}

func errReply(code, format string, args ...any) reply {
	return reply{code: code, text: fmt.Sprintf(format, args...)}
}

// Replies shared by several handlers, so that the wording stays the same.
var (
	replyNoSuchMessage    = errReply(codeNone, "no such message")
	replyMessageDeleted   = errReply(codeNone, "message already deleted")
	replySyntax           = reply{code: codeNone, text: "syntax error in arguments", bad: true}
	replyPlaintextNeedTLS = errReply(codeAuth, "plaintext authentication is allowed only over TLS; use STLS or port 995")
)

// statusLine is the first line of a reply, without CRLF. Text that came
// from elsewhere cannot break the framing: CR and LF become spaces.
func (r reply) statusLine() string {
	var b strings.Builder
	if r.ok {
		b.WriteString("+OK")
	} else {
		b.WriteString("-ERR")
		if r.code != codeNone {
			b.WriteString(" [")
			b.WriteString(r.code)
			b.WriteString("]")
		}
	}
	if r.text != "" {
		b.WriteByte(' ')
		b.WriteString(trace.OneLine(r.text))
	}
	return b.String()
}

// writeReply puts r on w. The caller flushes.
func writeReply(w *bufio.Writer, r reply) error {
	w.WriteString(r.statusLine())
	w.WriteString("\r\n")
	if !r.ok || (r.lines == nil && r.body == nil && !r.multi) {
		return nil
	}
	for _, l := range r.lines {
		// RFC 1939 3: a line of a multi-line response that starts with
		// the termination octet is byte-stuffed.
		if strings.HasPrefix(l, ".") {
			w.WriteByte('.')
		}
		w.WriteString(trace.OneLine(l))
		w.WriteString("\r\n")
	}
	if r.body != nil {
		if err := r.body(w); err != nil {
			return err
		}
	}
	_, err := w.WriteString(".\r\n")
	return err
}
