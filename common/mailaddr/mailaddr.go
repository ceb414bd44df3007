// Package mailaddr parses envelope addresses, the one place that splits an
// address into its local part and domain: smtpd's receiver (relay and
// recipient checks), the courier (routing by domain), mailq (listing by
// domain).
package mailaddr

import (
	"errors"
	"net/netip"
	"strings"
)

// ErrMalformed: the address is not local@domain as Split requires.
var ErrMalformed = errors.New("malformed address")

// Split checks an envelope address as the protocol library parsed it
// (source routes already dropped, RFC 5321 4.1.1.3 and C) and returns the
// local part and the lower-case domain without a trailing dot. The domain
// is the part after the last '@'; it must be a host name (letters, digits,
// '-', '.', or UTF-8 for SMTPUTF8) or an address literal "[1.2.3.4]",
// "[IPv6:…]". Nothing in the local part is ever interpreted ('%', '!',
// quotes): relaying depends on the domain alone.
func Split(addr string) (local, domain string, err error) {
	i := strings.LastIndexByte(addr, '@')
	if i <= 0 || i == len(addr)-1 {
		return "", "", ErrMalformed
	}
	local, domain = addr[:i], strings.ToLower(addr[i+1:])
	if strings.ContainsAny(local, "\x00\r\n") || len(local) > 64*4 {
		return "", "", ErrMalformed
	}
	if strings.HasPrefix(domain, "[") {
		if !strings.HasSuffix(domain, "]") {
			return "", "", ErrMalformed
		}
		lit := domain[1 : len(domain)-1]
		lit, v6 := strings.CutPrefix(lit, "ipv6:")
		ip, perr := netip.ParseAddr(lit)
		if perr != nil || ip.Is6() != v6 || ip.Zone() != "" {
			return "", "", ErrMalformed
		}
		return local, domain, nil
	}
	domain = strings.TrimSuffix(domain, ".")
	if domain == "" || len(domain) > 255 {
		return "", "", ErrMalformed
	}
	for _, label := range strings.Split(domain, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return "", "", ErrMalformed
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r >= 0x80) {
				return "", "", ErrMalformed
			}
		}
	}
	return local, domain, nil
}

// Domain is the domain of addr, lower case and without a trailing dot, or
// "" when addr has none; unlike Split it checks nothing, for listing
// addresses already in the queue.
func Domain(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return strings.ToLower(strings.TrimSuffix(addr[i+1:], "."))
	}
	return ""
}

// Local is the local part of addr: what comes before its last '@' (a
// quoted local part may hold one), or all of addr when it has none.
func Local(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return addr[:i]
	}
	return addr
}
