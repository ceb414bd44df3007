package mailauth

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"blitiri.com.ar/go/spf"
	"github.com/emersion/go-msgauth/authres"
	"github.com/emersion/go-msgauth/dmarc"

	"tern/common/config"
	"tern/common/dns"
	"tern/common/dns/dnstest"
)

func TestOrgDomainAndAlignment(t *testing.T) {
	for in, want := range map[string]string{
		"mail.example.com":  "example.com",
		"a.b.example.co.uk": "example.co.uk",
		"example.com.":      "example.com",
		"com":               "com",
		"Sub.Sender.TEST":   "sender.test",
	} {
		if got := OrgDomain(in); got != want {
			t.Errorf("OrgDomain(%q) = %q, want %q", in, got, want)
		}
	}
	cases := []struct {
		a, f  string
		mode  dmarc.AlignmentMode
		match bool
	}{
		{"example.com", "example.com", dmarc.AlignmentStrict, true},
		{"mail.example.com", "example.com", dmarc.AlignmentStrict, false},
		{"mail.example.com", "example.com", dmarc.AlignmentRelaxed, true},
		{"example.co.uk", "other.co.uk", dmarc.AlignmentRelaxed, false},
		{"evil.test", "example.com", dmarc.AlignmentRelaxed, false},
		{"", "example.com", dmarc.AlignmentRelaxed, false},
	}
	for _, c := range cases {
		if got := Aligned(c.a, c.f, c.mode); got != c.match {
			t.Errorf("Aligned(%q, %q, %s) = %v", c.a, c.f, c.mode, got)
		}
	}
}

func TestFromDomain(t *testing.T) {
	for _, c := range []struct {
		fields []string
		want   string
		ok     bool
	}{
		{[]string{"Alice <alice@Example.COM>"}, "example.com", true},
		{[]string{" alice@example.com"}, "example.com", true},
		{[]string{`"Odd, Name" <x@sender.test>`}, "sender.test", true},
		{[]string{"a@one.test, b@two.test"}, "", false},
		{[]string{"a@one.test", "b@two.test"}, "", false},
		{nil, "", false},
		{[]string{"undisclosed"}, "", false},
	} {
		got, ok := FromDomain(c.fields)
		if got != c.want || ok != c.ok {
			t.Errorf("FromDomain(%q) = %q, %v", c.fields, got, ok)
		}
	}
}

func TestAuthservID(t *testing.T) {
	for in, want := range map[string]string{
		" mx.example.test; spf=pass":            "mx.example.test",
		"(comment (nested)) MX.Example.Test 1;": "mx.example.test",
		"\r\n\tmx.example.test;":                "mx.example.test",
		`"mx.example.test"; none`:               "mx.example.test",
		"mx.example.test":                       "mx.example.test",
		"(unterminated":                         "",
		"":                                      "",
	} {
		if got := AuthservID(in); got != want {
			t.Errorf("AuthservID(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestFieldParses: the header we write reads back with go-msgauth's
// parser, every method and property in place.
func TestFieldParses(t *testing.T) {
	r := Result{
		SPF:   SPFResult{Result: spf.Pass, Domain: "sender.test"},
		DKIM:  []DKIMResult{{Result: "pass", Domain: "sender.test", Selector: "s1", B: "ab/+cd=="}, {Result: "fail", Domain: "other.test", Selector: "x", Reason: "signature did not verify"}},
		DMARC: DMARCResult{Result: "pass", FromDomain: "sender.test", Policy: dmarc.PolicyReject, Disposition: dmarc.PolicyNone},
	}
	f := r.Field("mx.tern.test")
	name, value, _ := strings.Cut(f, ": ")
	if name != "Authentication-Results" || !strings.HasSuffix(f, "\r\n") {
		t.Fatalf("field %q", f)
	}
	for _, l := range strings.Split(strings.TrimSuffix(value, "\r\n"), "\r\n")[1:] {
		if !strings.HasPrefix(l, "\t") {
			t.Fatalf("continuation line %q not folded", l)
		}
	}
	unfolded := strings.ReplaceAll(strings.TrimSuffix(value, "\r\n"), "\r\n", "")
	id, results, err := authres.Parse(unfolded)
	if err != nil || id != "mx.tern.test" || len(results) != 4 {
		t.Fatalf("Parse(%q) = %q, %d results, %v", unfolded, id, len(results), err)
	}
	if g, ok := results[1].(*authres.DKIMResult); !ok || g.Value != "pass" || g.Domain != "sender.test" {
		t.Fatalf("dkim result %#v", results[1])
	}
	if d, ok := results[3].(*authres.DMARCResult); !ok || d.Value != "pass" || d.From != "sender.test" {
		t.Fatalf("dmarc result %#v", results[3])
	}
	if !strings.Contains(f, `header.b="ab/+cd=="`) || !strings.Contains(f, "dmarc=pass (p=reject dis=none) header.from=sender.test") {
		t.Fatalf("field %q", f)
	}
	none := Result{SPF: SPFResult{Result: spf.None, Domain: "h.test", Helo: true}, DMARC: DMARCResult{Result: "none", FromDomain: "x.test"}}.Field("id")
	if !strings.Contains(none, "spf=none smtp.helo=h.test") || !strings.Contains(none, "dkim=none") {
		t.Fatalf("field %q", none)
	}
}

// TestDMARCPolicies runs the DMARC evaluation against a real DNS server
// (nsd): subdomain policy, the organizational domain's record, strict
// alignment and pct= sampling.
func TestDMARCPolicies(t *testing.T) {
	addr := dnstest.Start(t, map[string]string{
		"org.test": `@ IN TXT "v=spf1 ip4:192.0.2.1 -all"
_dmarc IN TXT "v=DMARC1; p=reject; sp=quarantine"
strict IN TXT "v=spf1 ip4:192.0.2.1 -all"
_dmarc.strict IN TXT "v=DMARC1; p=reject; aspf=s"
sampled IN TXT "v=spf1 -all"
_dmarc.sampled IN TXT "v=DMARC1; p=reject; pct=10"
broken IN TXT "v=spf1 -all"
_dmarc.broken IN TXT "v=DMARC1; p=bogus"`,
		"plain.test": `@ IN TXT "v=spf1 -all"`,
	})
	c := &Checker{Resolver: dns.New(config.DNS{Resolver: addr, Timeout: config.Duration(2 * time.Second)}),
		Timeout: 2 * time.Second, MaxVerifications: 5, Sample: func(int) bool { return false }}
	ip := net.ParseIP("192.0.2.1")
	other := net.ParseIP("198.51.100.7")
	for _, tc := range []struct {
		name       string
		ip         net.IP
		mailFrom   string
		from       string
		result     string
		policy     dmarc.Policy
		dispostion dmarc.Policy
	}{
		{"org record, SPF aligned relaxed", ip, "bounce@org.test", "a@mail.org.test", "pass", "quarantine", "none"},
		{"subdomain policy sp=", other, "bounce@org.test", "a@mail.org.test", "fail", "quarantine", "quarantine"},
		{"org domain policy p=", other, "bounce@org.test", "a@org.test", "fail", "reject", "reject"},
		{"strict alignment refuses the parent", ip, "bounce@org.test", "a@strict.org.test", "fail", "reject", "reject"},
		{"pct sampled out lowers reject to quarantine", other, "x@sampled.org.test", "a@sampled.org.test", "fail", "reject", "quarantine"},
		{"unparseable record", other, "x@broken.org.test", "a@broken.org.test", "permerror", "", ""},
		{"no record anywhere", other, "x@plain.test", "a@plain.test", "none", "", ""},
		{"DNS server refuses: temperror", other, "x@unserved.test", "a@unserved.test", "temperror", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := Input{IP: tc.ip, Helo: "client.test", MailFrom: tc.mailFrom, FromFields: []string{tc.from}}
			r := c.Check(context.Background(), in, strings.NewReader("From: "+tc.from+"\r\n\r\nbody\r\n"))
			if r.DMARC.Result != tc.result || r.DMARC.Policy != tc.policy || r.DMARC.Disposition != tc.dispostion {
				t.Fatalf("DMARC = %+v (SPF %+v), want %s p=%s dis=%s", r.DMARC, r.SPF, tc.result, tc.policy, tc.dispostion)
			}
		})
	}
}

func FuzzAuthservID(f *testing.F) {
	for _, s := range []string{"mx.example.test; spf=pass", "(a(b)c) id;", "\"q\"", "(\\)", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id := AuthservID(s)
		if strings.ContainsAny(id, " \t\r\n;()") {
			t.Fatalf("AuthservID(%q) = %q contains a delimiter", s, id)
		}
	})
}

func FuzzParseTags(f *testing.F) {
	for _, s := range []string{"v=1; a=rsa-sha256; d=example.test; s=sel;\r\n\tb=abc\r\n def", ";;=;a==b", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for k, v := range ParseTags(s) {
			if k == "" || strings.ContainsAny(v, " \t\r\n") {
				t.Fatalf("ParseTags(%q): %q=%q", s, k, v)
			}
		}
	})
}

func FuzzFromDomain(f *testing.F) {
	for _, s := range []string{"Alice <a@example.test>", "a@b", "<>", "\"x\" <@>", "a@b, c@d", "<@.>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, ok := FromDomain([]string{s})
		if ok && (d == "" || strings.ContainsAny(d, "@<> \t")) {
			t.Fatalf("FromDomain(%q) = %q", s, d)
		}
	})
}
