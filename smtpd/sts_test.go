package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	msgdkim "github.com/emersion/go-msgauth/dkim"

	"tern/common/config"
	"tern/common/dkim"
	"tern/common/dns/dnstest"
	"tern/common/queue"
	"tern/common/testpki"
	"tern/common/tlsrpt"
)

// stsWorld is a loopback internet for MTA-STS: nsd serving the domains'
// MX, _mta-sts and mta-sts records, one MX (with a certificate from a test
// CA that names only some MX hosts) and one HTTPS policy server.
type stsWorld struct {
	ca       *testpki.CA
	mxAddr   string
	sink     *lmtpSink // what the MX delivered
	resolver string
	policy   *http.Server
	port     int
}

// stsPolicies are the policies served, by domain.
var stsPolicies = map[string]string{
	"ok.test":      "version: STSv1\nmode: enforce\nmx: mx.ok.test\nmax_age: 86400\n",
	"badmx.test":   "version: STSv1\nmode: enforce\nmx: mx.elsewhere.test\nmax_age: 86400\n",
	"badcert.test": "version: STSv1\nmode: enforce\nmx: *.badcert.test\nmax_age: 86400\n",
	"testing.test": "version: STSv1\nmode: testing\nmx: mx.testing.test\nmax_age: 86400\n",
}

func startSTSWorld(t *testing.T) *stsWorld {
	t.Helper()
	w := &stsWorld{ca: testpki.New(t, "tern test CA")}
	zones := map[string]string{}
	var policyNames []string
	for d := range stsPolicies {
		zones[d] = "@ IN MX 10 mx\nmx IN A 127.0.0.1\n_mta-sts IN TXT \"v=STSv1; id=1\"\nmta-sts IN A 127.0.0.1\n" +
			"_smtp._tls IN TXT \"v=TLSRPTv1; rua=mailto:alice@example.test\""
		policyNames = append(policyNames, "mta-sts."+d)
	}
	w.resolver = dnstest.Start(t, zones)
	// The MX, a second tern, has a certificate valid for mx.ok.test only.
	var domains []string
	for d := range stsPolicies {
		domains = append(domains, d)
	}
	w.mxAddr = freeAddr(t)
	w.sink = startPeerTern(t, w.mxAddr, w.ca.Issue(t, "mx.ok.test"), domains, "a", "b", "c", "d", "e", "bob", "carol")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	w.port = l.Addr().(*net.TCPAddr).Port
	w.policy = &http.Server{
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{w.ca.Issue(t, policyNames...)}},
		Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			body, ok := stsPolicies[strings.TrimPrefix(r.Host, "mta-sts.")]
			if !ok || r.URL.Path != "/.well-known/mta-sts.txt" {
				http.NotFound(rw, r)
				return
			}
			rw.Header().Set("Content-Type", "text/plain")
			fmt.Fprint(rw, body)
		}),
	}
	go w.policy.ServeTLS(l, "", "")
	t.Cleanup(func() { w.policy.Close() })
	return w
}

// config points smtpd at the world: its DNS, the MX's port, the policy
// server's port and the test CA.
func (w *stsWorld) config(t *testing.T, cfg *config.Config) {
	cfg.DNS = config.DNS{Resolver: w.resolver, Timeout: config.Duration(2 * time.Second)}
	_, port, _ := net.SplitHostPort(w.mxAddr)
	cfg.SMTPD.RemotePort, _ = strconv.Atoi(port)
	cfg.SMTPD.MTASTSPort = w.port
	cfg.SMTPD.TLSCAFile = w.ca.WritePEM(t, t.TempDir())
}

// lastReply waits for a recorded attempt of the queued message to addr
// and returns its reply, the delay reason mailq shows.
func lastReply(t *testing.T, e *testEnv, addr string) string {
	t.Helper()
	var reply string
	waitFor(t, 10*time.Second, "an attempt for "+addr, func() bool {
		envs, _ := e.srv.queue.List()
		for _, env := range envs {
			for _, r := range env.Recipients {
				if a, ok := r.LastAttempt(); ok && r.Addr == addr && r.State == queue.Pending {
					reply = a.Reply
					return true
				}
			}
		}
		return false
	})
	return reply
}

// RFC 8461: enforce delivers only to a named MX over TLS with a valid
// certificate, else the message waits with the reason; testing delivers
// anyway; the cached policy holds after a restart with the policy server
// down.
func TestMTASTS(t *testing.T) {
	w := startSTSWorld(t)
	cfg := newTestConfig(t, "")
	w.config(t, cfg)
	startLMTP(t, cfg)
	e := startSMTPD(t, cfg)
	send := func(e *testEnv, to string) {
		t.Helper()
		if err := submit(t, e.addr(kindSubmission), "demo", "demo", "demo@example.test", []string{to},
			"Subject: sts "+to+"\r\n\r\nx\r\n", nil); err != nil {
			t.Fatal(err)
		}
	}
	delivered := func(to string) bool { return len(w.sink.messages(to)) > 0 }

	send(e, "bob@ok.test")
	waitFor(t, 10*time.Second, "delivery to ok.test", func() bool { return delivered("bob@ok.test") })
	// RFC 3848: the receiving tern says ESMTPS when TLS was used.
	if m := w.sink.messages("bob@ok.test")[0]; !strings.Contains(m, "with ESMTPS id") {
		t.Errorf("ok.test: delivered without TLS:\n%s", m)
	}

	send(e, "bob@badmx.test")
	if r := lastReply(t, e, "bob@badmx.test"); !strings.Contains(r, "MX host mx.badmx.test is not named by the MTA-STS policy of badmx.test (mode enforce") {
		t.Errorf("badmx.test: reason %q", r)
	}
	send(e, "bob@badcert.test")
	if r := lastReply(t, e, "bob@badcert.test"); !strings.Contains(r, "MTA-STS policy of badcert.test") ||
		!strings.Contains(r, "certificate-host-mismatch") {
		t.Errorf("badcert.test: reason %q", r)
	}
	send(e, "bob@testing.test")
	waitFor(t, 10*time.Second, "delivery to testing.test", func() bool { return delivered("bob@testing.test") })
	if delivered("bob@badmx.test") || delivered("bob@badcert.test") {
		t.Fatal("mail delivered against an enforce policy")
	}

	// Restart with the policy server down: the cached policies still
	// hold, the refusal and the delivery alike.
	e.stop()
	w.policy.Close()
	e2 := startSMTPD(t, cfg)
	e2.srv.queue.Flush("")
	send(e2, "carol@badmx.test")
	if r := lastReply(t, e2, "carol@badmx.test"); !strings.Contains(r, "not named by the MTA-STS policy") {
		t.Errorf("after restart: reason %q", r)
	}
	send(e2, "carol@ok.test")
	waitFor(t, 10*time.Second, "delivery to ok.test after restart", func() bool { return delivered("carol@ok.test") })
	if delivered("bob@badmx.test") || delivered("carol@badmx.test") {
		t.Fatal("mail delivered against a cached enforce policy")
	}
}

// RFC 8460: the results of a day of deliveries under MTA-STS policies
// become, at the next day (a simulated clock), one gzipped JSON report
// per policy domain, mailed to the rua address of its _smtp._tls record,
// counting the successes and each failure type.
func TestTLSReports(t *testing.T) {
	w := startSTSWorld(t)
	cfg := newTestConfig(t, "")
	w.config(t, cfg)
	// A DKIM key for example.test: the reports are signed with it.
	key, keyPEM, err := dkim.GenerateKey("ed25519")
	if err != nil {
		t.Fatal(err)
	}
	cfg.DKIM.Key = filepath.Join(t.TempDir(), "%d.key")
	if err := dkim.WriteKey(dkim.KeyPath(cfg.DKIM.Key, "example.test"), keyPEM); err != nil {
		t.Fatal(err)
	}
	txt, _ := dkim.TXTRecord(key)
	sink := startLMTP(t, cfg)
	e := startSMTPD(t, cfg)
	for _, to := range []string{"a@ok.test", "b@ok.test", "c@testing.test", "d@badcert.test", "e@badmx.test"} {
		if err := submit(t, e.addr(kindSubmission), "demo", "demo", "demo@example.test", []string{to},
			"Subject: report "+to+"\r\n\r\nx\r\n", nil); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "three deliveries", func() bool {
		return len(w.sink.messages("a@ok.test"))+len(w.sink.messages("b@ok.test"))+len(w.sink.messages("c@testing.test")) == 3
	})
	lastReply(t, e, "d@badcert.test")
	lastReply(t, e, "e@badmx.test")
	e.srv.queue.Hold(mustOneID(t, e, "d@badcert.test"))
	e.srv.queue.Hold(mustOneID(t, e, "e@badmx.test"))

	// Nothing is reported for a day that is not over.
	e.srv.courier.SendTLSReports(context.Background(), time.Now())
	time.Sleep(300 * time.Millisecond)
	if n := len(sink.messages("alice@example.test")); n != 0 {
		t.Fatalf("%d reports before the day ended", n)
	}
	e.srv.courier.SendTLSReports(context.Background(), time.Now().Add(24*time.Hour))
	waitFor(t, 10*time.Second, "four reports", func() bool { return len(sink.messages("alice@example.test")) == 4 })
	reports := map[string]*tlsrpt.Report{}
	for _, m := range sink.messages("alice@example.test") {
		// RFC 8460 5.3: DKIM-signed by the reporting domain.
		verifs, err := msgdkim.VerifyWithOptions(strings.NewReader(m), &msgdkim.VerifyOptions{
			LookupTXT: func(string) ([]string, error) { return []string{txt}, nil }})
		if err != nil || len(verifs) != 1 || verifs[0].Err != nil || verifs[0].Domain != "example.test" {
			t.Errorf("report signature: %+v %v", verifs, err)
		}
		rep, err := tlsrpt.ParseMail(strings.NewReader(m))
		if err != nil {
			t.Fatalf("%v\n%s", err, m)
		}
		if len(rep.Policies) != 1 || rep.Policies[0].Policy.Type != "sts" || rep.OrganizationName != "mail.example.test" {
			t.Fatalf("report %+v", rep)
		}
		reports[rep.Policies[0].Policy.Domain] = rep
		if day := rep.DateRange.Start; day.Format(time.DateOnly) != time.Now().UTC().Format(time.DateOnly) ||
			rep.DateRange.End.Sub(day) != 24*time.Hour-time.Second {
			t.Errorf("date range %+v", rep.DateRange)
		}
	}
	check := func(domain string, ok, failed int, failure string) {
		t.Helper()
		rep := reports[domain]
		if rep == nil {
			t.Fatalf("no report for %s", domain)
		}
		p := rep.Policies[0]
		if p.Summary.Successful != ok || (failed > 0 && p.Summary.Failed < failed) || (failed == 0 && p.Summary.Failed != 0) {
			t.Errorf("%s: summary %+v, want %d ok and %d failed", domain, p.Summary, ok, failed)
		}
		if failure != "" && (len(p.FailureDetails) == 0 || p.FailureDetails[0].ResultType != failure ||
			p.FailureDetails[0].FailedSessionCount != p.Summary.Failed) {
			t.Errorf("%s: failure details %+v, want %s", domain, p.FailureDetails, failure)
		}
		if p.Policy.Domain != domain || len(p.Policy.String) == 0 || p.Policy.String[0] != "version: STSv1" {
			t.Errorf("%s: policy %+v", domain, p.Policy)
		}
	}
	check("ok.test", 2, 0, "")
	check("testing.test", 0, 1, "certificate-host-mismatch")
	check("badcert.test", 0, 1, "certificate-host-mismatch")
	check("badmx.test", 0, 1, "validation-failure")
	if d := reports["testing.test"].Policies[0].FailureDetails[0]; d.ReceivingMXHostname != "mx.testing.test" ||
		d.ReceivingIP != "127.0.0.1" || d.SendingMTAIP != "127.0.0.1" {
		t.Errorf("failure detail %+v", d)
	}
	// The day is reported once.
	e.srv.courier.SendTLSReports(context.Background(), time.Now().Add(24*time.Hour))
	time.Sleep(500 * time.Millisecond)
	if n := len(sink.messages("alice@example.test")); n != 4 {
		t.Errorf("%d reports after a second run, want 4", n)
	}
}

// mustOneID is the queue id of the one message queued for addr.
func mustOneID(t *testing.T, e *testEnv, addr string) string {
	t.Helper()
	envs, _ := e.srv.queue.List()
	for _, env := range envs {
		if env.Recipients[0].Addr == addr {
			return env.ID
		}
	}
	t.Fatalf("no message for %s queued", addr)
	return ""
}
