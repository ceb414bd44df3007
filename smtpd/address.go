package main

import (
	"errors"
	"net/netip"
	"strings"
)

var errBadAddress = errors.New("smtpd: malformed address")

// splitAddr checks an envelope address as the protocol library parsed it
// (source routes already dropped, RFC 5321 4.1.1.3 and C) and returns the
// local part and the lower-case domain without a trailing dot. The domain
// is the part after the last '@'; it must be a host name (letters, digits,
// '-', '.', or UTF-8 for SMTPUTF8) or an address literal "[1.2.3.4]",
// "[IPv6:…]". Nothing in the local part is ever interpreted ('%', '!',
// quotes): relaying depends on the domain alone.
func splitAddr(addr string) (local, domain string, err error) {
	i := strings.LastIndexByte(addr, '@')
	if i <= 0 || i == len(addr)-1 {
		return "", "", errBadAddress
	}
	local, domain = addr[:i], strings.ToLower(addr[i+1:])
	if strings.ContainsAny(local, "\x00\r\n") || len(local) > 64*4 {
		return "", "", errBadAddress
	}
	if strings.HasPrefix(domain, "[") {
		if !strings.HasSuffix(domain, "]") {
			return "", "", errBadAddress
		}
		lit := domain[1 : len(domain)-1]
		lit, v6 := strings.CutPrefix(lit, "ipv6:")
		ip, perr := netip.ParseAddr(lit)
		if perr != nil || ip.Is6() != v6 || ip.Zone() != "" {
			return "", "", errBadAddress
		}
		return local, domain, nil
	}
	domain = strings.TrimSuffix(domain, ".")
	if domain == "" || len(domain) > 255 {
		return "", "", errBadAddress
	}
	for _, label := range strings.Split(domain, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return "", "", errBadAddress
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r >= 0x80) {
				return "", "", errBadAddress
			}
		}
	}
	return local, domain, nil
}
