package courier

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"time"

	"tern/common/dane"
	"tern/common/dns"
)

// daneHost is the DANE policy of one MX host (RFC 7672): its validated,
// usable TLSA records.
type daneHost struct {
	name  string // the TLSA owner, _port._tcp.host
	recs  []dns.TLSA
	names []string // reference identifiers for DANE-TA (RFC 7672 3.2.2)
}

// verify is the handshake's certificate check under DANE. With records
// present but none usable, TLS is still required but not authenticated
// (RFC 7672 2.2: "mandatory unauthenticated TLS").
func (d *daneHost) verify(cs tls.ConnectionState) error {
	if len(d.recs) == 0 {
		return nil
	}
	return dane.Verify(cs.PeerCertificates, d.recs, d.names, time.Now())
}

// forHost returns the policy for one MX host of o's domain: with DANE
// when the domain's MX records and the host's address and TLSA records
// are validated and TLSA records exist (RFC 7672 2.2). An error means the
// host must not be used now: its records could not be validated (bogus,
// RFC 7672 2.1.1) or looked up.
func (cr *Courier) forHost(ctx context.Context, o *outboundTLS, hop string) (*outboundTLS, error) {
	ho, err := cr.daneFor(ctx, o, hop)
	if err == nil && o != nil && o.requireTLS && ho.dane == nil && ho.sts == nil {
		host, _, _ := net.SplitHostPort(hop)
		return nil, fmt.Errorf("%w: neither DANE nor MTA-STS authenticates MX host %s of %s", errRequireTLS, host, o.domain)
	}
	return ho, err
}

// daneFor is forHost's DANE part.
func (cr *Courier) daneFor(ctx context.Context, o *outboundTLS, hop string) (*outboundTLS, error) {
	if o == nil || !o.mxSecure || cr.secure == nil {
		return o, nil
	}
	host, port, _ := net.SplitHostPort(hop)
	ctx, cancel := context.WithTimeout(ctx, 2*cr.cfg().DNS.Timeout.D())
	defer cancel()
	fail := func(what string, err error) (*outboundTLS, error) {
		cr.tlsOutcome(&outboundTLS{domain: o.domain, dane: &daneHost{name: host}}, host, nil, failDNSSEC, err)
		return nil, fmt.Errorf("%w: DANE: %s of MX host %s: %v", errPolicy, what, host, err)
	}
	secure, err := cr.secure.SecureAddrs(ctx, host)
	if err != nil {
		return fail("address lookup", err)
	}
	if !secure {
		return o, nil // RFC 7672 2.2.2: no TLSA lookup for an insecure host
	}
	recs, secure, err := cr.secure.LookupTLSA(ctx, host, port)
	if err != nil {
		// Bogus (dns.ErrBogus) or failed: either way the host's policy is
		// unknown, and it is not used (RFC 7672 2.2).
		return fail("TLSA lookup", err)
	}
	if !secure || len(recs) == 0 {
		return o, nil // no DANE: MTA-STS or opportunistic TLS as before
	}
	ho := *o
	ho.dane = &daneHost{name: "_" + port + "._tcp." + host, recs: dane.Usable(recs), names: []string{host, o.domain}}
	return &ho, nil
}
