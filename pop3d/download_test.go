package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// fetchmail and getmail6 download a mailbox of 200 messages; what they
// hand on must be byte-for-byte what was delivered, both when they keep
// the mail on the server and when they delete it.

const downloadCount = 200

func TestFetchmail(t *testing.T) {
	fetchmail := need(t, "fetchmail", "fetchmail")
	for _, keep := range []bool{true, false} {
		t.Run(fmt.Sprintf("keep=%v", keep), func(t *testing.T) {
			env := newEnv(t)
			msgs := env.deliver(t, "demo@example.test", downloadCount)
			ts := env.start(t)
			home := t.TempDir()
			out := filepath.Join(home, "out")
			if err := os.Mkdir(out, 0o700); err != nil {
				t.Fatal(err)
			}
			keepOpt := "no keep"
			if keep {
				keepOpt = "keep"
			}
			// invisible: no Received line of fetchmail's own; no rewrite:
			// headers as they are; sslproto '': no STLS on loopback (the
			// TLS variant below checks the certificate); the MDA writes
			// each message, as fetchmail hands it on, to its own file.
			rc := fmt.Sprintf(`set no syslog
set no bouncemail
set invisible
poll 127.0.0.1 proto POP3 port %s uidl
  user "demo" there with password "demo" is "demo" here
  options fetchall %s no rewrite sslproto ''
  mda "/bin/sh -c 'cat > $(mktemp %s/msg.XXXXXXXX)'"
`, portOf(ts.addr), keepOpt, out)
			runFetchmail(t, fetchmail, home, rc)
			checkDownloaded(t, msgs, readDir(t, out))
			left := len(env.inbox(t, "demo@example.test").Messages)
			if keep && left != downloadCount || !keep && left != 0 {
				t.Errorf("keep=%v: %d messages left on the server", keep, left)
			}
		})
	}
}

// TestFetchmailTLS: fetchmail over implicit TLS, checking the certificate.
func TestFetchmailTLS(t *testing.T) {
	fetchmail := need(t, "fetchmail", "fetchmail")
	env := newEnv(t)
	msgs := env.deliver(t, "demo@example.test", 20)
	ts := env.start(t)
	home := t.TempDir()
	out := filepath.Join(home, "out")
	if err := os.Mkdir(out, 0o700); err != nil {
		t.Fatal(err)
	}
	rc := fmt.Sprintf(`set no syslog
set invisible
poll 127.0.0.1 proto POP3 port %s uidl
  user "demo" there with password "demo" is "demo" here
  options fetchall no keep no rewrite ssl sslcertck sslcertfile "%s" sslcommonname localhost
  mda "/bin/sh -c 'cat > $(mktemp %s/msg.XXXXXXXX)'"
`, portOf(ts.tlsAddr), env.cfg.TLS.Cert, out)
	runFetchmail(t, fetchmail, home, rc)
	checkDownloaded(t, msgs, readDir(t, out))
}

func runFetchmail(t *testing.T, fetchmail, home, rc string) {
	t.Helper()
	rcPath := filepath.Join(home, "fetchmailrc")
	if err := os.WriteFile(rcPath, []byte(rc), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(fetchmail, "-f", rcPath, "-i", filepath.Join(home, "fetchids"),
		"--pidfile", filepath.Join(home, "pid"), "--nodetach", "-v")
	cmd.Env = append(os.Environ(), "HOME="+home, "FETCHMAILHOME="+home)
	out, err := runTimeout(t, cmd, 2*time.Minute)
	if err != nil {
		t.Fatalf("fetchmail: %v\n%s", err, out)
	}
}

// TestGetmail: getmail6 hands each message to an LMTP server in the test
// (go-smtp), which keeps it as received. getmail's Maildir and MDA
// destinations deliver from a forked child whose exit getmail can miss
// (a lost SIGCHLD wake-up makes it wait 60 s and fail the message), so they
// make a flaky test; its LMTP destination does not fork.
func TestGetmail(t *testing.T) {
	getmail := need(t, "getmail", "getmail6")
	for _, keep := range []bool{true, false} {
		t.Run(fmt.Sprintf("keep=%v", keep), func(t *testing.T) {
			env := newEnv(t)
			msgs := env.deliver(t, "demo@example.test", downloadCount)
			ts := env.start(t)
			sink := startLMTPSink(t)
			home := t.TempDir()
			// received, delivered_to: no headers of getmail's own.
			rc := fmt.Sprintf(`[retriever]
type = SimplePOP3Retriever
server = 127.0.0.1
port = %s
username = demo
password = demo

[destination]
type = MDA_lmtp
host = 127.0.0.1
port = %s
override = demo@example.test

[options]
read_all = true
delete = %v
received = false
delivered_to = false
verbose = 0
`, portOf(ts.addr), portOf(sink.addr), !keep)
			rcPath := filepath.Join(home, "getmailrc")
			if err := os.WriteFile(rcPath, []byte(rc), 0o600); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(getmail, "--getmaildir", home, "--rcfile", rcPath)
			cmd.Env = append(os.Environ(), "HOME="+home)
			if out, err := runTimeout(t, cmd, 2*time.Minute); err != nil {
				t.Fatalf("getmail: %v\n%s", err, out)
			}
			checkDownloaded(t, msgs, sink.messages())
			left := len(env.inbox(t, "demo@example.test").Messages)
			if keep && left != downloadCount || !keep && left != 0 {
				t.Errorf("keep=%v: %d messages left on the server", keep, left)
			}
		})
	}
}

// lmtpSink is an LMTP server that keeps every message it is given, with
// the LMTP transport undone: dot-stuffing by go-smtp, CRLF back to LF here.
type lmtpSink struct {
	addr string
	mu   sync.Mutex
	msgs [][]byte
}

func startLMTPSink(t *testing.T) *lmtpSink {
	t.Helper()
	sink := &lmtpSink{}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sink.addr = l.Addr().String()
	srv := smtp.NewServer(sink)
	srv.LMTP = true
	srv.Domain = "localhost"
	srv.MaxMessageBytes = 1 << 20
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return sink
}

func (s *lmtpSink) NewSession(*smtp.Conn) (smtp.Session, error) { return sinkSession{s}, nil }

func (s *lmtpSink) messages() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.msgs)
}

type sinkSession struct{ s *lmtpSink }

func (sinkSession) Reset()                               {}
func (sinkSession) Logout() error                        { return nil }
func (sinkSession) Mail(string, *smtp.MailOptions) error { return nil }
func (sinkSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (ss sinkSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	ss.s.mu.Lock()
	ss.s.msgs = append(ss.s.msgs, bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n")))
	ss.s.mu.Unlock()
	return nil
}

func runTimeout(t *testing.T, cmd *exec.Cmd, d time.Duration) ([]byte, error) {
	t.Helper()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.Bytes(), err
	case <-time.After(d):
		cmd.Process.Kill()
		<-done
		return out.Bytes(), fmt.Errorf("%s did not finish in %v", cmd.Path, d)
	}
}

func readDir(t *testing.T, dir string) [][]byte {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got [][]byte
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, b)
	}
	return got
}

// checkDownloaded compares what a client wrote with what was delivered, as
// sets: clients name files in their own way.
func checkDownloaded(t *testing.T, want, got [][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("downloaded %d messages, want %d", len(got), len(want))
	}
	ws := make([]string, len(want))
	for i, m := range want {
		ws[i] = string(m)
	}
	gs := make([]string, len(got))
	for i, m := range got {
		gs[i] = string(m)
	}
	slices.Sort(ws)
	slices.Sort(gs)
	for i := range min(len(ws), len(gs)) {
		if ws[i] != gs[i] {
			t.Fatalf("a downloaded message differs from every delivered one:\n got %q\nwant %q", gs[i], ws[i])
		}
	}
	if len(ws) > 0 && !strings.Contains(ws[0], "\n.\n") {
		t.Fatal("test messages lack a line that needs byte-stuffing")
	}
}
