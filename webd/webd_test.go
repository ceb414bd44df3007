package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/xml"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tern/common/config"
	"tern/common/mtasts"
	"tern/common/tlsconf"
)

// webEnv is webd's handler on a plain and a TLS listener on loopback.
type webEnv struct {
	cfg    *config.Config
	h      *handler
	plain  string // http://127.0.0.1:port
	secure string // https://127.0.0.1:port
	client *http.Client
}

func testConfig(t testing.TB) *config.Config {
	t.Helper()
	dir := t.TempDir()
	cfg := config.Default()
	cfg.Hostname = "mx1.example.test"
	cfg.Domains = []string{"example.test", "other.example"}
	cfg.StateDir = filepath.Join(dir, "state")
	cfg.TLS = config.TLS{Cert: filepath.Join(dir, "cert.pem"), Key: filepath.Join(dir, "key.pem"), Generate: true}
	cfg.WebD.MailHost = "mail.example.test"
	cfg.WebD.MTASTSMode = "enforce"
	cfg.WebD.MaxRequestSize = 2048
	cfg.WebD.MaxHeaderSize = 2048
	cfg.ManageSieve.Listen = []string{"0.0.0.0:4190"}
	return &cfg
}

func startWeb(t testing.TB, cfg *config.Config) *webEnv {
	t.Helper()
	tc, err := tlsconf.Load(cfg.TLS, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h := &handler{cfg: cfg, log: log, challenges: &challenges{}}
	srv := newHTTPServer(cfg, h, log)
	pl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(pl)
	go srv.Serve(tls.NewListener(tl, tc))
	t.Cleanup(func() { srv.Close() })
	client := startClient(t, cfg).client
	// RFC 8461 3.3: a policy fetch follows no redirect; nor do we.
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &webEnv{cfg: cfg, h: h, plain: "http://" + pl.Addr().String(), secure: "https://" + tl.Addr().String(), client: client}
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// get fetches url with the Host header host ("" = the URL's) and returns
// the status and body.
func (e *webEnv) do(t testing.TB, method, url, host, body string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// xmlNode is a generic element tree, for checking a document against the
// documented structure.
type xmlNode struct {
	XMLName  xml.Name
	Attrs    []xml.Attr `xml:",any,attr"`
	Text     string     `xml:",chardata"`
	Children []xmlNode  `xml:",any"`
}

func (n xmlNode) attr(name string) string {
	for _, a := range n.Attrs {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

func (n xmlNode) child(name string) []xmlNode {
	var out []xmlNode
	for _, c := range n.Children {
		if c.XMLName.Local == name {
			out = append(out, c)
		}
	}
	return out
}

func (n xmlNode) text(name string) string {
	if c := n.child(name); len(c) == 1 {
		return strings.TrimSpace(c[0].Text)
	}
	return ""
}

// autoconfigSchema is Thunderbird's config-v1.1 format as documented
// (wiki.mozilla.org/Thunderbird:Autoconfiguration:ConfigFileFormat): the
// children each element may have. Anything else is an error.
var autoconfigSchema = map[string][]string{
	"clientConfig":   {"emailProvider"},
	"emailProvider":  {"domain", "displayName", "displayShortName", "incomingServer", "outgoingServer", "documentation"},
	"incomingServer": {"hostname", "port", "socketType", "username", "authentication", "pop3", "password"},
	"outgoingServer": {"hostname", "port", "socketType", "username", "authentication", "password", "addThisServer", "useGlobalPreferredServer"},
}

var autoconfigValues = map[string][]string{
	"socketType":     {"plain", "SSL", "STARTTLS"},
	"authentication": {"password-cleartext", "password-encrypted", "NTLM", "GSSAPI", "client-IP-address", "TLS-client-cert", "OAuth2", "none"},
}

func checkSchema(t testing.TB, n xmlNode, schema map[string][]string, values map[string][]string) {
	t.Helper()
	allowed, known := schema[n.XMLName.Local]
	if !known {
		if len(n.Children) > 0 {
			t.Errorf("<%s> may not have children", n.XMLName.Local)
		}
		if vs, ok := values[n.XMLName.Local]; ok && !contains(vs, strings.TrimSpace(n.Text)) {
			t.Errorf("<%s> has %q, want one of %q", n.XMLName.Local, n.Text, vs)
		}
		return
	}
	for _, c := range n.Children {
		if !contains(allowed, c.XMLName.Local) {
			t.Errorf("<%s> may not contain <%s>", n.XMLName.Local, c.XMLName.Local)
		}
		checkSchema(t, c, schema, values)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func parseXML(t testing.TB, body string) xmlNode {
	t.Helper()
	var n xmlNode
	d := xml.NewDecoder(strings.NewReader(body))
	d.Strict = true
	if err := d.Decode(&n); err != nil {
		t.Fatalf("parse XML: %v\n%s", err, body)
	}
	return n
}

// servers lists "type host port socketType" of a config's servers.
func servers(nodes []xmlNode) []string {
	var out []string
	for _, s := range nodes {
		out = append(out, strings.Join([]string{s.attr("type"), s.text("hostname"), s.text("port"), s.text("socketType"), s.text("username"), s.text("authentication")}, " "))
	}
	return out
}

func TestAutoconfig(t *testing.T) {
	e := startWeb(t, testConfig(t))
	want := []string{
		"imap mail.example.test 993 SSL %EMAILADDRESS% password-cleartext",
		"imap mail.example.test 143 STARTTLS %EMAILADDRESS% password-cleartext",
		"pop3 mail.example.test 995 SSL %EMAILADDRESS% password-cleartext",
		"pop3 mail.example.test 110 STARTTLS %EMAILADDRESS% password-cleartext",
	}
	wantOut := []string{
		"smtp mail.example.test 465 SSL %EMAILADDRESS% password-cleartext",
		"smtp mail.example.test 587 STARTTLS %EMAILADDRESS% password-cleartext",
	}
	for _, c := range []struct{ base, path, host, domain string }{
		{e.plain, pathAutoconfig + "?emailaddress=demo%40example.test", "", "example.test"},
		{e.secure, pathAutoconfigWK + "?emailaddress=bob%40Other.Example", "", "other.example"},
		{e.plain, pathAutoconfig, "autoconfig.example.test", "example.test"},
	} {
		code, hdr, body := e.do(t, "GET", c.base+c.path, c.host, "")
		if code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "application/xml") {
			t.Fatalf("%s: %d %q", c.path, code, hdr.Get("Content-Type"))
		}
		root := parseXML(t, body)
		if root.XMLName.Local != "clientConfig" || root.attr("version") != "1.1" {
			t.Errorf("root <%s version=%q>", root.XMLName.Local, root.attr("version"))
		}
		checkSchema(t, root, autoconfigSchema, autoconfigValues)
		p := root.child("emailProvider")
		if len(p) != 1 || p[0].attr("id") != c.domain || p[0].text("domain") != c.domain {
			t.Fatalf("emailProvider %+v, want domain %s", p, c.domain)
		}
		if got := servers(p[0].child("incomingServer")); strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("incoming servers\n got %q\nwant %q", got, want)
		}
		if got := servers(p[0].child("outgoingServer")); strings.Join(got, "|") != strings.Join(wantOut, "|") {
			t.Errorf("outgoing servers\n got %q\nwant %q", got, wantOut)
		}
	}
	// Only local domains are answered.
	for _, c := range []struct{ path, host string }{
		{pathAutoconfig + "?emailaddress=x%40remote.test", ""},
		{pathAutoconfig, "autoconfig.remote.test"},
		{pathAutoconfig, ""},
	} {
		if code, _, _ := e.do(t, "GET", e.plain+c.path, c.host, ""); code != 404 {
			t.Errorf("%s host %q: %d, want 404", c.path, c.host, code)
		}
	}
	if code, _, _ := e.do(t, "POST", e.plain+pathAutoconfig+"?emailaddress=demo%40example.test", "", "x"); code != 405 {
		t.Errorf("POST autoconfig: %d", code)
	}
}

const autodiscoverRequest = `<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">
  <Request>
    <EMailAddress>%s</EMailAddress>
    <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>
  </Request>
</Autodiscover>`

func TestAutodiscover(t *testing.T) {
	e := startWeb(t, testConfig(t))
	for _, path := range []string{pathAutodiscover, "/Autodiscover/Autodiscover.xml"} {
		code, _, body := e.do(t, "POST", e.secure+path, "autodiscover.example.test", fmt.Sprintf(autodiscoverRequest, "demo@example.test"))
		if code != 200 {
			t.Fatalf("%s: %d %s", path, code, body)
		}
		root := parseXML(t, body)
		if root.XMLName.Space != "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006" || root.XMLName.Local != "Autodiscover" {
			t.Errorf("root %v", root.XMLName)
		}
		resp := root.child("Response")
		if len(resp) != 1 || resp[0].XMLName.Space != "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a" {
			t.Fatalf("Response %+v", resp)
		}
		acct := resp[0].child("Account")
		if len(acct) != 1 || acct[0].text("AccountType") != "email" || acct[0].text("Action") != "settings" {
			t.Fatalf("Account %+v", acct)
		}
		var got []string
		for _, p := range acct[0].child("Protocol") {
			got = append(got, strings.Join([]string{p.text("Type"), p.text("Server"), p.text("Port"), p.text("Encryption"), p.text("LoginName"), p.text("AuthRequired")}, " "))
		}
		want := []string{
			"IMAP mail.example.test 993 SSL demo@example.test on",
			"IMAP mail.example.test 143 TLS demo@example.test on",
			"POP3 mail.example.test 995 SSL demo@example.test on",
			"POP3 mail.example.test 110 TLS demo@example.test on",
			"SMTP mail.example.test 465 SSL demo@example.test on",
			"SMTP mail.example.test 587 TLS demo@example.test on",
		}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("protocols\n got %q\nwant %q", got, want)
		}
	}
	if code, _, _ := e.do(t, "POST", e.secure+pathAutodiscover, "", fmt.Sprintf(autodiscoverRequest, "x@remote.test")); code != 404 {
		t.Errorf("remote address: %d", code)
	}
	if code, _, _ := e.do(t, "POST", e.secure+pathAutodiscover, "", "<Autodiscover><Request>"); code != 400 {
		t.Errorf("broken XML: %d", code)
	}
	if code, _, _ := e.do(t, "POST", e.secure+pathAutodiscover, "", fmt.Sprintf(autodiscoverRequest, strings.Repeat("a", 4000)+"@example.test")); code != 413 {
		t.Errorf("large body: %d", code)
	}
	if code, _, _ := e.do(t, "GET", e.secure+pathAutodiscover, "", ""); code != 405 {
		t.Errorf("GET autodiscover: %d", code)
	}
}

// TestMobileConfig: the profile parses with Python's plistlib (what
// plutil checks) and sets up IMAP and submission with implicit TLS.
func TestMobileConfig(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	e := startWeb(t, testConfig(t))
	code, hdr, body := e.do(t, "GET", e.secure+pathMobileConfig+"?emailaddress=demo%40example.test", "", "")
	if code != 200 || hdr.Get("Content-Type") != "application/x-apple-aspen-config" {
		t.Fatalf("%d %q", code, hdr.Get("Content-Type"))
	}
	script := `
import plistlib, sys, json
p = plistlib.loads(sys.stdin.buffer.read())
a = p["PayloadContent"][0]
print(json.dumps([p["PayloadType"], p["PayloadVersion"], p["PayloadUUID"], a["PayloadType"], a["EmailAccountType"], a["EmailAddress"],
  a["IncomingMailServerHostName"], a["IncomingMailServerPortNumber"], a["IncomingMailServerUseSSL"], a["IncomingMailServerUsername"],
  a["OutgoingMailServerHostName"], a["OutgoingMailServerPortNumber"], a["OutgoingMailServerUseSSL"], a["OutgoingPasswordSameAsIncomingPassword"]]))
`
	cmd := exec.Command(py, "-c", script)
	cmd.Stdin = strings.NewReader(body)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("plistlib: %v\n%s\n%s", err, out, body)
	}
	got := strings.TrimSpace(string(out))
	if !strings.HasPrefix(got, `["Configuration", 1, "`) ||
		!strings.HasSuffix(got, `"com.apple.mail.managed", "EmailTypeIMAP", "demo@example.test", "mail.example.test", 993, true, "demo@example.test", "mail.example.test", 465, true, true]`) {
		t.Errorf("profile: %s", got)
	}
	// The same address gets the same profile (UUIDs included), so that a
	// second install replaces the first.
	_, _, again := e.do(t, "GET", e.secure+pathMobileConfig+"?emailaddress=demo%40example.test", "", "")
	if again != body {
		t.Errorf("a second download differs")
	}
	for _, q := range []string{"x%40remote.test", "", "a%22b%40example.test"} {
		if code, _, _ := e.do(t, "GET", e.secure+pathMobileConfig+"?emailaddress="+q, "", ""); code != 404 {
			t.Errorf("emailaddress=%s: %d", q, code)
		}
	}
}

func TestMTASTSPolicy(t *testing.T) {
	e := startWeb(t, testConfig(t))
	for _, host := range []string{"mta-sts.example.test", "MTA-STS.other.example:443"} {
		code, hdr, body := e.do(t, "GET", e.secure+pathMTASTS, host, "")
		if code != 200 || hdr.Get("Content-Type") != "text/plain" {
			t.Fatalf("%s: %d %q", host, code, hdr.Get("Content-Type"))
		}
		// Read back with the parser smtpd's outbound delivery uses
		// (common/mtasts), so what tern publishes is what it accepts.
		p, err := mtasts.Parse([]byte(body))
		if err != nil {
			t.Fatalf("policy %q: %v", body, err)
		}
		if p.Mode != mtasts.Enforce || strings.Join(p.MX, ",") != "mail.example.test" || p.MaxAge != 604800*time.Second {
			t.Errorf("policy mode %s mx %q max_age %v", p.Mode, p.MX, p.MaxAge)
		}
		if !p.Match("mail.example.test") || p.Match("other.example.test") {
			t.Errorf("policy %q: MX matching", body)
		}
	}
	for _, c := range []struct{ base, host string }{
		{e.plain, "mta-sts.example.test"}, // RFC 8461 3.3: HTTPS only
		{e.secure, "mta-sts.remote.test"}, // not a local domain
		{e.secure, "example.test"},        // not the policy host
		{e.secure, "autoconfig.example.test"},
	} {
		if code, _, _ := e.do(t, "GET", c.base+pathMTASTS, c.host, ""); code != 404 {
			t.Errorf("%s %s: %d, want 404", c.base, c.host, code)
		}
	}
}

func TestACMEChallengeAndUnknownPaths(t *testing.T) {
	e := startWeb(t, testConfig(t))
	e.h.challenges.set("tok-1", "tok-1.thumbprint")
	code, _, body := e.do(t, "GET", e.plain+pathACMEChallengeWK+"tok-1", "mail.example.test", "")
	if code != 200 || body != "tok-1.thumbprint" {
		t.Errorf("challenge: %d %q", code, body)
	}
	e.h.challenges.remove("tok-1")
	for _, p := range []string{pathACMEChallengeWK + "tok-1", "/", "/etc/passwd", "/mail/", "/.well-known/"} {
		if code, _, _ := e.do(t, "GET", e.plain+p, "", ""); code != 404 {
			t.Errorf("%s: %d, want 404", p, code)
		}
	}
}

// TestHeaderLimit: a header over webd.max_header_size is refused (431) and
// a client that sends nothing is cut after read_timeout.
func TestHeaderLimit(t *testing.T) {
	cfg := testConfig(t)
	cfg.WebD.ReadTimeout = config.Duration(300 * time.Millisecond)
	e := startWeb(t, cfg)
	req, _ := http.NewRequest("GET", e.plain+pathAutoconfig, nil)
	req.Header.Set("X-Big", strings.Repeat("a", 8000))
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("big header: %d", resp.StatusCode)
	}
	c, err := net.Dial("tcp", strings.TrimPrefix(e.plain, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	_, err = bufio.NewReader(c).ReadString('\n')
	if err == nil && time.Since(start) > 4*time.Second || time.Since(start) > 4*time.Second {
		t.Errorf("slow client held for %v", time.Since(start))
	}
}

// TestRun drives run, main's wiring: listeners from the configuration,
// TLS from [tls], a clean stop when the context ends.
func TestRun(t *testing.T) {
	cfg := testConfig(t)
	cfg.Hostname = "localhost"
	free := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().String()
	}
	cfg.WebD.Listen = []string{free()}
	cfg.WebD.TLSListen = []string{free()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	log := slog.New(slog.NewTextHandler(testWriter{t}, nil))
	go func() { done <- run(ctx, cfg, log) }()

	var env *webEnv
	for i := 0; i < 100; i++ {
		if _, err := os.Stat(cfg.TLS.Cert); err == nil {
			env = startClient(t, cfg)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if env == nil {
		t.Fatal("no certificate made")
	}

	var code int
	for i := 0; i < 100; i++ {
		req, _ := http.NewRequest("GET", "https://"+cfg.WebD.TLSListen[0]+pathMTASTS, nil)
		req.Host = "mta-sts.example.test"
		if resp, err := env.client.Do(req); err == nil {
			code = resp.StatusCode
			resp.Body.Close()
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code != 200 {
		t.Fatalf("policy over the configured TLS listener: %d", code)
	}
	if c, _, _ := env.do(t, "GET", "http://"+cfg.WebD.Listen[0]+pathAutoconfig+"?emailaddress=a%40example.test", "", ""); c != 200 {
		t.Errorf("autoconfig over the configured plain listener: %d", c)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after cancel")
	}
}

// startClient is a client that trusts cfg's certificate.
func startClient(t testing.TB, cfg *config.Config) *webEnv {
	t.Helper()
	pem, err := os.ReadFile(cfg.TLS.Cert)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return &webEnv{cfg: cfg, client: &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"}},
	}}
}

// FuzzHandler: any request body, path and query is answered with a
// status, never a panic, and an autodiscover answer is always well-formed
// XML for a local address.
func FuzzHandler(f *testing.F) {
	f.Add("POST", pathAutodiscover, "", fmt.Sprintf(autodiscoverRequest, "demo@example.test"))
	f.Add("GET", pathAutoconfig, "emailaddress=demo%40example.test", "")
	f.Add("GET", pathMobileConfig, "emailaddress=%3C%3E%40example.test", "")
	f.Add("GET", pathMTASTS, "", "")
	f.Add("POST", pathAutodiscover, "", "<Autodiscover><Request><EMailAddress>&amp;@example.test</EMailAddress></Request></Autodiscover>")
	cfg := testConfig(f)
	h := &handler{cfg: cfg, log: slog.New(slog.NewTextHandler(io.Discard, nil)), challenges: &challenges{}}
	f.Fuzz(func(t *testing.T, method, path, query, body string) {
		if method != "GET" && method != "POST" {
			method = "GET"
		}
		req, err := http.NewRequest(method, "http://autoconfig.example.test/", strings.NewReader(body))
		if err != nil {
			return
		}
		req.URL.Path, req.URL.RawQuery = path, query
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code == 200 && strings.HasPrefix(rec.Header().Get("Content-Type"), "application/xml") {
			d := xml.NewDecoder(bytes.NewReader(rec.Body.Bytes()))
			for {
				if _, err := d.Token(); err == io.EOF {
					break
				} else if err != nil {
					t.Fatalf("%s %s?%s: malformed XML: %v\n%s", method, path, query, err, rec.Body.String())
				}
			}
		}
	})
}
