package main

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

// RFC 3516: a binary APPEND (literal8) of a binary part is stored
// re-encoded: BODY[1] is base64, never raw octets, and BINARY[1] and
// BINARY.SIZE[1] give back exactly the octets appended (bare LFs do not
// grow it). The literal is sent over plain IMAP and implicit TLS.
func TestAppendBinaryPart(t *testing.T) {
	raw := "\x00-\xe4\n\r\n\n"
	msg := "From: user@example.test\r\nMime-Version: 1.0\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n" + raw
	e := startServer(t)
	plain, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	appendLiteral8(t, plain, "Binplain", msg)
	secure, err := tls.Dial("tcp", e.tlsAddr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	appendLiteral8(t, secure, "Bintls", msg)

	c := e.login(t, nil)
	for _, name := range []string{"Binplain", "Bintls"} {
		if _, err := c.Select(name, nil).Wait(); err != nil {
			t.Fatal(err)
		}
		body := &imap.FetchItemBodySection{Part: []int{1}, Peek: true}
		bin := &imap.FetchItemBinarySection{Part: []int{1}, Peek: true}
		msgs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{
			BodySection:       []*imap.FetchItemBodySection{body},
			BinarySection:     []*imap.FetchItemBinarySection{bin},
			BinarySectionSize: []*imap.FetchItemBinarySectionSize{{Part: []int{1}}},
		}).Collect()
		if err != nil || len(msgs) != 1 {
			t.Fatalf("%s: fetch: %v %v", name, msgs, err)
		}
		m := msgs[0]
		if got := string(m.FindBodySection(body)); got != base64.StdEncoding.EncodeToString([]byte(raw))+"\r\n" {
			t.Errorf("%s: BODY[1] = %q, want base64 of the part", name, got)
		}
		if got := string(m.FindBinarySection(bin)); got != raw {
			t.Errorf("%s: BINARY[1] = %q, want %q", name, got, raw)
		}
		if len(m.BinarySectionSize) != 1 || m.BinarySectionSize[0].Size != uint32(len(raw)) {
			t.Errorf("%s: BINARY.SIZE[1] = %+v, want %d", name, m.BinarySectionSize, len(raw))
		}
	}
}

// appendLiteral8 logs in over conn and APPENDs msg as a literal8
// (RFC 3516 4.3) to a new mailbox name.
func appendLiteral8(t *testing.T, conn net.Conn, name, msg string) {
	t.Helper()
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(conn)
	expect := func(prefix string) {
		t.Helper()
		line, err := r.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, prefix) {
			t.Fatalf("want %q, got %q %v", prefix, line, err)
		}
	}
	expect("* OK")
	fmt.Fprintf(conn, "a LOGIN demo demo\r\n")
	expect("a OK")
	fmt.Fprintf(conn, "b CREATE %s\r\n", name)
	expect("b OK")
	fmt.Fprintf(conn, "c APPEND %s ~{%d}\r\n", name, len(msg))
	expect("+")
	fmt.Fprintf(conn, "%s\r\n", msg)
	expect("c OK")
}
