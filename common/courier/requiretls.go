package courier

import (
	"bufio"
	"errors"
	"io"
	"net/textproto"
	"strings"
)

// REQUIRETLS (RFC 8689): a message submitted with the REQUIRETLS MAIL
// parameter is sent only over TLS whose certificate DANE or MTA-STS
// validates (an MTA-STS policy in testing mode counts as enforce), to a
// next hop that announces REQUIRETLS, and with the parameter; a domain
// with neither policy, or a next hop without REQUIRETLS, returns the
// message to its sender (5.7.30). A message with the header field
// "TLS-Required: No" (RFC 8689 5) ignores the DANE and MTA-STS policies
// of its recipients and uses opportunistic TLS.

// errRequireTLS marks a next hop that cannot take a REQUIRETLS message:
// nothing authenticates it, or it does not announce REQUIRETLS. It is a
// permanent failure: RFC 8689 5 returns the message (5.7.30).
var errRequireTLS = errors.New("REQUIRETLS")

// requireTLSStatus is RFC 8689 5's "REQUIRETLS support required".
const requireTLSStatus = "5.7.30"

// tlsRequiredNo reports whether the message header has "TLS-Required: No"
// (RFC 8689 5; the value is case-insensitive).
func tlsRequiredNo(r io.Reader) bool {
	h, _ := textproto.NewReader(bufio.NewReader(io.LimitReader(r, 1<<20))).ReadMIMEHeader()
	for _, v := range h.Values("Tls-Required") {
		if strings.EqualFold(strings.TrimSpace(v), "no") {
			return true
		}
	}
	return false
}
