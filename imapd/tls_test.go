package main

import (
	"crypto/tls"
	"testing"

	"github.com/emersion/go-imap/v2/imapclient"
)

func TestImplicitTLSAndStartTLS(t *testing.T) {
	e := startServer(t)
	opts := &imapclient.Options{TLSConfig: &tls.Config{InsecureSkipVerify: true}}

	c, err := imapclient.DialTLS(e.tlsAddr, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Caps().Has("STARTTLS") {
		t.Error("STARTTLS offered on an implicit-TLS connection")
	}
	if err := c.Login("demo", "demo").Wait(); err != nil {
		t.Fatalf("login over TLS: %v", err)
	}
	selectInbox(t, c)

	s, err := imapclient.DialStartTLS(e.addr, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Login("alice", "alice").Wait(); err != nil {
		t.Fatalf("login after STARTTLS: %v", err)
	}
	if _, err := s.List("", "*", nil).Collect(); err != nil {
		t.Fatal(err)
	}
}
