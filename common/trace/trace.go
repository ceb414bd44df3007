// Package trace builds the trace fields a message gathers on its way
// through tern (RFC 5321 4.4: Received when smtpd takes it, Return-Path
// and Delivered-To when lmtpd stores it), and keeps text that comes from
// clients and other hosts (a HELO name, a next hop's reply) from breaking
// the header fields, replies and reports it is put into. It is the one
// home of that code for smtpd, its courier, lmtpd, mailq and pop3d.
package trace

import (
	"fmt"
	"strings"
	"time"
)

// Hop is what the Received field of a message taken over SMTP records.
type Hop struct {
	Helo  string // the client's HELO/EHLO name, as it gave it
	IP    string // the client's address
	By    string // this host's name (tern.toml hostname)
	Proto string // RFC 3848: ESMTP, ESMTPS, ESMTPA, ESMTPSA
	ID    string // the queue id
	For   string // the one recipient, "" when several (not to reveal them)
}

// Received is the trace field of RFC 5321 4.4 for h, CRLF included.
func Received(h Hop, now time.Time) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Received: from %s ([%s])\r\n\tby %s (tern) with %s id %s",
		Comment(h.Helo), h.IP, h.By, h.Proto, h.ID)
	writeFor(&b, h.For, now)
	return b.String()
}

// LocalReceived is the trace field of a message submitted on this
// machine (sendmail, the local submission socket). RFC 5321 4.4: a
// "from" clause would need a domain, and there is no remote host; the uid
// goes in the comment of the "by" clause, as other MTAs write it.
func LocalReceived(by string, uid uint32, login, id, rcpt string, now time.Time) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Received: by %s (tern, from userid %d %s)\r\n\tid %s", by, uid, login, id)
	writeFor(&b, rcpt, now)
	return b.String()
}

func writeFor(b *strings.Builder, rcpt string, now time.Time) {
	if rcpt != "" {
		fmt.Fprintf(b, "\r\n\tfor <%s>", Comment(rcpt))
	}
	fmt.Fprintf(b, ";\r\n\t%s\r\n", now.Format(time.RFC1123Z))
}

// Delivery is what the final delivery prepends (RFC 5321 4.4: the
// delivering system adds Return-Path; Delivered-To names the mailbox, for
// loop detection by the user's own filters), CRLF included.
func Delivery(from, user string) string {
	return "Return-Path: <" + OneLine(from) + ">\r\nDelivered-To: " + OneLine(user) + "\r\n"
}

// Comment keeps client-supplied text from breaking a header field or
// leaving a comment: control characters and ( ) ; become '_'.
func Comment(s string) string {
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f || r == '(' || r == ')' || r == ';' {
			return '_'
		}
		return r
	}, s)
}

// OneLine replaces CR and LF with spaces, so that s stays on one header
// field or protocol line.
func OneLine(s string) string {
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	return strings.NewReplacer("\r", " ", "\n", " ").Replace(s)
}

// Printable replaces every control character with a space: text from
// another host (a reply, a reason) shown on one line of a log, a listing
// or a report.
func Printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

// maxReply is how much of a next hop's reply is kept: enough for its
// status and reason, not a whole transcript.
const maxReply = 200

// Reply is a next hop's reply text as kept in the queue and in notices:
// printable, on one line, at most 200 bytes.
func Reply(s string) string {
	s = Printable(s)
	if len(s) > maxReply {
		s = s[:maxReply]
	}
	return s
}
