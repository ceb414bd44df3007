package dns

import (
	"context"
	"net"
	"testing"
	"time"

	"tern/common/config"
	"tern/common/dns/dnstest"
)

// TestResolverAsksConfiguredServer: every kind of lookup smtpd makes is
// answered by the server named in [dns] resolver (a real nsd), not by the
// system's resolver, which knows nothing of the .test zone.
func TestResolverAsksConfiguredServer(t *testing.T) {
	addr := dnstest.Start(t, map[string]string{
		"remote.test": `@ IN MX 10 mx1
@ IN MX 20 mx2
mx1 IN A 127.0.0.2
mx2 IN A 127.0.0.3
@ IN TXT "v=spf1 ip4:127.0.0.0/8 -all"
_dmarc IN TXT "v=DMARC1; p=reject"`,
	})
	r := New(config.DNS{Resolver: addr, Timeout: config.Duration(5 * time.Second)})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	mxs, err := r.LookupMX(ctx, "remote.test")
	if err != nil {
		t.Fatalf("LookupMX: %v", err)
	}
	if len(mxs) != 2 || mxs[0].Host != "mx1.remote.test." || mxs[0].Pref != 10 {
		t.Fatalf("MX = %+v", mxs)
	}
	ips, err := r.LookupIPAddr(ctx, "mx2.remote.test")
	if err != nil || len(ips) != 1 || ips[0].IP.String() != "127.0.0.3" {
		t.Fatalf("LookupIPAddr = %v, %v", ips, err)
	}
	txt, err := r.LookupTXT(ctx, "_dmarc.remote.test")
	if err != nil || len(txt) != 1 || txt[0] != "v=DMARC1; p=reject" {
		t.Fatalf("LookupTXT = %q, %v", txt, err)
	}
	_, err = r.LookupTXT(ctx, "nothing.remote.test")
	if !IsNotFound(err) {
		t.Fatalf("lookup of a missing name: %v, want not found", err)
	}
}

// TestResolverDownIsNotNotFound: a dead server is a temporary failure,
// never "no such domain" (which would bounce mail).
func TestResolverDownIsNotNotFound(t *testing.T) {
	r := New(config.DNS{Resolver: "127.0.0.1:1", Timeout: config.Duration(500 * time.Millisecond)})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := r.LookupMX(ctx, "remote.test")
	if err == nil || IsNotFound(err) {
		t.Fatalf("LookupMX with the server down: %v", err)
	}
}

func TestSystemResolverWhenUnset(t *testing.T) {
	if New(config.DNS{}) != net.DefaultResolver {
		t.Fatal("an empty [dns] resolver must mean the system's resolver")
	}
}
