package e2e

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"tern/common/dns/dnstest"
)

// TestDANEReasonInMailq: the built smtpd, trusting a validating unbound
// ([dns] dnssec), defers mail to a domain whose TLSA record fails DNSSEC
// validation, and mailq shows why (RFC 7672 2.1.1).
func TestDANEReasonInMailq(t *testing.T) {
	tn := StartTern(t)
	tlsa := "_25._tcp.mx IN TLSA 3 1 1 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	resolver := dnstest.StartValidating(t, map[string]dnstest.Zone{
		"bogus.test": {Records: "@ IN MX 10 mx\nmx IN A 127.0.0.1\n" + tlsa, Signed: true,
			Tamper: func(s string) string { return strings.Replace(s, "0123456789abcdef", "f123456789abcdef", 1) }},
	})
	b, err := os.ReadFile(tn.Config)
	if err != nil {
		t.Fatal(err)
	}
	cfg := regexp.MustCompile(`(?m)^resolver = .*$`).ReplaceAllString(string(b),
		fmt.Sprintf("resolver = %q\ndnssec = true\ntimeout = \"3s\"", resolver))
	if err := os.WriteFile(tn.Config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	tn.Stop(t, "smtpd")
	tn.Start(t, "smtpd")
	mtaSubmit(t, tn.Submission, "demo@example.test", "bob@bogus.test",
		mtaMessage("demo@example.test", "bob@bogus.test", "to a bogus zone"))
	var listing string
	mtaWaitUntil(t, 20*time.Second, "the deferral in mailq", func() bool {
		listing = mtaMailq(t, tn)
		return strings.Contains(listing, "bob@bogus.test") && strings.Contains(listing, "DANE")
	})
	if !strings.Contains(listing, "DANE: TLSA lookup of MX host mx.bogus.test") || !strings.Contains(listing, "SERVFAIL") {
		t.Errorf("mailq does not say why:\n%s", listing)
	}
	t.Logf("mailq:\n%s", listing)
}
