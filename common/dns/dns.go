// Package dns gives tern's daemons their resolver: the system's, or the
// DNS server named by tern.toml's [dns] resolver, which air-gapped sites
// and tests use to serve their own MX, SPF, DKIM and DMARC records.
//
// Every lookup of smtpd (the queue runner's MX lookups and the SPF, DKIM
// and DMARC checks) goes through the one *net.Resolver returned by New.
package dns

import (
	"context"
	"errors"
	"net"

	"tern/common/config"
)

// New returns the resolver the configuration names: with [dns] resolver
// set, Go's own resolver sending every query to that server (UDP, and TCP
// for truncated answers, RFC 7766); otherwise net.DefaultResolver.
func New(c config.DNS) *net.Resolver {
	if c.Resolver == "" {
		return net.DefaultResolver
	}
	server, timeout := c.Resolver, c.Timeout.D()
	return &net.Resolver{
		PreferGo: true,
		// The address the resolver asks for comes from /etc/resolv.conf;
		// it is replaced here, the network (udp or tcp) is kept.
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			d := net.Dialer{Timeout: timeout}
			return d.DialContext(ctx, network, server)
		},
	}
}

// IsNotFound reports whether err says the name or the record does not
// exist (NXDOMAIN or no data), as opposed to a failure to find out.
func IsNotFound(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && de.IsNotFound
}
