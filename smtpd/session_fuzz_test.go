package main

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"regexp"
	"testing"
	"time"

	"tern/common/config"
	"tern/common/daemon"
	"tern/common/tlsconf"
)

// smtpReplyLine is what every line smtpd writes must look like (RFC 5321
// 4.2).
var smtpReplyLine = regexp.MustCompile(`^[2-5][0-9][0-9][ -][^\r\n]*\r\n$`)

// FuzzSMTPSession feeds whole sessions of arbitrary bytes to a real smtpd
// on the MX and submission listeners: commands, their parameters and
// addresses, AUTH exchanges, DATA and BDAT content. Every reply line must
// be well formed and the server must keep accepting connections.
func FuzzSMTPSession(f *testing.F) {
	for _, s := range []string{
		"EHLO c\r\nMAIL FROM:<a@b.example> SIZE=10 BODY=8BITMIME\r\nRCPT TO:<demo@example.test> NOTIFY=NEVER\r\nDATA\r\nSubject: x\r\n\r\nhi\r\n.\r\nQUIT\r\n",
		"EHLO c\r\nAUTH PLAIN AGRlbW8AZGVtbw==\r\nMAIL FROM:<demo@example.test>\r\nRCPT TO:<x@remote.example>\r\nBDAT 5 LAST\r\nabcde",
		"EHLO c\r\nAUTH LOGIN\r\nZGVtbw==\r\nd3Jvbmc=\r\nAUTH PLAIN =\r\n*\r\n",
		"HELO x\r\nVRFY demo\r\nEXPN sales\r\nHELP\r\nNOOP\r\nRSET\r\nSTARTTLS\r\n",
		"EHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<\"q l\"@example.test>\r\nDATA\r\nbare\nlf\r\n.\r\n",
		"GET / HTTP/1.1\r\n\r\n",
		"\x00\xff\r\n\r\n\n\r",
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	cfg := newTestConfig(f, `[login]
delay = "0s"
`)
	cfg.SMTPD.ReadTimeout = config.Duration(2 * time.Second)
	cfg.Storage.MinFreeSpace = 0
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	tlsCfg, err := tlsconf.Load(cfg.TLS, cfg.Hostname)
	if err != nil {
		f.Fatal(err)
	}
	srv, err := newServer(cfg, log, tlsCfg)
	if err != nil {
		f.Fatal(err)
	}
	if err := srv.listen(); err != nil {
		f.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.serve(ctx, daemon.ShutdownGrace) }()
	f.Cleanup(func() { cancel(); <-done })
	mx, sub := srv.addrs(kindMX)[0], srv.addrs(kindSubmission)[0]

	f.Fuzz(func(t *testing.T, in []byte, submission bool) {
		if len(in) > 64<<10 {
			return
		}
		addr := mx
		if submission {
			addr = sub
		}
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatalf("smtpd no longer accepts connections: %v", err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		go func() {
			c.Write(in)
			c.(*net.TCPConn).CloseWrite()
		}()
		r := bufio.NewReader(c)
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					t.Fatalf("smtpd did not end the session after the input")
				}
				return
			}
			if !smtpReplyLine.MatchString(l) {
				t.Fatalf("malformed reply line %q", l)
			}
		}
	})
}
