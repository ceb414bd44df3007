package cluster

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tern/common/auth"
	"tern/common/config"
	"tern/common/serve"
)

// testCluster is a cluster of 127.0.0.1 (self) and 127.0.0.2 with a
// secret file; users has bob (home 127.0.0.2), carol (home outside the
// cluster), dave (home self) and erin (nologin).
func testCluster(t *testing.T) (*Cluster, *auth.DB) {
	t.Helper()
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("  0123456789abcdef0123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Cluster.Hosts = []string{"127.0.0.1", "127.0.0.2"}
	cfg.Cluster.Self = "127.0.0.1"
	cfg.Cluster.Secret = secret
	cfg.Cluster.ConnectTimeout = config.Duration(time.Second)
	c, err := Open(&cfg, slog.New(slog.DiscardHandler))
	if err != nil || c == nil {
		t.Fatalf("Open: %v %v", c, err)
	}
	users := filepath.Join(dir, "users")
	os.WriteFile(users, []byte("bob@example.test:{PLAIN}bobpw::::::host=127.0.0.2\n"+
		"carol@example.test:{PLAIN}x::::::host=10.9.9.9\n"+
		"dave@example.test:{PLAIN}x::::::host=127.0.0.1\n"+
		"erin@example.test:{PLAIN}x::::::host=127.0.0.2 nologin\n"), 0o600)
	db, err := auth.Open(users, "example.test", nil)
	if err != nil {
		t.Fatal(err)
	}
	return c, db
}

func TestOpen(t *testing.T) {
	cfg := config.Default()
	if c, err := Open(&cfg, nil); c != nil || err != nil {
		t.Fatalf("no hosts: %v %v, want no cluster", c, err)
	}
	short := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(short, []byte("short\n"), 0o600)
	cfg.Cluster.Hosts, cfg.Cluster.Self, cfg.Cluster.Secret = []string{"127.0.0.1"}, "127.0.0.1", short
	if _, err := Open(&cfg, nil); err == nil || !strings.Contains(err.Error(), "shorter than 16") {
		t.Fatalf("short secret: %v", err)
	}
	cfg.Cluster.Secret = filepath.Join(t.TempDir(), "missing")
	if _, err := Open(&cfg, nil); err == nil {
		t.Fatal("missing secret file taken")
	}
}

func TestHome(t *testing.T) {
	c, db := testCluster(t)
	for _, tc := range []struct {
		user, host string
		ok         bool
	}{
		{"bob@example.test", "127.0.0.2", true},
		{"carol@example.test", "", false}, // not one of the hosts
		{"dave@example.test", "", false},  // this host
		{"nobody@example.test", "", false},
	} {
		if host, ok := c.HomeOf(db, tc.user); host != tc.host || ok != tc.ok {
			t.Errorf("HomeOf(%s) = %q %v, want %q %v", tc.user, host, ok, tc.host, tc.ok)
		}
	}
	var none *Cluster
	if _, ok := none.HomeOf(db, "bob@example.test"); ok {
		t.Error("no cluster, yet a home host")
	}
	if _, err := c.Dial(t.Context(), "10.9.9.9", 1); err == nil {
		t.Error("Dial to an address outside the hosts")
	}
}

func TestHeader(t *testing.T) {
	for _, tc := range []struct {
		client, local net.Addr
		want          string
	}{
		{&net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 51234}, &net.TCPAddr{IP: net.ParseIP("10.0.0.2"), Port: 143},
			"PROXY TCP4 192.0.2.7 10.0.0.2 51234 143\r\n"},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8::7"), Port: 1}, &net.TCPAddr{IP: net.ParseIP("2001:db8::2"), Port: 993},
			"PROXY TCP6 2001:db8::7 2001:db8::2 1 993\r\n"},
		{&net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 1}, &net.TCPAddr{IP: net.ParseIP("2001:db8::2"), Port: 993},
			"PROXY UNKNOWN\r\n"},
		{&net.UnixAddr{Name: "/x"}, &net.UnixAddr{Name: "/y"}, "PROXY UNKNOWN\r\n"},
	} {
		got := string(proxyHeader(tc.client, tc.local))
		if got != tc.want {
			t.Errorf("proxyHeader = %q, want %q", got, tc.want)
			continue
		}
		a, err := parseHeader(strings.TrimSuffix(got, "\r\n"))
		if err != nil {
			t.Errorf("parseHeader(%q): %v", got, err)
		} else if strings.Contains(got, "UNKNOWN") != (a == nil) ||
			a != nil && a.String() != tc.client.String() {
			t.Errorf("parseHeader(%q) = %v", got, a)
		}
	}
	for _, bad := range []string{
		"", "PROXY", "PROXY TCP4 1.2.3.4 5.6.7.8 1", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3",
		"PROXY TCP5 1.2.3.4 5.6.7.8 1 2", "PROXY TCP4 ::1 ::1 1 2", "PROXY TCP6 1.2.3.4 5.6.7.8 1 2",
		"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2", "PROXY TCP4 1.2.3.4 5.6.7.8 01 2", "PROXY TCP4 x 5.6.7.8 1 2",
		"proxy TCP4 1.2.3.4 5.6.7.8 1 2", "GET / HTTP/1.0",
	} {
		if a, err := parseHeader(bad); err == nil {
			t.Errorf("parseHeader(%q) = %v, want an error", bad, a)
		}
	}
}

// FuzzParseHeader: no input crashes the parser, and what it takes it
// would write the same way.
func FuzzParseHeader(f *testing.F) {
	f.Add("PROXY TCP4 192.0.2.7 10.0.0.2 51234 143")
	f.Add("PROXY TCP6 2001:db8::7 2001:db8::2 1 993")
	f.Add("PROXY UNKNOWN")
	f.Add("PROXY TCP4 1.2.3.4 5.6.7.8 0 0")
	f.Fuzz(func(t *testing.T, line string) {
		a, err := parseHeader(line)
		if err != nil || a == nil {
			return
		}
		if a.Port < 0 || a.Port > 65535 || a.IP == nil {
			t.Fatalf("parseHeader(%q) = %v", line, a)
		}
	})
}

// freePort is a port free on 127.0.0.1 (Self of testCluster).
func freePort(t *testing.T) int {
	t.Helper()
	probe, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	return probe.Addr().(*net.TCPAddr).Port
}

// TestListener: an internal port closes a peer outside the hosts before a
// byte, takes a host's connection after its header, and refuses a host
// that sends a bad header or none in time.
func TestListener(t *testing.T) {
	c, _ := testCluster(t)
	port := freePort(t)
	ln, err := c.Listen(port, true)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- nc
		}
	}()
	dial := func(src string) net.Conn {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		nc, err := d.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		return nc
	}
	closed := func(nc net.Conn) bool {
		nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err := nc.Read(make([]byte, 1))
		return err == io.EOF || err != nil && !os.IsTimeout(err)
	}

	// Not a host.
	if nc := dial("127.0.0.3"); !closed(nc) {
		t.Error("a peer outside the hosts was not closed")
	}
	// A host with a bad header.
	nc := dial("127.0.0.2")
	io.WriteString(nc, "PROXY TCP4 1.2.3.4\r\n")
	if !closed(nc) {
		t.Error("a bad header was not refused")
	}
	// A host with no header within the connect timeout.
	if nc := dial("127.0.0.2"); !closed(nc) {
		t.Error("a host silent past the connect timeout was not closed")
	}
	// A good one: the client address is the header's, the rest of the
	// bytes are the session's.
	nc = dial("127.0.0.2")
	io.WriteString(nc, "PROXY TCP4 192.0.2.7 127.0.0.1 4321 143\r\nHELLO\r\n")
	select {
	case got := <-accepted:
		if !Trusted(got) || got.RemoteAddr().String() != "192.0.2.7:4321" ||
			got.(*Conn).Host().(*net.TCPAddr).IP.String() != "127.0.0.2" {
			t.Fatalf("accepted %v from %v", got.RemoteAddr(), got.(*Conn).Host())
		}
		line, _ := bufio.NewReader(got).ReadString('\n')
		if line != "HELLO\r\n" {
			t.Fatalf("session bytes %q", line)
		}
		got.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("the host's connection was not accepted")
	}
	select {
	case got, ok := <-accepted:
		if ok {
			t.Fatalf("refused connection accepted: %v", got.RemoteAddr())
		}
	default:
	}
	if Trusted(nc) {
		t.Error("a dialled connection counts as trusted")
	}
}

// TestPlainServer: the proxy login takes the secret for a user who may log
// in, and nothing else.
func TestPlainServer(t *testing.T) {
	c, db := testCluster(t)
	try := func(resp string) (string, error) {
		var got string
		s := c.PlainServer(db, func(a string) error { got = a; return nil })
		_, _, err := s.Next([]byte(resp))
		return got, err
	}
	if got, err := try(string(c.PlainResponse("bob"))); err != nil || got != "bob@example.test" {
		t.Fatalf("the proxy login: %q %v", got, err)
	}
	for _, resp := range []string{
		"\x00bob@example.test\x00bobpw",                                  // the user's own password
		"\x00bob@example.test\x000123456789abcdef012",                    // a secret too short
		"\x00nobody@example.test\x000123456789abcdef0123",                // unknown
		"\x00erin@example.test\x000123456789abcdef0123",                  // nologin
		"alice@example.test\x00bob@example.test\x000123456789abcdef0123", // another identity
	} {
		if got, err := try(resp); err == nil {
			t.Errorf("PLAIN %q logged in %q", resp, got)
		}
	}
}

// TestServe: an internal port is one more listener of a daemon's
// serve.Server; its connections reach the handler as serve Conns of kind
// Kind that Trusted sees through, counted under the PROXY header's client,
// while a connection of the public listener is not trusted. Without a
// cluster Serve adds nothing.
func TestServe(t *testing.T) {
	c, _ := testCluster(t)
	port := freePort(t)
	type seen struct {
		kind, client string
		trusted      bool
	}
	got := make(chan seen, 2)
	srv := &serve.Server{Name: "test", Log: slog.New(slog.DiscardHandler), Handle: func(sc *serve.Conn) {
		got <- seen{sc.Kind(), sc.Client(), Trusted(sc)}
		sc.Close()
	}}
	if err := (*Cluster)(nil).Serve(srv, port, true); err != nil {
		t.Fatalf("Serve without a cluster: %v", err)
	}
	if err := srv.Listen("public", []string{"127.0.0.1:0"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Serve(srv, port, true); err != nil {
		t.Fatal(err)
	}
	if n := len(srv.Addrs(Kind)); n != 1 {
		t.Fatalf("%d internal listeners, want 1", n)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve() }()
	defer func() {
		srv.Close()
		<-done
	}()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
	nc, err := d.Dial("tcp", srv.Addrs(Kind)[0])
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	io.WriteString(nc, "PROXY TCP4 192.0.2.7 127.0.0.1 4321 143\r\n")
	pub, err := net.Dial("tcp", srv.Addrs("public")[0])
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	want := map[seen]bool{{Kind, "192.0.2.7", true}: true, {"public", "127.0.0.1", false}: true}
	for range 2 {
		select {
		case s := <-got:
			if !want[s] {
				t.Errorf("handled %+v, want one of %v", s, want)
			}
			delete(want, s)
		case <-time.After(5 * time.Second):
			t.Fatalf("connections not handled; missing %v", want)
		}
	}
}
