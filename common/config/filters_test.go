package config

import (
	"errors"
	"strings"
	"testing"
)

func TestMilterAddr(t *testing.T) {
	for in, want := range map[string][2]string{
		"inet:127.0.0.1:11332":               {"tcp", "127.0.0.1:11332"},
		"inet:localhost:11332":               {"tcp", "localhost:11332"},
		"inet:[::1]:11332":                   {"tcp", "[::1]:11332"},
		"inet:7357@127.0.0.1":                {"tcp", "127.0.0.1:7357"},
		"inet6:7357@[::1]":                   {"tcp", "[::1]:7357"},
		"unix:/run/clamav/clamav-milter.ctl": {"unix", "/run/clamav/clamav-milter.ctl"},
		"local:/run/x.sock":                  {"unix", "/run/x.sock"},
	} {
		n, a, err := MilterAddr(in)
		if err != nil || n != want[0] || a != want[1] {
			t.Errorf("MilterAddr(%q) = %q, %q, %v; want %q", in, n, a, err, want)
		}
	}
	for _, bad := range []string{"", "127.0.0.1:11332", "inet:", "inet:host", "inet:host:0", "inet:host:99999",
		"unix:relative.sock", "tcp:1.2.3.4:5", "inet::25"} {
		if _, _, err := MilterAddr(bad); !errors.Is(err, ErrMilterAddr) {
			t.Errorf("MilterAddr(%q) = %v, want ErrMilterAddr", bad, err)
		}
	}
}

// TestFilterKeysValidated: every filter key is checked, all problems at
// once, each on its line.
func TestFilterKeysValidated(t *testing.T) {
	src := `hostname = "h.test"
domains = ["example.test"]
[smtpd]
milters = ["inet:nowhere", "unix:/ok.sock"]
milter_default_action = "drop"
milter_timeout = "0s"
spf_fail = "bounce"
authserv_id = "has space"
remote_port = 0
[dkim]
selector = ""
key = "/etc/tern/dkim/key.pem"
headers = ["Subject"]
max_verifications = 0
[dns]
resolver = "127.0.0.1"
timeout = "0s"
`
	_, err := Parse("t.toml", []byte(src))
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("Parse: %v", err)
	}
	msg := err.Error()
	for _, want := range []string{"t.toml:4: smtpd.milters", "t.toml:5: smtpd.milter_default_action", "t.toml:6: smtpd.milter_timeout",
		"t.toml:7: smtpd.spf_fail", "t.toml:8: smtpd.authserv_id", "t.toml:9: smtpd.remote_port",
		"t.toml:11: dkim.selector", "t.toml:12: dkim.key", "t.toml:13: dkim.headers", "t.toml:14: dkim.max_verifications",
		"t.toml:16: dns.resolver", "t.toml:17: dns.timeout"} {
		if !strings.Contains(msg, want) {
			t.Errorf("errors lack %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "unix:/ok.sock") {
		t.Errorf("a good milter address was refused:\n%s", msg)
	}
}

func TestFilterDefaults(t *testing.T) {
	c, err := Parse("t.toml", []byte("hostname = \"h.test\"\ndomains = [\"example.test\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.SMTPD.MilterDefaultAction != "tempfail" || !c.SMTPD.InboundAuth || !c.SMTPD.DMARCReject ||
		c.SMTPD.SPFFail != "mark" || c.SMTPD.RemotePort != 25 || c.DKIM.Selector != "tern" ||
		c.DNS.Resolver != "" || c.AuthservIDOrHost() != "h.test" || len(c.SMTPD.Milters) != 0 {
		t.Fatalf("defaults: %+v %+v %+v", c.SMTPD, c.DKIM, c.DNS)
	}
}

func FuzzMilterAddr(f *testing.F) {
	for _, s := range []string{"inet:127.0.0.1:11332", "inet:1@h", "unix:/x", "inet:[::1]:1", "local:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, a, err := MilterAddr(s)
		if err != nil {
			return
		}
		switch n {
		case "unix":
			if !strings.HasPrefix(a, "/") {
				t.Fatalf("MilterAddr(%q) = unix %q", s, a)
			}
		case "tcp":
			if CheckAddr(a) != nil {
				t.Fatalf("MilterAddr(%q) = tcp %q, not host:port", s, a)
			}
		default:
			t.Fatalf("MilterAddr(%q) network %q", s, n)
		}
	})
}
