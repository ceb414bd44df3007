package main

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"net"
	"slices"
	"strings"
	"testing"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestCapa(t *testing.T) {
	env := newEnv(t)
	ts := env.start(t)
	p := dialPOP(t, ts.addr)
	p.ok("CAPA")
	want := []string{"TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "STLS", "USER", "SASL PLAIN LOGIN", "IMPLEMENTATION tern"}
	if got := p.lines(); !slices.Equal(got, want) {
		t.Errorf("CAPA on loopback:\n got %q\nwant %q", got, want)
	}
	p.login("demo", "demo")
	p.ok("CAPA")
	want = []string{"TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "IMPLEMENTATION tern"}
	if got := p.lines(); !slices.Equal(got, want) {
		t.Errorf("CAPA in TRANSACTION:\n got %q\nwant %q", got, want)
	}
}

func TestUserPass(t *testing.T) {
	env := newEnv(t)
	ts := env.start(t)
	p := dialPOP(t, ts.addr)
	if got := p.cmd("PASS demo"); got != "-ERR send USER first" {
		t.Errorf("PASS before USER: %q", got)
	}
	p.ok("USER demo")
	if got := p.cmd("PASS wrong"); got != "-ERR [AUTH] authentication failed" {
		t.Errorf("wrong password: %q", got)
	}
	// The failed PASS forgot the USER (RFC 1939 7).
	if got := p.cmd("PASS demo"); got != "-ERR send USER first" {
		t.Errorf("PASS after a failed PASS: %q", got)
	}
	p.ok("USER demo@EXAMPLE.test")
	if got := p.ok("PASS demo"); got != "+OK maildrop has 0 messages" {
		t.Errorf("login: %q", got)
	}
	for _, c := range []string{"USER demo", "PASS demo", "AUTH PLAIN", "STLS"} {
		if got := p.cmd(c); !strings.HasPrefix(got, "-ERR ") || !strings.Contains(got, "TRANSACTION") {
			t.Errorf("%s in TRANSACTION: %q", c, got)
		}
	}
}

// TestPasswordWithSpaces: RFC 1939 7, the rest of the PASS line is the
// password.
func TestPasswordWithSpaces(t *testing.T) {
	env := newEnv(t)
	writeUsers(t, env, "demo@example.test:{PLAIN}a b  c\n")
	ts := env.start(t)
	p := dialPOP(t, ts.addr)
	p.login("demo", "a b  c")
}

func TestAuthFailuresClose(t *testing.T) {
	env := newEnv(t)
	ts := env.start(t)
	p := dialPOP(t, ts.addr)
	p.ok("USER demo")
	p.cmd("PASS x")
	p.cmd("AUTH PLAIN " + b64("\x00demo\x00y"))
	p.ok("USER nobody")
	if got := p.cmd("PASS z"); got != "-ERR [AUTH] authentication failed; too many failures, closing" {
		t.Errorf("third failure: %q", got)
	}
	if !p.closed() {
		t.Error("connection open after three failed logins")
	}
	if !strings.Contains(env.logs.String(), "event=auth_failed") {
		t.Error("no auth_failed event in the log")
	}
	if strings.Contains(env.logs.String(), "PASS x") {
		t.Error("a password reached the log")
	}
}

func TestAuthSASL(t *testing.T) {
	env := newEnv(t)
	ts := env.start(t)

	t.Run("PLAIN with initial response", func(t *testing.T) {
		p := dialPOP(t, ts.addr)
		if got := p.cmd("AUTH PLAIN " + b64("\x00demo\x00demo")); got != "+OK maildrop has 0 messages" {
			t.Errorf("AUTH PLAIN: %q", got)
		}
		p.ok("QUIT")
	})
	t.Run("PLAIN with continuation", func(t *testing.T) {
		p := dialPOP(t, ts.addr)
		if got := p.cmd("AUTH plain"); got != "+ " {
			t.Fatalf("AUTH PLAIN without initial response: %q", got)
		}
		p.ok(b64("demo@example.test\x00demo@example.test\x00demo"))
		p.ok("QUIT")
	})
	t.Run("LOGIN", func(t *testing.T) {
		p := dialPOP(t, ts.addr)
		if got := p.cmd("AUTH LOGIN"); got != "+ "+b64("Username:") {
			t.Fatalf("AUTH LOGIN: %q", got)
		}
		if got := p.cmd(b64("alice")); got != "+ "+b64("Password:") {
			t.Fatalf("AUTH LOGIN user: %q", got)
		}
		p.ok(b64("alice"))
		p.ok("QUIT")
	})
	t.Run("LOGIN with initial response", func(t *testing.T) {
		p := dialPOP(t, ts.addr)
		if got := p.cmd("AUTH LOGIN " + b64("alice")); got != "+ "+b64("Password:") {
			t.Fatalf("AUTH LOGIN user: %q", got)
		}
		p.ok(b64("alice"))
	})
	t.Run("errors", func(t *testing.T) {
		p := dialPOP(t, ts.addr)
		p.ok("AUTH")
		if got := p.lines(); !slices.Equal(got, []string{"PLAIN", "LOGIN"}) {
			t.Errorf("AUTH without mechanism lists %q", got)
		}
		if got := p.cmd("AUTH CRAM-MD5"); got != "-ERR unsupported SASL mechanism" {
			t.Errorf("unknown mechanism: %q", got)
		}
		p.cmd("AUTH PLAIN")
		if got := p.cmd("*"); got != "-ERR authentication cancelled" {
			t.Errorf("cancel: %q", got)
		}
		if got := p.cmd("AUTH PLAIN !!notbase64"); got != "-ERR [AUTH] authentication failed" {
			t.Errorf("bad base64: %q", got)
		}
		if got := p.cmd("AUTH PLAIN ="); got != "-ERR [AUTH] authentication failed" {
			t.Errorf("empty initial response: %q", got)
		}
		if got := p.cmd("AUTH PLAIN " + b64("\x00demo\x00wrong")); got != "-ERR [AUTH] authentication failed; too many failures, closing" {
			t.Errorf("third failure: %q", got)
		}
	})
}

// TestPlaintextNeedsTLS: away from loopback, USER/PASS and AUTH are refused
// and not advertised until TLS is on (RFC 2595 2.1, RFC 2449 6.3).
func TestPlaintextNeedsTLS(t *testing.T) {
	ip := nonLoopbackIP(t)
	env := newEnv(t)
	ts := env.startOn(t, net.JoinHostPort(ip, "0"))
	p := dialPOP(t, ts.addr)
	p.ok("CAPA")
	capa := p.lines()
	if slices.Contains(capa, "USER") || slices.ContainsFunc(capa, func(s string) bool { return strings.HasPrefix(s, "SASL") }) {
		t.Errorf("CAPA without TLS offers plaintext logins: %q", capa)
	}
	for _, c := range []string{"USER demo", "PASS demo", "AUTH PLAIN " + b64("\x00demo\x00demo"), "AUTH"} {
		if got := p.cmd(c); !strings.HasPrefix(got, "-ERR [AUTH] ") {
			t.Errorf("%s without TLS: %q", c, got)
		}
	}
	// Refusals are not failed logins: after STLS the login works.
	p.ok("STLS")
	tc := startTLS(t, env, p)
	tc.ok("CAPA")
	if capa := tc.lines(); !slices.Contains(capa, "USER") || slices.Contains(capa, "STLS") {
		t.Errorf("CAPA after STLS: %q", capa)
	}
	tc.login("demo", "demo")
}

// TestSTLSDiscardsPipelined: RFC 2595 4, nothing the client sent before
// the handshake is acted on after it.
func TestSTLSDiscardsPipelined(t *testing.T) {
	env := newEnv(t)
	ts := env.start(t)
	p := dialPOP(t, ts.addr)
	p.send("STLS\r\nUSER demo\r\nQUIT\r\n")
	if got := p.line(); got != "+OK begin TLS negotiation" {
		t.Fatalf("STLS: %q", got)
	}
	tc := startTLS(t, env, p)
	// USER and QUIT were discarded: PASS finds no USER, and the
	// session is still open.
	if got := tc.cmd("PASS demo"); got != "-ERR send USER first" {
		t.Errorf("PASS after pipelined USER: %q", got)
	}
	if got := tc.cmd("STLS"); got != "-ERR TLS is already active" {
		t.Errorf("second STLS: %q", got)
	}
	tc.login("demo", "demo")
	tc.ok("QUIT")
}

func TestImplicitTLS(t *testing.T) {
	env := newEnv(t)
	env.deliver(t, "demo@example.test", 1)
	ts := env.start(t)
	p := dialPOPS(t, env, ts)
	p.ok("CAPA")
	if capa := p.lines(); slices.Contains(capa, "STLS") || !slices.Contains(capa, "USER") {
		t.Errorf("CAPA over TLS: %q", capa)
	}
	p.login("demo", "demo")
	p.ok("RETR 1")
	if got := p.body(); string(got) != string(crlf(testMessage(1))) {
		t.Errorf("RETR over TLS: %q", got)
	}
	p.ok("QUIT")
}

// startTLS runs the client side of the handshake after STLS's +OK.
func startTLS(t *testing.T, env *testEnv, p *popClient) *popClient {
	t.Helper()
	tc := tls.Client(p.conn, env.tlsClientConfig(t))
	if err := tc.Handshake(); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	return &popClient{t: t, conn: tc, r: bufio.NewReader(tc)}
}

// nonLoopbackIP finds an address of this machine that is not loopback, or
// skips the test.
func nonLoopbackIP(t *testing.T) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Skipf("no interface addresses: %v", err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			l, err := net.Listen("tcp", net.JoinHostPort(n.IP.String(), "0"))
			if err != nil {
				continue
			}
			l.Close()
			return n.IP.String()
		}
	}
	t.Skip("this machine has no non-loopback IPv4 address to test from")
	return ""
}
