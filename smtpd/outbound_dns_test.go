package main

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"tern/common/config"
	"tern/common/dkim"
	"tern/common/dns/dnstest"
)

// dkimVerifyScript verifies a message on standard input with Debian's
// python3-dkim (dkimpy), an implementation independent of tern's, asking
// the test's DNS server for the key.
const dkimVerifyScript = `
import sys, dkim, dns.resolver
r = dns.resolver.Resolver(configure=False)
r.nameservers = [sys.argv[1]]
r.port = int(sys.argv[2])
def dnsfunc(name, timeout=5):
    if isinstance(name, bytes):
        name = name.decode()
    ans = r.resolve(name.rstrip('.'), 'TXT')
    return b''.join(b''.join(rd.strings) for rd in ans)
msg = sys.stdin.buffer.read()
ok = dkim.verify(msg, dnsfunc=dnsfunc)
print("verified" if ok else "failed")
sys.exit(0 if ok else 1)
`

// TestOutboundMXAndDKIM: mail submitted to a remote domain is DKIM-signed
// (ed25519-sha256, then rsa-sha256 after the key file is replaced) and
// delivered through the domain's MX record, looked up on the [dns]
// resolver (a real nsd), with no transport map; python3-dkim verifies
// what the remote server received.
func TestOutboundMXAndDKIM(t *testing.T) {
	py := "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		t.Skip("Debian's python3 is not installed")
	}
	if err := exec.Command(py, "-c", "import dkim, dns.resolver, nacl").Run(); err != nil {
		t.Skip("python3-dkim is not installed (apt-get install python3-dkim)")
	}
	edKey, edPEM, err := dkim.GenerateKey("ed25519")
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, rsaPEM, err := dkim.GenerateKey("rsa")
	if err != nil {
		t.Fatal(err)
	}
	edRec, _ := dkim.TXTRecord(edKey)
	rsaRec, _ := dkim.TXTRecord(rsaKey)
	resolver := dnstest.Start(t, map[string]string{
		"remote.test": "@ IN MX 10 mx\nmx IN A 127.0.0.1",
		"example.test": dkim.ZoneLines("ed", "example.test", edRec) + "\n" +
			dkim.ZoneLines("rs", "example.test", rsaRec),
	})
	remote := startRemoteMX(t, "")
	_, port, _ := net.SplitHostPort(remote.addr)

	cfg := newTestConfig(t, "")
	cfg.DNS = config.DNS{Resolver: resolver, Timeout: config.Duration(2 * time.Second)}
	cfg.SMTPD.RemotePort, _ = strconv.Atoi(port)
	keyDir := filepath.Join(t.TempDir(), "dkim")
	if err := os.Mkdir(keyDir, 0o700); err != nil {
		t.Fatal(err)
	}
	cfg.DKIM.Key = filepath.Join(keyDir, "%d.key")
	startLMTP(t, cfg)
	e := startSMTPD(t, cfg)
	keyPath := dkim.KeyPath(cfg.DKIM.Key, "example.test")
	dnsHost, dnsPort, _ := net.SplitHostPort(resolver)

	for i, k := range []struct {
		selector, alg string
		pem           []byte
	}{{"ed", "ed25519-sha256", edPEM}, {"rs", "rsa-sha256", rsaPEM}} {
		os.Remove(keyPath)
		if err := dkim.WriteKey(keyPath, k.pem); err != nil {
			t.Fatal(err)
		}
		e.srv.cfg().DKIM.Selector = k.selector
		body := "From: Demo <demo@example.test>\r\nTo: bob@remote.test\r\nSubject: signed " + k.alg +
			"\r\n\r\nHello Bob,\r\n  this line has  odd   spacing.\r\n"
		if err := submit(t, e.addr(kindSubmission), "demo", "demo", "demo@example.test", []string{"bob@remote.test"}, body, nil); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "delivery by MX", func() bool { return len(remote.messages()) == i+1 })
		got := remote.messages()[i]
		if !strings.HasPrefix(got, "DKIM-Signature: ") || !strings.Contains(got, "a="+k.alg) ||
			!strings.Contains(got, "s="+k.selector) || !strings.Contains(got, "d=example.test") {
			t.Fatalf("delivered message not signed with %s:\n%s", k.alg, got)
		}
		cmd := exec.Command(py, "-c", dkimVerifyScript, dnsHost, dnsPort)
		cmd.Stdin = strings.NewReader(got)
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "verified") {
			t.Fatalf("python3-dkim does not verify the %s signature: %v\n%s\n%s", k.alg, err, out, got)
		}
		// The same verifier refuses the message once changed.
		cmd = exec.Command(py, "-c", dkimVerifyScript, dnsHost, dnsPort)
		cmd.Stdin = strings.NewReader(strings.Replace(got, "Hello Bob", "Hello Eve", 1))
		if out, err := cmd.CombinedOutput(); err == nil {
			t.Fatalf("python3-dkim verifies a changed message: %s", out)
		}
	}
}
