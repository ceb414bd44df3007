package main

import "strings"

// addressField names the header fields that SEARCH FROM, TO, CC and BCC
// (and HEADER on them) search as addresses (RFC 3501 6.4.4).
var addressField = map[string]bool{
	"From": true, "To": true, "Cc": true, "Bcc": true,
	"Sender": true, "Reply-To": true,
}

// searchAddresses gives an address field's addresses in one normal form,
// "Name <local@domain>, …", which SEARCH matches besides the field's text.
// RFC 5322 3.2.2 lets comments and folding white space sit inside an
// address ("<user (comment)@ (comment) domain.org>"), and a client that
// searches FROM user@domain.org means that mailbox however it was
// written; a trailing comment ("user@domain.org (Real Name)") becomes the
// name, as Dovecot does, so searching the name finds it too. Group names
// stay searchable.
func searchAddresses(v string) string {
	var b strings.Builder
	for _, a := range parseAddressList(v) {
		if a.Name == "" && a.Mailbox == "" && a.Host == "" {
			continue // end of a group
		}
		if b.Len() > 0 {
			b.WriteString(", ")
		}
		if a.Name != "" {
			b.WriteString(a.Name)
			b.WriteString(" <")
		}
		b.WriteString(a.Mailbox)
		if a.Host != "" {
			b.WriteByte('@')
			b.WriteString(a.Host)
		}
		if a.Name != "" {
			b.WriteByte('>')
		}
	}
	return b.String()
}
