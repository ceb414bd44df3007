package mailaddr

import (
	"strings"
	"testing"
)

func FuzzSplit(f *testing.F) {
	for _, a := range []string{"demo@example.test", "user%remote.test@example.test", "remote.test!user",
		"user@remote.test@example.test", `"user@remote.test"@example.test`, "user@[127.0.0.1]", "user@[IPv6:::1]",
		"user@remote.test.", "gr\u00fc\u00df@b\u00fccher.test", "@example.test", "user@", "user@-bad-.test"} {
		f.Add(a)
	}
	f.Fuzz(func(t *testing.T, a string) {
		local, domain, err := Split(a)
		if err != nil {
			return
		}
		if local == "" || domain == "" || strings.ContainsAny(domain, "@ \r\n") && !strings.HasPrefix(domain, "[") {
			t.Fatalf("%q -> %q, %q", a, local, domain)
		}
		if d := Domain(a); d != domain {
			t.Fatalf("Domain(%q) = %q, Split's domain %q", a, d, domain)
		}
		if l := Local(a); l != local {
			t.Fatalf("Local(%q) = %q, Split's local part %q", a, l, local)
		}
	})
}

func TestLocalAndDomain(t *testing.T) {
	for _, c := range []struct{ addr, local, domain string }{
		{"Owner-List@Example.TEST.", "Owner-List", "example.test"},
		{`"a@b"@c.test`, `"a@b"`, "c.test"},
		{"postmaster", "postmaster", ""},
	} {
		if l, d := Local(c.addr), Domain(c.addr); l != c.local || d != c.domain {
			t.Errorf("%q: %q, %q; want %q, %q", c.addr, l, d, c.local, c.domain)
		}
	}
}
