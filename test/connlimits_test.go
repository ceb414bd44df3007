package e2e

import (
	"bufio"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// TestSIGHUPConnectionLimits: the per-address connection limits of
// imapd, pop3d and smtpd (common/serve) follow SIGHUP for new
// connections, while the connections admitted before stay open.
func TestSIGHUPConnectionLimits(t *testing.T) {
	tn := StartTern(t)
	orig, err := os.ReadFile(tn.Config)
	if err != nil {
		t.Fatal(err)
	}
	daemons := []struct {
		name, section, addr, ok, refused string
	}{
		{"imapd", "imapd", tn.IMAP, "* OK", "* BYE [LIMIT]"},
		{"pop3d", "pop3d", tn.POP3, "+OK", "-ERR [SYS/TEMP]"},
		{"smtpd", "smtpd", tn.MX, "220 ", "421 4.7.0"},
	}
	setLimit := func(n string) {
		cfg := string(orig)
		for _, d := range daemons {
			cfg = strings.Replace(cfg, "\n["+d.section+"]\n", "\n["+d.section+"]\nmax_connections_per_ip = "+n+"\n", 1)
		}
		if err := os.WriteFile(tn.Config, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, d := range daemons {
			hup(t, tn, d.name, "configuration re-read")
		}
	}
	greeting := func(addr string) (net.Conn, string) {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(10 * time.Second))
		l, _ := bufio.NewReader(c).ReadString('\n')
		return c, l
	}

	setLimit("2")
	var first []net.Conn
	for _, d := range daemons {
		for range 2 {
			c, l := greeting(d.addr)
			if !strings.HasPrefix(l, d.ok) {
				t.Fatalf("%s within the limit: %q", d.name, l)
			}
			first = append(first, c)
		}
		if _, l := greeting(d.addr); !strings.HasPrefix(l, d.refused) {
			t.Errorf("%s over max_connections_per_ip = 2: %q, want %q", d.name, l, d.refused)
		}
	}

	setLimit("3")
	for _, d := range daemons {
		if _, l := greeting(d.addr); !strings.HasPrefix(l, d.ok) {
			t.Errorf("%s after SIGHUP raised the limit to 3: %q", d.name, l)
		}
		if _, l := greeting(d.addr); !strings.HasPrefix(l, d.refused) {
			t.Errorf("%s over max_connections_per_ip = 3: %q, want %q", d.name, l, d.refused)
		}
	}
	// The connections admitted before SIGHUP still answer.
	for i, c := range first {
		d := daemons[i/2]
		cmd := map[string]string{"imapd": "a NOOP\r\n", "pop3d": "NOOP\r\n", "smtpd": "NOOP\r\n"}[d.name]
		if _, err := c.Write([]byte(cmd)); err != nil {
			t.Errorf("%s connection from before SIGHUP: %v", d.name, err)
			continue
		}
		buf := make([]byte, 512)
		if n, err := c.Read(buf); err != nil || n == 0 {
			t.Errorf("%s connection from before SIGHUP: %v", d.name, err)
		}
	}
}
