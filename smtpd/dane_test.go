package main

import (
	"crypto/sha256"
	"crypto/tls"
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

// daneWorld is a real DNSSEC chain on loopback (zones signed with
// ldns-signzone, served by nsd, validated by unbound with their keys as
// trust anchors) and the MX hosts its TLSA records describe, all on one
// port: a second tern (127.0.0.1) with the certificate, a server without
// STARTTLS (127.0.0.2: an attacker stripped it), and two go-smtp servers
// with the certificate, one announcing REQUIRETLS (127.0.0.3) and one not
// (127.0.0.4).
type daneWorld struct {
	resolver  string
	port      string
	sinkB     *lmtpSink
	stripped  *remoteMX
	rtls      *remoteMX
	norequire *remoteMX
}

var daneDomains = []string{"ok-ee.test", "ok-ta.test", "wrong.test", "strip.test", "bogus.test", "plain.test",
	"rtls.test", "norequire.test"}

func startDANEWorld(t *testing.T) *daneWorld {
	t.Helper()
	ca := testpki.New(t, "tern test CA")
	var mxNames []string
	for _, d := range daneDomains {
		mxNames = append(mxNames, "mx."+d)
	}
	cert := ca.Issue(t, mxNames...)
	spki := sha256.Sum256(cert.Leaf.RawSubjectPublicKeyInfo)
	caHash := sha256.Sum256(ca.Cert.Raw)
	wrong := sha256.Sum256([]byte("not the key"))
	ee := "3 1 1 " + hex.EncodeToString(spki[:])

	mxAddr := freeAddr(t)
	_, port, _ := net.SplitHostPort(mxAddr)
	w := &daneWorld{port: port}
	zone := func(ip, rdata string) string {
		return fmt.Sprintf("@ IN MX 10 mx\nmx IN A %s\n_%s._tcp.mx IN TLSA %s", ip, port, rdata)
	}
	w.resolver = dnstest.StartValidating(t, map[string]dnstest.Zone{
		"ok-ee.test": {Records: zone("127.0.0.1", ee), Signed: true},
		"ok-ta.test": {Records: zone("127.0.0.1", "2 0 1 "+hex.EncodeToString(caHash[:])), Signed: true},
		"wrong.test": {Records: zone("127.0.0.1", "3 1 1 "+hex.EncodeToString(wrong[:])), Signed: true},
		"strip.test": {Records: zone("127.0.0.2", ee), Signed: true},
		"bogus.test": {Records: zone("127.0.0.1", ee), Signed: true, Tamper: func(s string) string {
			// Change the TLSA record after signing: its RRSIG no longer
			// verifies and unbound answers SERVFAIL.
			return strings.Replace(s, hex.EncodeToString(spki[:]), hex.EncodeToString(wrong[:]), 1)
		}},
		"plain.test":     {Records: zone("127.0.0.1", "3 1 1 "+hex.EncodeToString(wrong[:]))},
		"rtls.test":      {Records: zone("127.0.0.3", ee), Signed: true},
		"norequire.test": {Records: zone("127.0.0.4", ee), Signed: true},
	})

	w.sinkB = startPeerTern(t, mxAddr, cert, daneDomains, "bob")
	w.stripped = startRemoteMXWith(t, "127.0.0.2:"+port, func(s *smtp.Server) { s.TLSConfig = nil })
	withCert := func(rtls bool) func(s *smtp.Server) {
		return func(s *smtp.Server) {
			s.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
			s.EnableREQUIRETLS = rtls
		}
	}
	w.rtls = startRemoteMXWith(t, "127.0.0.3:"+port, withCert(true))
	w.norequire = startRemoteMXWith(t, "127.0.0.4:"+port, withCert(false))
	return w
}

// startPeerTern starts a second tern as the MX of domains, listening on
// mxAddr with cert, with the users local@domain for each local given; it
// returns the LMTP sink its deliveries go to.
func startPeerTern(t *testing.T, mxAddr string, cert tls.Certificate, domains []string, locals ...string) *lmtpSink {
	t.Helper()
	cfg := newTestConfig(t, "")
	cfg.SMTPD.MX = []string{mxAddr}
	cfg.Domains = append(cfg.Domains, domains...)
	users, err := os.OpenFile(cfg.Users, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range domains {
		for _, l := range locals {
			fmt.Fprintf(users, "%s@%s:{PLAIN}x\n", l, d)
		}
	}
	users.Close()
	testpki.WriteFiles(t, cert, cfg.TLS.Cert, cfg.TLS.Key)
	sink := startLMTP(t, cfg)
	startSMTPD(t, cfg)
	return sink
}

// sender is a tern that trusts the world's validating resolver.
func (w *daneWorld) sender(t *testing.T) (*testEnv, *lmtpSink) {
	t.Helper()
	cfg := newTestConfig(t, "")
	cfg.DNS = config.DNS{Resolver: w.resolver, Timeout: config.Duration(3 * time.Second), DNSSEC: true}
	cfg.SMTPD.RemotePort, _ = strconv.Atoi(w.port)
	sink := startLMTP(t, cfg)
	return startSMTPD(t, cfg), sink
}

// TestDANE delivers from one tern to a second tern's MX, whose
// certificate the TLSA records describe (RFC 7672): a matching DANE-EE or
// DANE-TA record → delivered over TLS; a wrong record, a stripped
// STARTTLS or a bogus signature → deferred with the reason; an unsigned
// zone → opportunistic TLS as before.
func TestDANE(t *testing.T) {
	w := startDANEWorld(t)
	a, _ := w.sender(t)
	port := w.port
	for _, d := range []string{"ok-ee.test", "ok-ta.test", "wrong.test", "strip.test", "bogus.test", "plain.test"} {
		if err := submit(t, a.addr(kindSubmission), "demo", "demo", "demo@example.test", []string{"bob@" + d},
			"Subject: dane "+d+"\r\n\r\nx\r\n", nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"ok-ee.test", "ok-ta.test", "plain.test"} {
		waitFor(t, 15*time.Second, "delivery to "+d, func() bool { return len(w.sinkB.messages("bob@"+d)) == 1 })
		// RFC 3848: the receiving tern says ESMTPS when TLS was used.
		if m := w.sinkB.messages("bob@" + d)[0]; !strings.Contains(m, "with ESMTPS id") {
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
		if n := len(w.sinkB.messages("bob@" + d)); n != 0 {
			t.Errorf("%s: delivered against its DANE records", d)
		}
	}
	if n := len(w.stripped.messages()); n != 0 {
		t.Errorf("the server without STARTTLS got %d messages", n)
	}
}

// RFC 8689: REQUIRETLS only on a TLS session; delivered, with the
// parameter, over DANE to next hops that announce it (a second tern and a
// go-smtp server); returned to the sender (5.7.30, headers only) for a
// domain without DANE or MTA-STS and for a next hop without REQUIRETLS;
// "TLS-Required: No" delivers despite a wrong TLSA record.
func TestREQUIRETLS(t *testing.T) {
	w := startDANEWorld(t)
	a, sinkA := w.sender(t)
	// Not on a session without TLS (loopback allows AUTH in clear).
	c := dialRaw(t, a.addr(kindSubmission))
	if ehlo := c.cmd("EHLO rtls.test", "250"); strings.Contains(ehlo, "REQUIRETLS") {
		t.Errorf("REQUIRETLS offered before STARTTLS:\n%s", ehlo)
	}
	c.cmd("AUTH PLAIN AGRlbW9AZXhhbXBsZS50ZXN0AGRlbW8=", "235")
	c.cmd("MAIL FROM:<demo@example.test> REQUIRETLS", "530 5.7.10")
	// Offered and taken on implicit TLS (port 465).
	tc, err := tls.Dial("tcp", a.addr(kindSubmissions), clientTLS)
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	ic := &rawConn{t: t, c: tc, r: newReader(tc)}
	ic.expect("220")
	if ehlo := ic.cmd("EHLO rtls.test", "250"); !strings.Contains(ehlo, "REQUIRETLS") {
		t.Errorf("465 does not offer REQUIRETLS:\n%s", ehlo)
	}
	ic.cmd("AUTH PLAIN AGRlbW9AZXhhbXBsZS50ZXN0AGRlbW8=", "235")
	ic.cmd("MAIL FROM:<demo@example.test> REQUIRETLS", "250")

	body := "Subject: secret\r\n\r\nsecret body\r\n"
	for _, d := range []string{"ok-ee.test", "rtls.test", "plain.test", "norequire.test"} {
		if err := submitWith(t, a.addr(kindSubmission), "demo", "demo", "demo@example.test", []string{"bob@" + d}, body,
			&smtp.MailOptions{RequireTLS: true, EnvelopeID: "rtls-" + d}, nil); err != nil {
			t.Fatalf("%s: %v", d, err)
		}
	}
	optional := "TLS-Required: No\r\nSubject: not secret\r\n\r\nx\r\n"
	if err := submit(t, a.addr(kindSubmission), "demo", "demo", "demo@example.test", []string{"bob@wrong.test"}, optional, nil); err != nil {
		t.Fatal(err)
	}

	waitFor(t, 15*time.Second, "delivery to the second tern", func() bool { return len(w.sinkB.messages("bob@ok-ee.test")) == 1 })
	waitFor(t, 15*time.Second, "delivery to the go-smtp MX", func() bool { return len(w.rtls.messages()) == 1 })
	w.rtls.mu.Lock()
	if !w.rtls.requireTLS[0] || !w.rtls.gotTLS[0] {
		t.Errorf("the next hop saw REQUIRETLS %v over TLS %v", w.rtls.requireTLS[0], w.rtls.gotTLS[0])
	}
	w.rtls.mu.Unlock()
	waitFor(t, 15*time.Second, "TLS-Required: No delivered", func() bool { return len(w.sinkB.messages("bob@wrong.test")) == 1 })

	waitFor(t, 15*time.Second, "two notices", func() bool { return len(sinkA.messages("demo@example.test")) == 2 })
	for _, m := range sinkA.messages("demo@example.test") {
		d := parseDSN(t, m)
		r := d.PerRecipient[0]
		if r.Get("Action") != "failed" || r.Get("Status") != "5.7.30" || !strings.Contains(r.Get("Diagnostic-Code"), "REQUIRETLS") {
			t.Errorf("notice: %v", r)
		}
		if d.Types[2] != "text/rfc822-headers" || strings.Contains(d.Returned, "secret body") {
			t.Errorf("a REQUIRETLS message returned whole:\n%s", d.Returned)
		}
	}
	if n := len(w.norequire.messages()); n != 0 {
		t.Errorf("the next hop without REQUIRETLS got %d messages", n)
	}
	if n := len(w.sinkB.messages("bob@plain.test")); n != 0 {
		t.Errorf("a REQUIRETLS message went to a domain without DANE or MTA-STS")
	}
}
