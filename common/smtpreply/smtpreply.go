// Package smtpreply corrects the few replies that go-smtp, which both
// smtpd and lmtpd are built on, writes with the wrong code for tern's
// contract. It works on the bytes go-smtp writes, so both daemons apply it
// in their connection's Write and the protocol code stays the library's.
package smtpreply

import (
	"bytes"
	"fmt"
)

var (
	unknownPrefix = []byte("500 5.5.2 Syntax errors, ")
	unknownSuffix = []byte(" command unrecognized\r\n")
	mangled       = []byte("501 5.5.2 Bad command\r\n")
)

// Fix returns the reply to send in place of p, which is one complete reply
// as go-smtp writes it (go-smtp writes each reply with one Write call).
//
// RFC 3463 3.6: an unknown command is X.5.1 ("invalid command"); X.5.2 is a
// syntax error in a command that exists. go-smtp answers 5.5.2 for both,
// and answers a five-letter verb, or a verb glued to its argument, with
// "501 Bad command" although RFC 5321 4.2.4 asks for 500 when the command
// is not recognised.
func Fix(p []byte) []byte {
	if len(p) >= len(unknownPrefix)+len(unknownSuffix) &&
		bytes.HasPrefix(p, unknownPrefix) && bytes.HasSuffix(p, unknownSuffix) {
		verb := bytes.TrimSpace(p[len(unknownPrefix) : len(p)-len(unknownSuffix)])
		return fmt.Appendf(nil, "500 5.5.1 Command %s unrecognized\r\n", verb)
	}
	if bytes.Equal(p, mangled) {
		return []byte("500 5.5.1 Command unrecognized\r\n")
	}
	return p
}
