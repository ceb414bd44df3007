package dns

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"tern/common/config"
	"tern/common/dns/dnstest"
)

// A real DNSSEC chain: the AD bit for a signed zone, none for an unsigned
// one, SERVFAIL (ErrBogus) for a broken signature.
func TestSecureLookups(t *testing.T) {
	tlsa := "_25._tcp.mx IN TLSA 3 1 1 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	addr := dnstest.StartValidating(t, map[string]dnstest.Zone{
		"signed.test":   {Records: "@ IN MX 10 mx\nmx IN A 127.0.0.1\n" + tlsa, Signed: true},
		"unsigned.test": {Records: "@ IN MX 10 mx\nmx IN A 127.0.0.1\n" + tlsa},
		"bogus.test": {Records: "@ IN MX 10 mx\nmx IN A 127.0.0.1\n" + tlsa, Signed: true,
			Tamper: func(s string) string { return strings.Replace(s, "0123456789abcdef", "f123456789abcdef", 1) }},
	})
	s := NewSecure(config.DNS{Resolver: addr, Timeout: config.Duration(3 * time.Second), DNSSEC: true})
	ctx := context.Background()
	if ok, err := s.SecureMX(ctx, "signed.test"); !ok || err != nil {
		t.Errorf("signed MX: %v %v", ok, err)
	}
	if ok, err := s.SecureAddrs(ctx, "mx.signed.test"); !ok || err != nil {
		t.Errorf("signed A: %v %v", ok, err)
	}
	recs, secure, err := s.LookupTLSA(ctx, "mx.signed.test", "25")
	if err != nil || !secure || len(recs) != 1 || recs[0].Usage != 3 || len(recs[0].Data) != 32 {
		t.Errorf("signed TLSA: %+v %v %v", recs, secure, err)
	}
	// A validated denial: no TLSA, securely.
	if recs, secure, err := s.LookupTLSA(ctx, "mail.signed.test", "25"); err != nil || !secure || len(recs) != 0 {
		t.Errorf("signed NXDOMAIN: %+v %v %v", recs, secure, err)
	}
	if ok, err := s.SecureMX(ctx, "unsigned.test"); ok || err != nil {
		t.Errorf("unsigned MX: %v %v", ok, err)
	}
	if _, secure, err := s.LookupTLSA(ctx, "mx.unsigned.test", "25"); secure || err != nil {
		t.Errorf("unsigned TLSA: %v %v", secure, err)
	}
	if _, _, err := s.LookupTLSA(ctx, "mx.bogus.test", "25"); !errors.Is(err, ErrBogus) {
		t.Errorf("bogus TLSA: %v, want ErrBogus", err)
	}
	// The MX of the bogus zone still validates: only the TLSA was broken.
	if a, err := s.Lookup(ctx, "bogus.test", mdns.TypeMX); err != nil || !a.Secure {
		t.Errorf("bogus zone's MX: %+v %v", a, err)
	}
	if NewSecure(config.DNS{Resolver: addr}) != nil {
		t.Error("a secure resolver without [dns] dnssec")
	}
}
