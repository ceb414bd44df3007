package main

import (
	"bufio"
	"bytes"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"tern/common/config"
)

// lmtpReplyLine is what every line lmtpd writes must look like (RFC 5321
// 4.2: a code, a separator, text; RFC 2033 4.2 for the per-recipient
// replies).
var lmtpReplyLine = regexp.MustCompile(`^[2-5][0-9][0-9][ -][^\r\n]*\r\n$`)

// FuzzLMTPSession feeds whole sessions of arbitrary bytes to a real lmtpd
// on a loopback socket, with real Maildirs behind it: commands and their
// parameters (LHLO, MAIL with SIZE/BODY/SMTPUTF8, RCPT with NOTIFY/ORCPT,
// addresses), DATA and BDAT content. Every reply line must be well formed,
// and the server must keep answering new connections.
func FuzzLMTPSession(f *testing.F) {
	for _, s := range []string{
		"LHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<demo@example.test>\r\nDATA\r\nSubject: x\r\n\r\nhi\r\n.\r\nQUIT\r\n",
		"LHLO c\r\nMAIL FROM:<> SIZE=10 BODY=8BITMIME SMTPUTF8\r\nRCPT TO:<team@example.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;x@y\r\nRCPT TO:<nobody@example.test>\r\nBDAT 5 LAST\r\nabcde",
		"LHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<demo+folder@example.test>\r\nDATA\r\n..\r\nbare\nlf\r\n.\r\n",
		"HELO x\r\nEHLO y\r\nVRFY demo\r\nEXPN team\r\nRSET\r\nNOOP\r\nHELP\r\nSTARTTLS\r\nAUTH PLAIN\r\n",
		"LHLO c\r\nMAIL FROM:<\"quoted local\"@b.example> RET=HDRS ENVID=x\r\nRCPT TO:<postmaster>\r\nDATA\r\n\r\n.\r\n",
		"LHLO " + string(bytes.Repeat([]byte("a"), 5000)) + "\r\n",
		"\x00\xff\r\n\r\n\n\r",
	} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "users"), []byte(testUsers), 0o600); err != nil {
		f.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "aliases"), []byte(testAliases), 0o600); err != nil {
		f.Fatal(err)
	}
	cfg := config.Default()
	cfg.Hostname = "mx.example.test"
	cfg.Domains = []string{"example.test"}
	cfg.Users = filepath.Join(dir, "users")
	cfg.Aliases = filepath.Join(dir, "aliases")
	cfg.Maildir = filepath.Join(dir, "vmail/%d/%n/Maildir")
	cfg.StateDir = filepath.Join(dir, "state")
	cfg.LMTPD.Sieve = filepath.Join(dir, "vmail/%d/%n/sieve/active.sieve")
	cfg.LMTPD.MaxMessageSize = 1 << 20
	cfg.LMTPD.ReadTimeout = config.Duration(2 * time.Second)
	cfg.Storage.MinFreeSpace = 0
	srv, err := newServerFromConfig(&cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		f.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	go srv.serve(ln)
	f.Cleanup(func() { srv.shutdown(time.Second) })
	addr := ln.Addr().String()

	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) > 64<<10 {
			return
		}
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatalf("lmtpd no longer accepts connections: %v", err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		go func() {
			c.Write(in)
			c.(*net.TCPConn).CloseWrite()
		}()
		r := bufio.NewReader(c)
		greeting, err := r.ReadString('\n')
		if err != nil || !lmtpReplyLine.MatchString(greeting) {
			t.Fatalf("greeting %q: %v", greeting, err)
		}
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				if l != "" {
					t.Fatalf("partial reply line %q", l)
				}
				var ne net.Error
				if e, ok := err.(net.Error); ok && e.Timeout() {
					ne = e
					t.Fatalf("lmtpd did not end the session after the input: %v", ne)
				}
				return
			}
			if !lmtpReplyLine.MatchString(l) {
				t.Fatalf("malformed reply line %q", l)
			}
		}
	})
}
