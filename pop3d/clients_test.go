package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// Real POP3 clients against the real server: Python's poplib through every
// command, curl for LIST/RETR/UIDL (fetchmail and getmail6 are in
// download_test.go).

func TestPoplib(t *testing.T) {
	python := need(t, "python3", "python3")
	env := newEnv(t)
	msgs := env.deliver(t, "demo@example.test", 4)
	snap := env.inbox(t, "demo@example.test")
	ts := env.start(t)
	host, port, _ := net.SplitHostPort(ts.addr)
	_, tlsPort, _ := net.SplitHostPort(ts.tlsAddr)
	out, err := exec.Command(python, "testdata/poplib_client.py", host, port, tlsPort, env.cfg.TLS.Cert).Output()
	if err != nil {
		t.Fatalf("poplib client: %v\n%s", err, stderrOf(err))
	}
	var r struct {
		Welcome, StatBeforeLogin, Stls, User, Pass, List1, Uidl2, Top, Noop, Dele1 string
		RetrDeleted, RetrMissing, Rset, Dele2, Quit, Auth, TLSQuit                 string
		Capa, CapaTLS                                                              map[string][]string
		Stat, TLSStat                                                              []int
		List, Uidl                                                                 []string
		Retr                                                                       []struct{ Resp, Msg string }
	}
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	total := 0
	for _, m := range msgs {
		total += len(crlf(m))
	}
	check := func(what, got, want string) {
		t.Helper()
		if got != want {
			t.Errorf("%s: got %q, want %q", what, got, want)
		}
	}
	check("welcome", r.Welcome, "+OK mail.example.test POP3 server ready")
	if _, ok := r.Capa["STLS"]; !ok {
		t.Errorf("CAPA before STLS: %v", r.Capa)
	}
	if _, ok := r.CapaTLS["STLS"]; ok || !slices.Equal(r.CapaTLS["SASL"], []string{"PLAIN", "LOGIN"}) {
		t.Errorf("CAPA after STLS: %v", r.CapaTLS)
	}
	check("STAT before login", r.StatBeforeLogin, "-ERR STAT is not valid in the AUTHORIZATION state")
	check("STLS", r.Stls, "+OK begin TLS negotiation")
	check("USER", r.User, "+OK send PASS")
	check("PASS", r.Pass, "+OK maildrop has 4 messages")
	if !slices.Equal(r.Stat, []int{4, total}) {
		t.Errorf("STAT %v, want [4 %d]", r.Stat, total)
	}
	for i, l := range r.List {
		check("LIST line", l, fmt.Sprintf("%d %d", i+1, len(crlf(msgs[i]))))
	}
	check("LIST 1", r.List1, fmt.Sprintf("+OK 1 %d", len(crlf(msgs[0]))))
	for i, l := range r.Uidl {
		check("UIDL line", l, fmt.Sprintf("%d %s", i+1, snap.Messages[i].Key))
	}
	check("UIDL 2", r.Uidl2, "+OK 2 "+snap.Messages[1].Key)
	if len(r.Retr) != 4 {
		t.Fatalf("RETR of %d messages", len(r.Retr))
	}
	for i, m := range r.Retr {
		check("RETR status", m.Resp, fmt.Sprintf("+OK %d octets", len(crlf(msgs[i]))))
		check(fmt.Sprintf("RETR %d", i+1), m.Msg, string(msgs[i]))
	}
	head, _, _ := strings.Cut(string(msgs[0]), "\n\n")
	check("TOP 1 1", r.Top, head+"\n\nBody of message 1.\n")
	check("NOOP", r.Noop, "+OK")
	check("DELE 1", r.Dele1, "+OK message 1 deleted")
	check("RETR deleted", r.RetrDeleted, "-ERR message already deleted")
	check("RETR missing", r.RetrMissing, "-ERR no such message")
	check("RSET", r.Rset, "+OK maildrop has 4 messages")
	check("DELE 2", r.Dele2, "+OK message 2 deleted")
	check("QUIT", r.Quit, "+OK mail.example.test POP3 server signing off (3 messages left)")
	check("AUTH PLAIN", r.Auth, "+OK maildrop has 3 messages")
	if !slices.Equal(r.TLSStat, []int{3, total - len(crlf(msgs[1]))}) {
		t.Errorf("STAT over TLS %v", r.TLSStat)
	}
	if got := keysOf(env.inbox(t, "demo@example.test")); !slices.Equal(got, []string{snap.Messages[0].Key, snap.Messages[2].Key, snap.Messages[3].Key}) {
		t.Errorf("after QUIT: %q", got)
	}
}

func TestCurl(t *testing.T) {
	curl := need(t, "curl", "curl")
	env := newEnv(t)
	msgs := env.deliver(t, "demo@example.test", 3)
	ts := env.start(t)
	run := func(args ...string) string {
		t.Helper()
		args = append([]string{"-sS", "--max-time", "30", "-u", "demo:demo"}, args...)
		out, err := exec.Command(curl, args...).Output()
		if err != nil {
			t.Fatalf("curl %q: %v\n%s", args, err, stderrOf(err))
		}
		return string(out)
	}
	base := "pop3://" + ts.addr + "/"
	var want strings.Builder
	for i, m := range msgs {
		fmt.Fprintf(&want, "%d %d\r\n", i+1, len(crlf(m)))
	}
	if got := run(base); got != want.String() {
		t.Errorf("curl LIST:\n got %q\nwant %q", got, want.String())
	}
	if got := run(base + "2"); got != string(crlf(msgs[1])) {
		t.Errorf("curl RETR 2:\n got %q\nwant %q", got, crlf(msgs[1]))
	}
	snap := env.inbox(t, "demo@example.test")
	want.Reset()
	for i, m := range snap.Messages {
		fmt.Fprintf(&want, "%d %s\r\n", i+1, m.Key)
	}
	if got := run("-X", "UIDL", base); got != want.String() {
		t.Errorf("curl UIDL:\n got %q\nwant %q", got, want.String())
	}
	// Over implicit TLS with the certificate checked.
	if got := run("--cacert", env.cfg.TLS.Cert, "--resolve", "localhost:"+portOf(ts.tlsAddr)+":127.0.0.1",
		"pop3s://localhost:"+portOf(ts.tlsAddr)+"/1"); got != string(crlf(msgs[0])) {
		t.Errorf("curl pop3s RETR 1: %q", got)
	}
}

func portOf(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

func stderrOf(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return string(ee.Stderr)
	}
	return ""
}
