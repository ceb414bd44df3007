package listen

import (
	"bytes"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tern/common/metrics"
)

// countingOn turns connection counting on for one test, into a fresh
// registry.
func countingOn(t *testing.T, kinds map[string]string) *metrics.Registry {
	t.Helper()
	reg := metrics.NewRegistry()
	CountConnections(reg, "testd", kinds)
	t.Cleanup(func() {
		countMu.Lock()
		counting = nil
		countMu.Unlock()
	})
	return reg
}

func scrape(t *testing.T, reg *metrics.Registry) string {
	t.Helper()
	var b bytes.Buffer
	if _, err := reg.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func wantLine(t *testing.T, reg *metrics.Registry, line string) {
	t.Helper()
	if got := scrape(t, reg); !strings.Contains(got, line+"\n") {
		t.Fatalf("missing %q in:\n%s", line, got)
	}
}

func TestCountConnections(t *testing.T) {
	sock := "unix:" + filepath.Join(t.TempDir(), "c.sock")
	reg := countingOn(t, map[string]string{"127.0.0.1:0": "mx", sock: "lmtp"})
	for _, c := range []struct{ addr, kind, network, dial string }{
		{"127.0.0.1:0", "mx", "tcp", ""},
		{sock, "lmtp", "unix", strings.TrimPrefix(sock, "unix:")},
	} {
		l, err := Listen(c.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		dial := c.dial
		if dial == "" {
			dial = l.Addr().String()
		}
		var clients, servers []net.Conn
		for range 3 {
			cl, err := net.Dial(c.network, dial)
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			sv, err := l.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer sv.Close()
			clients, servers = append(clients, cl), append(servers, sv)
		}
		// The accepted connection keeps its concrete type: smtpd's local
		// submission reads peer credentials from a *net.UnixConn.
		if _, ok := servers[0].(*net.UnixConn); ok != (c.network == "unix") {
			t.Errorf("%s: accepted %T", c.kind, servers[0])
		}
		wantLine(t, reg, fmt.Sprintf(`tern_connections_total{daemon="testd",kind=%q} 3`, c.kind))
		wantLine(t, reg, fmt.Sprintf(`tern_connections_open{daemon="testd",kind=%q} 3`, c.kind))
		servers[0].Close()
		servers[1].Close()
		servers[1].Close() // closing twice counts once
		wantLine(t, reg, fmt.Sprintf(`tern_connections_open{daemon="testd",kind=%q} 1`, c.kind))
		// A client hanging up does not close the server's side: the
		// connection is open until the daemon closes it.
		clients[2].Close()
		time.Sleep(10 * time.Millisecond)
		wantLine(t, reg, fmt.Sprintf(`tern_connections_open{daemon="testd",kind=%q} 1`, c.kind))
		servers[2].Close()
		wantLine(t, reg, fmt.Sprintf(`tern_connections_open{daemon="testd",kind=%q} 0`, c.kind))
		wantLine(t, reg, fmt.Sprintf(`tern_connections_total{daemon="testd",kind=%q} 3`, c.kind))
	}
}

// TestCountPrunes checks that closed connections do not pile up between
// scrapes.
func TestCountPrunes(t *testing.T) {
	reg := countingOn(t, nil)
	l, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	const n = 5 * minPrune
	for range n {
		cl, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		sv, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		sv.Close()
		cl.Close()
	}
	tr := l.(*countingListener).tracker
	tr.mu.Lock()
	kept := len(tr.conns)
	tr.mu.Unlock()
	if kept > minPrune {
		t.Errorf("%d closed connections still tracked after %d accepts", kept, n)
	}
	wantLine(t, reg, fmt.Sprintf(`tern_connections_total{daemon="testd",kind="other"} %d`, n))
	wantLine(t, reg, `tern_connections_open{daemon="testd",kind="other"} 0`)
}

// TestNotCountedByDefault: without CountConnections, Listen returns the
// standard library's listener itself.
func TestNotCountedByDefault(t *testing.T) {
	l, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, ok := l.(*net.TCPListener); !ok {
		t.Errorf("Listen returned %T", l)
	}
}
