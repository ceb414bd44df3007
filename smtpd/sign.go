package main

import (
	"errors"

	"tern/common/dkim"
	"tern/common/mailaddr"
	"tern/common/mailauth"
)

// signing: mail submitted by a user (authenticated, or on the local
// submission socket) is DKIM-signed for its local domain.
func (s *session) signing() bool {
	return s.kind != kindMX && (s.authUser != "" || s.peer != nil)
}

// sign adds a DKIM-Signature (RFC 6376) for the domain of the From field
// when it is local and has a key, else for the envelope sender's local
// domain: the signature then vouches for the message as it leaves, and a
// DMARC check at the receiver passes when the domain is the author's.
// A domain without a key file is not signed; a broken key is logged, and
// the message goes unsigned rather than not at all.
func (s *session) sign(m *message) {
	cfg := s.srv.cfg()
	var domain string
	if d, ok := mailauth.FromDomain(m.h.values("From")); ok && cfg.IsLocalDomain(d) {
		domain = d
	} else if _, d, err := mailaddr.Split(s.from); err == nil && cfg.IsLocalDomain(d) {
		domain = d
	}
	if domain == "" {
		return
	}
	sig, err := dkim.SignFor(cfg.DKIM, domain, m.h.bytes(), m.bodyReader())
	if errors.Is(err, dkim.ErrNoKey) {
		s.log.Debug("no DKIM key, not signing", "domain", domain, "err", err)
		return
	}
	if err != nil {
		s.log.Error("DKIM signing", "domain", domain, "err", err)
		return
	}
	m.h = m.h.insert(0, field{name: "DKIM-Signature", raw: []byte(sig)})
	s.log.Debug("DKIM signed", "domain", domain, "selector", cfg.DKIM.Selector)
}
