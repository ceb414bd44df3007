package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"tern/common/config"
	"tern/common/dns/dnstest"
	"tern/common/testpki"
)

// TestDANE runs a real DNSSEC chain on loopback (zones signed with
// ldns-signzone, served by nsd, validated by unbound with their keys as
// trust anchors) and delivers from one tern to a second tern's MX, whose
// certificate the TLSA records describe (RFC 7672): a matching DANE-EE or
// DANE-TA record → delivered over TLS; a wrong record, a stripped
// STARTTLS or a bogus signature → deferred with the reason; an unsigned
// zone → opportunistic TLS as before.
func TestDANE(t *testing.T) {
	ca := testpki.New(t, "tern test CA")
	domains := []string{"ok-ee.test", "ok-ta.test", "wrong.test", "strip.test", "bogus.test", "plain.test"}
	var mxNames []string
	for _, d := range domains {
		mxNames = append(mxNames, "mx."+d)
	}
	cert := ca.Issue(t, mxNames...)
	spki := sha256.Sum256(cert.Leaf.RawSubjectPublicKeyInfo)
	caHash := sha256.Sum256(ca.Cert.Raw)
	wrong := sha256.Sum256([]byte("not the key"))
	ee := "3 1 1 " + hex.EncodeToString(spki[:])

	// The receiving tern listens on 127.0.0.1:port; a server without
	// STARTTLS (an attacker who stripped it) on 127.0.0.2, same port.
	mxAddr := freeAddr(t)
	_, port, _ := net.SplitHostPort(mxAddr)
	tlsa := func(rdata string) string { return fmt.Sprintf("_%s._tcp.mx IN TLSA %s", port, rdata) }
	zone := func(ip, rdata string) string {
		return fmt.Sprintf("@ IN MX 10 mx\nmx IN A %s\n%s", ip, tlsa(rdata))
	}
	resolver := dnstest.StartValidating(t, map[string]dnstest.Zone{
		"ok-ee.test": {Records: zone("127.0.0.1", ee), Signed: true},
		"ok-ta.test": {Records: zone("127.0.0.1", "2 0 1 "+hex.EncodeToString(caHash[:])), Signed: true},
		"wrong.test": {Records: zone("127.0.0.1", "3 1 1 "+hex.EncodeToString(wrong[:])), Signed: true},
		"strip.test": {Records: zone("127.0.0.2", ee), Signed: true},
		"bogus.test": {Records: zone("127.0.0.1", ee), Signed: true, Tamper: func(s string) string {
			// Change the TLSA record after signing: its RRSIG no longer
			// verifies and unbound answers SERVFAIL.
			h := hex.EncodeToString(spki[:])
			return strings.Replace(s, h, hex.EncodeToString(wrong[:]), 1)
		}},
		"plain.test": {Records: zone("127.0.0.1", "3 1 1 "+hex.EncodeToString(wrong[:]))},
	})

	cfgB := newTestConfig(t, "")
	cfgB.SMTPD.MX = []string{mxAddr}
	cfgB.Domains = append(cfgB.Domains, domains...)
	users, err := os.OpenFile(cfgB.Users, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range domains {
		fmt.Fprintf(users, "bob@%s:{PLAIN}bob\n", d)
	}
	users.Close()
	testpki.WriteFiles(t, cert, cfgB.TLS.Cert, cfgB.TLS.Key)
	sinkB := startLMTP(t, cfgB)
	startSMTPD(t, cfgB)
	stripped := startRemoteMXWith(t, "127.0.0.2:"+port, func(s *smtp.Server) { s.TLSConfig = nil })

	cfgA := newTestConfig(t, "")
	cfgA.DNS = config.DNS{Resolver: resolver, Timeout: config.Duration(3 * time.Second), DNSSEC: true}
	cfgA.SMTPD.RemotePort, _ = strconv.Atoi(port)
	startLMTP(t, cfgA)
	a := startSMTPD(t, cfgA)
	for _, d := range domains {
		if err := submit(t, a.addr(kindSubmission), "demo", "demo", "demo@example.test", []string{"bob@" + d},
			"Subject: dane "+d+"\r\n\r\nx\r\n", nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"ok-ee.test", "ok-ta.test", "plain.test"} {
		waitFor(t, 15*time.Second, "delivery to "+d, func() bool { return len(sinkB.messages("bob@"+d)) == 1 })
		// RFC 3848: the receiving tern says ESMTPS when TLS was used.
		if m := sinkB.messages("bob@" + d)[0]; !strings.Contains(m, "with ESMTPS id") {
			t.Errorf("%s: delivered without TLS:\n%s", d, m)
		}
	}
	for d, want := range map[string]string{
		"wrong.test": "DANE policy of wrong.test (TLSA records of _" + port + "._tcp.mx.wrong.test) requires TLS with a valid certificate: mx.wrong.test: tlsa-invalid",
		"strip.test": "DANE policy of strip.test (TLSA records of _" + port + "._tcp.mx.strip.test) requires TLS with a valid certificate: mx.strip.test: starttls-not-supported",
		"bogus.test": "DANE: TLSA lookup of MX host mx.bogus.test",
	} {
		if r := lastReply(t, a, "bob@"+d); !strings.Contains(r, want) {
			t.Errorf("%s: reason %q, want %q", d, r, want)
		}
		if n := len(sinkB.messages("bob@" + d)); n != 0 {
			t.Errorf("%s: delivered against its DANE records", d)
		}
	}
	if n := len(stripped.messages()); n != 0 {
		t.Errorf("the server without STARTTLS got %d messages", n)
	}
}
