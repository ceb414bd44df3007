package main

import (
	"errors"
	"strings"

	"github.com/emersion/go-smtp"

	"tern/common/recipient"
)

// Errors of a delivery; replyFor turns them into LMTP replies. Anything
// else is a local, temporary problem (a disk error) and gets 451.
var (
	errOverQuota = errors.New("lmtpd: mailbox over quota")
	errNoRelay   = errors.New("lmtpd: cannot hand remote addresses to the queue")
	errLoop      = errors.New("lmtpd: mail loop")
)

// rejectError is a Sieve "reject" (RFC 5429) with its reason.
type rejectError struct{ reason string }

func (e *rejectError) Error() string { return "lmtpd: rejected by sieve: " + e.reason }

// codeOf is the reply code replyFor gives err, for the mail log.
func codeOf(err error) int {
	var se *smtp.SMTPError
	if errors.As(replyFor(err), &se) {
		return se.Code
	}
	return 0
}

// replyFor is the one place where errors become replies: code, enhanced
// status code (RFC 3463) and text safe to show the client. Internal detail
// stays in the log.
func replyFor(err error) error {
	if err == nil {
		return nil
	}
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se
	}
	var rj *rejectError
	switch {
	case errors.Is(err, recipient.ErrUnknown):
		// RFC 3463 3.2: X.1.1 bad destination mailbox address.
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user here"}
	case errors.Is(err, recipient.ErrNotLocal):
		// RFC 3463 3.2: X.1.2 bad destination system address.
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 2}, Message: "Not a local domain"}
	case errors.Is(err, errOverQuota):
		// RFC 3463 3.3: X.2.2 mailbox full.
		return &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 2, 2}, Message: "Mailbox full"}
	case errors.Is(err, errNoRelay):
		// A temporary failure keeps the message with the sender until
		// relaying is possible; nothing is lost.
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Forwarding is not available, try again later"}
	case errors.Is(err, errLoop):
		// RFC 3463 3.5: X.4.6 routing loop detected.
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 4, 6}, Message: "Mail loop detected"}
	case isNoSpace(err):
		return replyNoSpace
	case errors.As(err, &rj):
		// RFC 5429 2.1.1: a reject at the protocol level is 550 5.7.1.
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: safeText(rj.reason)}
	}
	return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Local error in processing, try again later"}
}

// maxReplyText bounds the user-supplied text of a reply line (RFC 5321
// 4.5.3.1.5: a reply line is at most 512 octets).
const maxReplyText = 400

// safeText makes user-supplied text (a Sieve reject reason) fit one reply
// line: printable ASCII only, no CR or LF, bounded.
func safeText(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\r' || r == '\n' || r == '\t':
			b.WriteByte(' ')
		case r >= 0x20 && r < 0x7f:
			b.WriteRune(r)
		default:
			b.WriteByte('?')
		}
		if b.Len() >= maxReplyText {
			break
		}
	}
	t := strings.Join(strings.Fields(b.String()), " ")
	if t == "" {
		return "Rejected by the recipient's filter"
	}
	return t
}

// replyCode returns the reply code of an error made by replyFor.
func replyCode(err error) (int, bool) {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se.Code, true
	}
	return 0, false
}
