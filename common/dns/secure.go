package dns

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	mdns "github.com/miekg/dns"

	"tern/common/config"
)

// ErrBogus is returned when the validating resolver answers SERVFAIL:
// the answer failed validation (RFC 4035 5.5) or could not be had. Either
// way nothing may be concluded, and DANE (RFC 7672 2.1.1) defers.
var ErrBogus = errors.New("dns: lookup failed or DNSSEC validation failed (SERVFAIL)")

// Secure asks the [dns] resolver directly, with the DO bit, and reads the
// AD bit of its answers: whether it validated them with DNSSEC. It is
// used only when [dns] dnssec says that resolver is trusted to validate.
type Secure struct {
	server  string
	timeout time.Duration
}

// NewSecure returns the secure resolver of the configuration, or nil when
// [dns] dnssec is off or no resolver is named (the system's resolver is
// not trusted to validate).
func NewSecure(c config.DNS) *Secure {
	if !c.DNSSEC || c.Resolver == "" {
		return nil
	}
	return &Secure{server: c.Resolver, timeout: c.Timeout.D()}
}

// Answer is the result of one secure lookup.
type Answer struct {
	RRs []mdns.RR // the records of the type asked for, in the answer section
	// Secure is the AD bit: the resolver validated the answer (or the
	// denial of existence).
	Secure bool
	// NotFound: NXDOMAIN or no records of the type.
	NotFound bool
}

// Lookup asks for name's records of type qtype (a miekg/dns type such as
// dns.TypeTLSA). A SERVFAIL is ErrBogus; other failures are errors too.
func (s *Secure) Lookup(ctx context.Context, name string, qtype uint16) (Answer, error) {
	m := new(mdns.Msg)
	m.SetQuestion(mdns.Fqdn(name), qtype)
	m.RecursionDesired = true
	m.AuthenticatedData = true
	m.SetEdns0(4096, true) // RFC 4035 3.2.1: DO, to get the AD bit back
	c := &mdns.Client{Timeout: s.timeout}
	r, _, err := c.ExchangeContext(ctx, m, s.server)
	if err == nil && r.Truncated {
		c.Net = "tcp" // RFC 7766
		r, _, err = c.ExchangeContext(ctx, m, s.server)
	}
	if err != nil {
		return Answer{}, fmt.Errorf("dns: %s %s: %w", mdns.TypeToString[qtype], name, err)
	}
	a := Answer{Secure: r.AuthenticatedData}
	switch r.Rcode {
	case mdns.RcodeSuccess:
	case mdns.RcodeNameError:
		a.NotFound = true
		return a, nil
	case mdns.RcodeServerFailure:
		return Answer{}, fmt.Errorf("%w: %s %s", ErrBogus, mdns.TypeToString[qtype], name)
	default:
		return Answer{}, fmt.Errorf("dns: %s %s: %s", mdns.TypeToString[qtype], name, mdns.RcodeToString[r.Rcode])
	}
	for _, rr := range r.Answer {
		if rr.Header().Rrtype == qtype {
			a.RRs = append(a.RRs, rr)
		}
	}
	a.NotFound = len(a.RRs) == 0
	return a, nil
}

// SecureMX reports whether the MX RRset of domain is validated: DANE
// applies to a domain's MX hosts only then (RFC 7672 2.2.1).
func (s *Secure) SecureMX(ctx context.Context, domain string) (bool, error) {
	a, err := s.Lookup(ctx, domain, mdns.TypeMX)
	return a.Secure, err
}

// SecureAddrs reports whether host's address records are validated (RFC
// 7672 2.2.2: TLSA records are looked up only for such hosts).
func (s *Secure) SecureAddrs(ctx context.Context, host string) (bool, error) {
	if net.ParseIP(host) != nil {
		return false, nil
	}
	secure := true
	found := false
	for _, t := range []uint16{mdns.TypeA, mdns.TypeAAAA} {
		a, err := s.Lookup(ctx, host, t)
		if err != nil {
			return false, err
		}
		if !a.NotFound {
			found = true
			secure = secure && a.Secure
		}
	}
	return found && secure, nil
}

// TLSA is one TLSA record (RFC 6698 2.1).
type TLSA struct {
	Usage, Selector, MatchingType uint8
	Data                          []byte
}

// LookupTLSA finds the TLSA records of _port._tcp.host (RFC 7672 2.2.3).
// secure reports whether the answer (records or their absence) was
// validated; a SERVFAIL is ErrBogus.
func (s *Secure) LookupTLSA(ctx context.Context, host string, port string) (recs []TLSA, secure bool, err error) {
	name := "_" + port + "._tcp." + strings.TrimSuffix(host, ".")
	a, err := s.Lookup(ctx, name, mdns.TypeTLSA)
	if err != nil {
		return nil, false, err
	}
	for _, rr := range a.RRs {
		t := rr.(*mdns.TLSA)
		data, err := hex.DecodeString(t.Certificate)
		if err != nil {
			continue // RFC 7672 2.2: a malformed record is unusable
		}
		recs = append(recs, TLSA{Usage: t.Usage, Selector: t.Selector, MatchingType: t.MatchingType, Data: data})
	}
	return recs, a.Secure, nil
}
