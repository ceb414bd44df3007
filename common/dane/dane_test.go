package dane

import (
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"errors"
	"testing"
	"time"

	"tern/common/dns"
	"tern/common/testpki"
)

func TestVerify(t *testing.T) {
	ca := testpki.New(t, "tern test CA")
	cert := ca.Issue(t, "mx.dane.test")
	leaf := cert.Leaf
	caCert := ca.Cert
	chain := []*x509.Certificate{leaf, caCert}
	spki256 := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
	spki512 := sha512.Sum512(leaf.RawSubjectPublicKeyInfo)
	ca256 := sha256.Sum256(caCert.Raw)
	caSPKI := sha256.Sum256(caCert.RawSubjectPublicKeyInfo)
	wrong := sha256.Sum256([]byte("something else"))
	names := []string{"mx.dane.test"}
	now := time.Now()
	for _, c := range []struct {
		what  string
		rec   dns.TLSA
		names []string
		ok    bool
	}{
		{"3 1 1", dns.TLSA{Usage: 3, Selector: 1, MatchingType: 1, Data: spki256[:]}, names, true},
		{"3 1 2", dns.TLSA{Usage: 3, Selector: 1, MatchingType: 2, Data: spki512[:]}, names, true},
		{"3 0 0", dns.TLSA{Usage: 3, Selector: 0, MatchingType: 0, Data: leaf.Raw}, names, true},
		// DANE-EE ignores the names (RFC 7672 3.1.1).
		{"3 1 1 other name", dns.TLSA{Usage: 3, Selector: 1, MatchingType: 1, Data: spki256[:]}, []string{"x.test"}, true},
		{"2 0 1", dns.TLSA{Usage: 2, Selector: 0, MatchingType: 1, Data: ca256[:]}, names, true},
		{"2 1 1", dns.TLSA{Usage: 2, Selector: 1, MatchingType: 1, Data: caSPKI[:]}, names, true},
		// DANE-TA checks the names (RFC 7672 3.2.2).
		{"2 0 1 wrong name", dns.TLSA{Usage: 2, Selector: 0, MatchingType: 1, Data: ca256[:]}, []string{"mx.other.test"}, false},
		{"3 1 1 wrong data", dns.TLSA{Usage: 3, Selector: 1, MatchingType: 1, Data: wrong[:]}, names, false},
		{"2 0 1 of the leaf", dns.TLSA{Usage: 2, Selector: 1, MatchingType: 1, Data: spki256[:]}, names, false},
	} {
		err := Verify(chain, []dns.TLSA{c.rec}, c.names, now)
		if (err == nil) != c.ok {
			t.Errorf("%s: %v, want ok=%v", c.what, err, c.ok)
		}
		if err != nil && !errors.Is(err, ErrNoMatch) {
			t.Errorf("%s: %v is not ErrNoMatch", c.what, err)
		}
	}
	// An expired DANE-TA chain fails; DANE-EE ignores dates.
	late := now.Add(48 * time.Hour)
	if err := Verify(chain, []dns.TLSA{{Usage: 2, Selector: 0, MatchingType: 1, Data: ca256[:]}}, names, late); err == nil {
		t.Error("expired chain accepted under DANE-TA")
	}
	if err := Verify(chain, []dns.TLSA{{Usage: 3, Selector: 1, MatchingType: 1, Data: spki256[:]}}, names, late); err != nil {
		t.Errorf("DANE-EE with an expired leaf: %v", err)
	}
}

func TestUsable(t *testing.T) {
	recs := []dns.TLSA{{Usage: 0, Selector: 0, MatchingType: 1}, {Usage: 1, Selector: 1, MatchingType: 1},
		{Usage: 3, Selector: 2, MatchingType: 1}, {Usage: 3, Selector: 1, MatchingType: 3},
		{Usage: 2, Selector: 0, MatchingType: 1}, {Usage: 3, Selector: 1, MatchingType: 2}}
	if u := Usable(recs); len(u) != 2 || u[0].Usage != 2 || u[1].MatchingType != 2 {
		t.Errorf("Usable: %+v", u)
	}
}
