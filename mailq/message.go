package main

import (
	"bytes"
	"errors"
	"fmt"
	"net/mail"
	"strings"

	"tern/common/trace"
)

// The problems of an input message that make sendmail refuse it before
// connecting, so that nothing is half-sent.
var (
	errEmpty      = errors.New("the message is empty (0 bytes); nothing was sent")
	errNUL        = errors.New("the message contains NUL bytes (binary data); send binary content as a MIME attachment")
	errBareCR     = errors.New("the message contains a carriage return that does not end a line; such data is refused (RFC 5321 2.3.8)")
	errTooLarge   = errors.New("the message is larger than smtpd.max_message_size")
	errNoRcpt     = errors.New("no recipients: give them as arguments, or use -t to take them from the To, Cc and Bcc fields")
	errBadHeader  = errors.New("cannot parse the recipients of a header field")
	errLongLine   = errors.New("a line of the message is longer than smtpd.max_line_length allows")
	errBadAddress = errors.New("malformed address")
)

// message is a message read from standard input, made ready for SMTP.
type message struct {
	header     []string // the header fields, each with its continuation lines joined by CRLF
	body       []string // the lines after the header (the empty line excluded)
	hasHeader  bool     // the input started with header fields
	sawBlank   bool     // an empty line ended the header
	recipients []string // with -t: from To:, Cc: and Bcc:
}

// readMessage turns sendmail's input into a message. Lines end in LF or
// CRLF (one trailing CR is dropped); without -i a line holding only "."
// ends the input, as in the old sendmail. maxLine is the longest line
// smtpd takes, CRLF included.
func readMessage(in []byte, ignoreDots bool, maxLine int) (*message, error) {
	if len(in) == 0 {
		return nil, errEmpty
	}
	if bytes.IndexByte(in, 0) >= 0 {
		return nil, errNUL
	}
	in = bytes.TrimSuffix(in, []byte("\n"))
	lines := strings.Split(string(in), "\n")
	m := &message{}
	inHeader := true
	for n, l := range lines {
		l = strings.TrimSuffix(l, "\r")
		if strings.IndexByte(l, '\r') >= 0 {
			return nil, errBareCR
		}
		if !ignoreDots && l == "." {
			break
		}
		if len(l)+2 > maxLine {
			return nil, fmt.Errorf("%w (line %d, %d bytes)", errLongLine, n+1, len(l))
		}
		if inHeader {
			switch {
			case l == "":
				inHeader, m.sawBlank = false, true
				continue
			case (l[0] == ' ' || l[0] == '\t') && len(m.header) > 0:
				m.header[len(m.header)-1] += "\r\n" + l
				continue
			case isFieldLine(l):
				m.header = append(m.header, l)
				m.hasHeader = true
				continue
			}
			// Not a header field: the message has no header, or the
			// header ends here without an empty line.
			inHeader = false
		}
		m.body = append(m.body, l)
	}
	return m, nil
}

// isFieldLine: RFC 5322 2.2: a field name is printable ASCII but ':',
// then a colon.
func isFieldLine(l string) bool {
	i := strings.IndexByte(l, ':')
	if i <= 0 {
		return false
	}
	for _, c := range []byte(l[:i]) {
		if c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

func fieldName(f string) string {
	name, _, _ := strings.Cut(f, ":")
	return strings.ToLower(name)
}

func (m *message) has(name string) bool {
	for _, f := range m.header {
		if fieldName(f) == name {
			return true
		}
	}
	return false
}

// extract collects the recipients of To:, Cc: and Bcc: (sendmail -t).
// Unqualified names ("root") get domain.
func (m *message) extract(domain string) error {
	for _, f := range m.header {
		switch fieldName(f) {
		case "to", "cc", "bcc":
		default:
			continue
		}
		_, v, _ := strings.Cut(f, ":")
		addrs, err := parseAddressList(strings.ReplaceAll(v, "\r\n", ""), domain)
		if err != nil {
			return fmt.Errorf("%w %q: %v", errBadHeader, trace.Printable(f), err)
		}
		m.recipients = append(m.recipients, addrs...)
	}
	return nil
}

// dropBcc removes Bcc: fields: their recipients get the message, and no
// one sees who they are (RFC 5322 3.6.3).
func (m *message) dropBcc() {
	kept := m.header[:0]
	for _, f := range m.header {
		if fieldName(f) != "bcc" {
			kept = append(kept, f)
		}
	}
	m.header = kept
}

// bytes is the message as SMTP DATA content: CRLF line ends.
func (m *message) bytes() []byte {
	var b bytes.Buffer
	for _, f := range m.header {
		b.WriteString(f)
		b.WriteString("\r\n")
	}
	if m.hasHeader || m.sawBlank {
		b.WriteString("\r\n")
	}
	for _, l := range m.body {
		b.WriteString(l)
		b.WriteString("\r\n")
	}
	return b.Bytes()
}

// parseAddressList reads an address list of a header field, and also
// the bare local names scripts put in To: ("To: root, admin"), which get
// domain.
func parseAddressList(v, domain string) ([]string, error) {
	if strings.TrimSpace(v) == "" {
		return nil, nil
	}
	list, err := mail.ParseAddressList(v)
	if err == nil {
		out := make([]string, 0, len(list))
		for _, a := range list {
			out = append(out, a.Address)
		}
		return out, nil
	}
	var out []string
	for _, item := range strings.Split(v, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		a, qerr := qualify(item, domain)
		if qerr != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// qualify checks one address from the command line or a header, and
// gives an unqualified name ("root") the first local domain, where
// mailboxes and aliases live.
func qualify(a, domain string) (string, error) {
	a = strings.TrimSpace(a)
	if strings.HasPrefix(a, "<") && strings.HasSuffix(a, ">") {
		a = a[1 : len(a)-1]
	}
	if a == "" || strings.ContainsAny(a, " \t\r\n<>(),;\"\\") {
		return "", fmt.Errorf("%w: %q", errBadAddress, a)
	}
	if !strings.Contains(a, "@") {
		return a + "@" + domain, nil
	}
	if strings.HasPrefix(a, "@") || strings.HasSuffix(a, "@") {
		return "", fmt.Errorf("%w: %q", errBadAddress, a)
	}
	return a, nil
}

// fromField is the From: field sendmail -F adds to a message without one.
func fromField(fullName, addr string) string {
	return "From: " + (&mail.Address{Name: fullName, Address: addr}).String()
}
