package main

import (
	"github.com/emersion/go-message/textproto"
)

// envelopeRoutes gives the source routes of the ENVELOPE address lists
// (RFC 3501 7.4.2: an address is (name adl mailbox host), adl the route),
// which imap.Address has no field for. It returns, in ENVELOPE order
// (From, Sender, Reply-To, To, Cc, Bcc), one route per address of the list
// envelope(h) gives ("" where an address has none), or nil for a list with
// no route at all; the layer's encoder writes routes[i][j] as the adl of
// address j of list i, NIL when empty.
func envelopeRoutes(h textproto.Header) [6][]string {
	var out [6][]string
	for i, key := range []string{"From", "Sender", "Reply-To", "To", "Cc", "Bcc"} {
		v, ok := rawField(h, key)
		if !ok {
			continue
		}
		_, routes := parseAddresses(v)
		for _, r := range routes {
			if r != "" {
				out[i] = routes
				break
			}
		}
	}
	return out
}
