package mtasts

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"tern/common/config"
	"tern/common/dns"
	"tern/common/dns/dnstest"
	"tern/common/testpki"
)

func TestParse(t *testing.T) {
	// RFC 8461 3.2's example, with CRLF.
	doc := "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmx: backupmx.example.com\r\nmax_age: 604800\r\n"
	p, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if p.Mode != Enforce || len(p.MX) != 3 || p.MaxAge != 604800*time.Second {
		t.Fatalf("parsed %+v", p)
	}
	if p.String() != doc {
		t.Errorf("String:\n%q\nwant\n%q", p.String(), doc)
	}
	// LF line ends, spaces, unknown keys and a none policy without mx.
	if p, err := Parse([]byte("version:STSv1\nmode:  none\nmax_age: 0\nfuture_key: x\n")); err != nil || p.Mode != None {
		t.Errorf("none policy: %+v %v", p, err)
	}
	for _, bad := range []string{
		"",
		"mode: enforce\nmx: a.test\nmax_age: 1\n",                                                   // no version
		"version: STSv2\nmode: enforce\nmx: a.test\nmax_age: 1\n",                                   // version
		"version: STSv1\nmode: strict\nmx: a.test\nmax_age: 1\n",                                    // mode
		"version: STSv1\nmode: enforce\nmax_age: 1\n",                                               // no mx
		"version: STSv1\nmode: enforce\nmx: a.test\nmax_age: 31557601\n",                            // too long
		"version: STSv1\nmode: enforce\nmx: a.test\nmax_age: -1\n",                                  // negative
		"version: STSv1\nmode: enforce\nmx: a.test\n",                                               // no max_age
		"version: STSv1\nmode: enforce\nmx: a..test\nmax_age: 1\n",                                  // bad pattern
		"version: STSv1\nmode: enforce\nmx: *.*.test\nmax_age: 1\n",                                 // bad wildcard
		"version: STSv1\nmode: enforce\nmode: testing\nmx: a.test\nmax_age: 1\n",                    // twice
		"version: STSv1\nmode enforce\nmx: a.test\nmax_age: 1\n",                                    // no colon
		"version: STSv1\nmode: enforce\nmx: a.test\nmax_age: 1\n" + strings.Repeat("x: y\n", 20000), // too big
	} {
		if p, err := Parse([]byte(bad)); err == nil || !errors.Is(err, ErrSyntax) {
			t.Errorf("Parse(%.60q) = %+v, %v; want ErrSyntax", bad, p, err)
		}
	}
}

func TestMatch(t *testing.T) {
	p := &Policy{Mode: Enforce, MX: []string{"mail.example.com", "*.example.net"}}
	for host, want := range map[string]bool{
		"mail.example.com": true, "MAIL.Example.COM.": true, "mx1.example.net": true,
		"example.net": false, "a.b.example.net": false, "mail.example.com.evil": false, "xmail.example.com": false,
	} {
		if got := p.Match(host); got != want {
			t.Errorf("Match(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestParseRecord(t *testing.T) {
	if r, err := ParseRecord("v=STSv1; id=20160831085700Z;"); err != nil || r.ID != "20160831085700Z" {
		t.Errorf("RFC 8461 3.1 example: %+v %v", r, err)
	}
	if r, err := ParseRecord("v=STSv1;id=abc; ext=1"); err != nil || r.ID != "abc" {
		t.Errorf("extension field: %+v %v", r, err)
	}
	for _, bad := range []string{"v=STSv2; id=1", "id=1; v=STSv1", "v=STSv1;", "v=STSv1; id=a-b",
		"v=STSv1; id=" + strings.Repeat("a", 33), "v=STSv1; id=1; id=2"} {
		if _, err := ParseRecord(bad); err == nil {
			t.Errorf("ParseRecord(%q) accepted", bad)
		}
	}
}

// policyServer serves a policy over HTTPS with a test CA's certificate
// for mta-sts.DOMAIN, on 127.0.0.1.
type policyServer struct {
	srv  *http.Server
	port int
	body string
}

func startPolicyServer(t *testing.T, ca *testpki.CA, domain, body string, port int) *policyServer {
	t.Helper()
	addr := "127.0.0.1:0"
	if port != 0 {
		addr = fmt.Sprintf("127.0.0.1:%d", port)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	ps := &policyServer{port: l.Addr().(*net.TCPAddr).Port, body: body}
	cert := ca.Issue(t, "mta-sts."+domain)
	ps.srv = &http.Server{
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/.well-known/mta-sts.txt" || r.Host != "mta-sts."+domain {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("Content-Type", "text/plain")
			fmt.Fprint(w, ps.body)
		}),
	}
	go ps.srv.ServeTLS(l, "", "")
	t.Cleanup(func() { ps.srv.Close() })
	return ps
}

func TestSourceFetchCacheAndRestart(t *testing.T) {
	ca := testpki.New(t, "tern test CA")
	resolver := dnstest.Start(t, map[string]string{
		"sts.test":   "_mta-sts IN TXT \"v=STSv1; id=one\"\nmta-sts IN A 127.0.0.1",
		"wrong.test": "_mta-sts IN TXT \"v=STSv1; id=x\"\n_mta-sts IN TXT \"v=STSv1; id=y\"\nmta-sts IN A 127.0.0.1",
		"none.test":  "@ IN A 127.0.0.1",
	})
	doc := "version: STSv1\nmode: enforce\nmx: mx.sts.test\nmax_age: 86400\n"
	ps := startPolicyServer(t, ca, "sts.test", doc, 0)
	dir := t.TempDir()
	newSource := func(roots bool) *Source {
		cache, err := OpenCache(dir)
		if err != nil {
			t.Fatal(err)
		}
		f := &Fetcher{Resolver: dns.New(config.DNS{Resolver: resolver, Timeout: config.Duration(2 * time.Second)}),
			Port: ps.port, Timeout: 5 * time.Second}
		if roots {
			f.Roots = ca.Pool()
		}
		return &Source{Resolver: f.Resolver, Fetcher: f, Cache: cache}
	}
	ctx := context.Background()

	// Without the test CA the certificate is not trusted: no policy.
	r, err := newSource(false).Lookup(ctx, "sts.test")
	if err != nil || r.Policy != nil || r.FetchErr == nil || !strings.Contains(r.FetchErr.Error(), "certificate") {
		t.Fatalf("untrusted certificate: %+v %v", r, err)
	}
	s := newSource(true)
	r, err = s.Lookup(ctx, "sts.test")
	if err != nil || r.Policy == nil || r.Policy.Mode != Enforce || r.ID != "one" || r.FromCache {
		t.Fatalf("first lookup: %+v %v", r, err)
	}
	// Not exactly one record, or none: no policy.
	for _, d := range []string{"wrong.test", "none.test"} {
		if r, err := s.Lookup(ctx, d); err != nil || r.Policy != nil {
			t.Errorf("%s: %+v %v", d, r, err)
		}
	}
	// A restart (a new Source on the same directory) with the policy
	// server down uses the cached policy.
	ps.srv.Close()
	r, err = newSource(true).Lookup(ctx, "sts.test")
	if err != nil || r.Policy == nil || !r.FromCache || r.Policy.MX[0] != "mx.sts.test" {
		t.Fatalf("after restart, server down: %+v %v", r, err)
	}
	// Past max_age the cached policy is gone.
	late := newSource(true)
	late.Now = func() time.Time { return time.Now().Add(25 * time.Hour) }
	if r, _ := late.Lookup(ctx, "sts.test"); r.Policy != nil || r.FetchErr == nil {
		t.Errorf("expired cache used: %+v", r)
	}
	// A new policy with a new id is fetched and replaces the cached one.
	ps2 := startPolicyServer(t, ca, "sts.test", "version: STSv1\nmode: testing\nmx: *.sts.test\nmax_age: 60\n", ps.port)
	_ = ps2
	cache, _ := OpenCache(dir)
	e, err := cache.Get("sts.test")
	if err != nil || e.ID != "one" {
		t.Fatalf("cache entry: %+v %v", e, err)
	}
	e.ID = "old"
	if err := cache.Put("sts.test", e); err != nil {
		t.Fatal(err)
	}
	r, err = newSource(true).Lookup(ctx, "sts.test")
	if err != nil || r.Policy == nil || r.Policy.Mode != Testing || r.FromCache {
		t.Fatalf("changed id: %+v %v", r, err)
	}
}

func TestFetchRefusesRedirectAndWrongType(t *testing.T) {
	ca := testpki.New(t, "tern test CA")
	resolver := dnstest.Start(t, map[string]string{"r.test": "mta-sts IN A 127.0.0.1"})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mode atomic.Value
	mode.Store("redirect")
	srv := &http.Server{
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{ca.Issue(t, "mta-sts.r.test")}},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch mode.Load() {
			case "redirect":
				http.Redirect(w, r, "/other", http.StatusFound)
			case "html":
				w.Header().Set("Content-Type", "text/html")
				fmt.Fprint(w, "version: STSv1\nmode: enforce\nmx: a.test\nmax_age: 1\n")
			}
		}),
	}
	go srv.ServeTLS(l, "", "")
	defer srv.Close()
	f := &Fetcher{Resolver: dns.New(config.DNS{Resolver: resolver, Timeout: config.Duration(2 * time.Second)}),
		Roots: ca.Pool(), Port: l.Addr().(*net.TCPAddr).Port, Timeout: 5 * time.Second}
	if _, err := f.Fetch(context.Background(), "r.test"); err == nil || !strings.Contains(err.Error(), "302") {
		t.Errorf("redirect: %v", err)
	}
	mode.Store("html")
	if _, err := f.Fetch(context.Background(), "r.test"); err == nil || !strings.Contains(err.Error(), "media type") {
		t.Errorf("text/html: %v", err)
	}
}

// FuzzParse: a policy from a server never crashes the parser, and what it
// accepts survives a round trip through String.
func FuzzParse(f *testing.F) {
	f.Add([]byte("version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmax_age: 604800\r\n"))
	f.Add([]byte("version: STSv1\nmode: none\nmax_age: 0\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Parse(b)
		if err != nil {
			return
		}
		q, err := Parse([]byte(p.String()))
		if err != nil || q.String() != p.String() {
			t.Fatalf("round trip of %q: %q, %v", b, p.String(), err)
		}
	})
}

func FuzzParseRecord(f *testing.F) {
	f.Add("v=STSv1; id=20160831085700Z;")
	f.Add("v=STSv1;id=a;ext=x")
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRecord(s)
		if err == nil && !validID(r.ID) {
			t.Fatalf("ParseRecord(%q) accepted id %q", s, r.ID)
		}
	})
}
