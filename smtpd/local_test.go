package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"tern/common/config"
)

// localSocketConfig is a test config whose local submission socket sits in
// a world-traversable directory, so that a process running as another
// user can reach it.
func localSocketConfig(t *testing.T, extra string) (sock string, env *testEnv) {
	t.Helper()
	pub, err := os.MkdirTemp("", "tern-submit-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(pub) })
	if err := os.Chmod(pub, 0o755); err != nil {
		t.Fatal(err)
	}
	sock = filepath.Join(pub, "submit.sock")
	cfg := newTestConfig(t, extra)
	cfg.SMTPD.LocalSubmit = "unix:" + sock
	startLMTP(t, cfg)
	env = startSMTPD(t, cfg)
	return sock, env
}

// submitLocal runs one transaction on the local socket and returns the
// error of the first step that failed ("" when the message was accepted).
func submitLocal(sock, from, to, body string) string {
	c, err := net.DialTimeout("unix", sock, 5*time.Second)
	if err != nil {
		return "dial: " + err.Error()
	}
	cl := smtp.NewClient(c)
	defer cl.Close()
	if err := cl.Hello("localhost"); err != nil {
		return "EHLO: " + err.Error()
	}
	if ok, _ := cl.Extension("AUTH"); ok {
		return "AUTH offered on the local socket"
	}
	if err := cl.Mail(from, nil); err != nil {
		return "MAIL: " + err.Error()
	}
	if err := cl.Rcpt(to, nil); err != nil {
		return "RCPT: " + err.Error()
	}
	w, err := cl.Data()
	if err != nil {
		return "DATA: " + err.Error()
	}
	io.WriteString(w, body)
	if err := w.Close(); err != nil {
		return "DATA end: " + err.Error()
	}
	cl.Quit()
	return ""
}

// TestLocalSubmitHelper is not a test: it is the child process that the
// tests below run under another uid, to connect as that user.
func TestLocalSubmitHelper(t *testing.T) {
	sock := os.Getenv("TERN_TEST_LOCAL_SOCK")
	if sock == "" {
		t.Skip("helper process only")
	}
	for _, from := range strings.Split(os.Getenv("TERN_TEST_LOCAL_FROM"), ",") {
		fmt.Printf("%s => %s\n", from, submitLocal(sock, from, "demo@example.test",
			"Subject: local "+from+"\r\n\r\nbody\r\n"))
	}
}

// runAsNobody runs TestLocalSubmitHelper as user nobody and returns its
// output lines "from => error".
func runAsNobody(t *testing.T, sock string, froms ...string) map[string]string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a process as nobody")
	}
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody")
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	// The test binary lives in a private build directory; copy it where
	// nobody can run it.
	exe := filepath.Join(filepath.Dir(sock), "smtpd.test")
	data, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(exe, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestLocalSubmitHelper$", "-test.v")
	cmd.Env = append(os.Environ(), "TERN_TEST_LOCAL_SOCK="+sock, "TERN_TEST_LOCAL_FROM="+strings.Join(froms, ","))
	cmd.Dir = filepath.Dir(sock)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper as nobody: %v\n%s", err, out)
	}
	res := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(line, " => "); ok {
			res[k] = v
		}
	}
	return res
}

func TestLocalSubmitSocketMode(t *testing.T) {
	sock, _ := localSocketConfig(t, "")
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o666 {
		t.Fatalf("local submission socket mode %v, want socket 0666", fi.Mode())
	}
}

// Root is trusted: it may set any sender; the message gets a Received
// field naming uid 0, and a From: field when it has none.
func TestLocalSubmitRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("runs as root to test the trusted path")
	}
	sock, env := localSocketConfig(t, "")
	if e := submitLocal(sock, "someone@remote.test", "demo@example.test", "Subject: hi\r\n\r\nbody\r\n"); e != "" {
		t.Fatal(e)
	}
	sink := &lmtpSink{dir: filepath.Join(env.dir, "mail")}
	var msgs []string
	waitFor(t, 5*time.Second, "delivery", func() bool { msgs = sink.messages("demo@example.test"); return len(msgs) == 1 })
	m := msgs[0]
	for _, want := range []string{"Received: by mail.example.test (tern, from userid 0 root)", "From: <someone@remote.test>\r\n", "Message-ID: <", "Date: "} {
		if !strings.Contains(m, want) {
			t.Errorf("message lacks %q:\n%s", want, m)
		}
	}
	// The null sender is allowed to trusted users (vacation programs).
	if e := submitLocal(sock, "", "demo@example.test", "From: x@example.test\r\n\r\nbody\r\n"); e != "" {
		t.Fatalf("root with <>: %s", e)
	}
}

// An untrusted user cannot forge a sender, the null sender included; its
// own login@hostname is accepted, and relaying to a remote domain works
// (the peer counts as authenticated).
func TestLocalSubmitUntrusted(t *testing.T) {
	sock, env := localSocketConfig(t, "")
	res := runAsNobody(t, sock, "demo@example.test", "", "NOBODY@mail.example.test", "nobody@mail.example.test")
	for _, forged := range []string{"demo@example.test", ""} {
		if !strings.HasPrefix(res[forged], "MAIL: SMTP error 553") || !strings.Contains(res[forged], "<nobody@mail.example.test>") {
			t.Errorf("nobody with MAIL FROM:<%s>: got %q, want 553 naming its own sender", forged, res[forged])
		}
	}
	if res["nobody@mail.example.test"] != "" || res["NOBODY@mail.example.test"] != "" {
		t.Fatalf("nobody's own sender refused: %q", res)
	}
	sink := &lmtpSink{dir: filepath.Join(env.dir, "mail")}
	var msgs []string
	waitFor(t, 5*time.Second, "delivery", func() bool { msgs = sink.messages("demo@example.test"); return len(msgs) == 2 })
	for _, m := range msgs {
		if !strings.Contains(m, "(tern, from userid 65534 nobody)") {
			t.Errorf("no Received field naming the uid:\n%s", m)
		}
		if strings.Contains(m, "demo@example.test>\r\nSubject") {
			t.Errorf("forged message delivered:\n%s", m)
		}
	}
}

// smtpd.trusted_users lets a named user set any sender.
func TestLocalSubmitTrustedUser(t *testing.T) {
	sock, _ := localSocketConfig(t, `trusted_users = ["nobody"]`+"\n")
	res := runAsNobody(t, sock, "newsletter@example.test")
	if res["newsletter@example.test"] != "" {
		t.Fatalf("trusted nobody refused: %q", res)
	}
}

// A TCP connection never reaches the local session: peerOf refuses what
// is not a unix socket.
func TestPeerOfNeedsUnixSocket(t *testing.T) {
	s := &server{live: config.NewLive(newTestConfig(t, ""))}
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if _, err := s.peerOf(a); !errors.Is(err, errNoCredentials) {
		t.Fatalf("peerOf(pipe) = %v, want errNoCredentials", err)
	}
}
