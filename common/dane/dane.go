// Package dane authenticates an SMTP server's certificate with its TLSA
// records, as RFC 7672 (DANE for SMTP) profiles RFC 6698: only the
// DANE-TA(2) and DANE-EE(3) usages, selectors Cert(0) and SPKI(1),
// matching types Full(0), SHA2-256(1) and SHA2-512(2).
package dane

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"

	"tern/common/dns"
)

// The TLSA fields of RFC 6698 2.1 and RFC 7218.
const (
	UsagePKIXTA = 0
	UsagePKIXEE = 1
	UsageDANETA = 2
	UsageDANEEE = 3

	SelectorCert = 0
	SelectorSPKI = 1

	MatchFull   = 0
	MatchSHA256 = 1
	MatchSHA512 = 2
)

// ErrNoMatch is returned when no usable TLSA record matches the chain.
var ErrNoMatch = errors.New("dane: no TLSA record matches the server's certificate")

// Usable returns the records an SMTP client may use (RFC 7672 3.1.3:
// PKIX-TA and PKIX-EE are not; unknown parameters are not, RFC 7671 4).
func Usable(recs []dns.TLSA) []dns.TLSA {
	var out []dns.TLSA
	for _, r := range recs {
		if (r.Usage == UsageDANETA || r.Usage == UsageDANEEE) &&
			(r.Selector == SelectorCert || r.Selector == SelectorSPKI) &&
			(r.MatchingType == MatchFull || r.MatchingType == MatchSHA256 || r.MatchingType == MatchSHA512) {
			out = append(out, r)
		}
	}
	return out
}

// matches reports whether the record's data matches cert.
func matches(r dns.TLSA, cert *x509.Certificate) bool {
	var data []byte
	switch r.Selector {
	case SelectorCert:
		data = cert.Raw
	case SelectorSPKI:
		data = cert.RawSubjectPublicKeyInfo
	default:
		return false
	}
	switch r.MatchingType {
	case MatchFull:
	case MatchSHA256:
		h := sha256.Sum256(data)
		data = h[:]
	case MatchSHA512:
		h := sha512.Sum512(data)
		data = h[:]
	default:
		return false
	}
	return bytes.Equal(data, r.Data)
}

// Verify checks the server's chain (leaf first, as presented) against the
// usable records recs. names are the reference identifiers (RFC 7672
// 3.2.2: the TLSA base domain, the MX host name, and optionally the
// next-hop domain), checked only for DANE-TA.
//
// DANE-EE(3) (RFC 7672 3.1.1): the leaf matches; neither its names nor its
// validity dates are checked. DANE-TA(2) (RFC 7672 3.1.2): a certificate
// of the presented chain matches, and the leaf chains to it, is valid now
// and carries one of names. A trust anchor given only as a public key
// that is not in the chain is not supported.
func Verify(chain []*x509.Certificate, recs []dns.TLSA, names []string, now time.Time) error {
	if len(chain) == 0 {
		return errors.New("dane: the server sent no certificate")
	}
	leaf := chain[0]
	var taErr error
	for _, r := range recs {
		switch r.Usage {
		case UsageDANEEE:
			if matches(r, leaf) {
				return nil
			}
		case UsageDANETA:
			for i, c := range chain {
				if !matches(r, c) {
					continue
				}
				if i == 0 && !c.IsCA {
					continue // a TA record must name an issuer, not the leaf
				}
				if err := chainsTo(chain, c, names, now); err != nil {
					taErr = err
					continue
				}
				return nil
			}
		}
	}
	if taErr != nil {
		return fmt.Errorf("%w: %v", ErrNoMatch, taErr)
	}
	return ErrNoMatch
}

// chainsTo verifies the leaf up to the trust anchor ta, for one of names.
func chainsTo(chain []*x509.Certificate, ta *x509.Certificate, names []string, now time.Time) error {
	roots := x509.NewCertPool()
	roots.AddCert(ta)
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		if c != ta {
			inter.AddCert(c)
		}
	}
	var errs []string
	for _, n := range names {
		_, err := chain[0].Verify(x509.VerifyOptions{
			DNSName: strings.TrimSuffix(n, "."), Roots: roots, Intermediates: inter, CurrentTime: now,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
		})
		if err == nil {
			return nil
		}
		errs = append(errs, err.Error())
	}
	return fmt.Errorf("DANE-TA: %s", strings.Join(errs, "; "))
}
