package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

func convertString(t *testing.T, in string) string {
	t.Helper()
	var out bytes.Buffer
	if err := encodeBinaryParts(&out, strings.NewReader(in)); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

// Messages without a binary part pass through byte for byte, whatever
// their line ends, boundaries or lack of a final line end.
func TestEncodeBinaryPartsPassThrough(t *testing.T) {
	for _, m := range []string{
		"",
		"Subject: x",
		"Subject: x\r\n\r\nbody\r\n",
		"Subject: x\n\nbody without end",
		"Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\npre\r\n--b\r\nContent-Type: text/plain\r\n\r\none\r\n--b\r\n\r\ntwo\r\n--b--\r\nepilogue\r\n",
		"Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: multipart/alternative; boundary=c\n\n--c\n\nx\n--c--\n--b\nContent-Transfer-Encoding: 8bit\n\n\xe4\n--b--\n",
		"Content-Transfer-Encoding: base64\r\n\r\nAAAA\r\n",
		"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nno blank line\r\n--b--",
		strings.Repeat("x", 200000) + "\r\n\r\n" + strings.Repeat("y", 70000),
	} {
		if got := convertString(t, m); got != m {
			t.Errorf("changed %.60q\n to %.60q", m, got)
		}
	}
}

// A binary part becomes base64 of exactly its octets: the line end before
// the next delimiter is the delimiter's (RFC 2046 5.1.1), bare LFs and CRs
// inside are content.
func TestEncodeBinaryParts(t *testing.T) {
	raw := "\x00-\xe4\n\r\n\n"
	single := "From: a@example.test\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n" + raw
	got := convertString(t, single)
	hdr, body, _ := strings.Cut(got, "\r\n\r\n")
	if !strings.Contains(hdr, "Content-Transfer-Encoding: base64") || strings.Contains(hdr, "binary") {
		t.Fatalf("header not rewritten: %q", hdr)
	}
	if dec, err := base64.StdEncoding.DecodeString(strings.ReplaceAll(body, "\r\n", "")); err != nil || string(dec) != raw {
		t.Fatalf("single part: body %q decodes to %q, %v", body, dec, err)
	}

	big := strings.Repeat("\x01\x02\r\n\x00", 100)
	multi := "Content-Type: multipart/mixed; boundary=\"xy\"\r\n\r\n--xy\r\nContent-Type: text/plain\r\n\r\nhello\r\n" +
		"--xy\r\nContent-Transfer-Encoding:\r\n Binary\r\nContent-Type: application/octet-stream\r\n\r\n" + big + "\r\n--xy--\r\n"
	got = convertString(t, multi)
	parts := strings.Split(got, "--xy")
	if len(parts) != 4 || parts[1] != "\r\nContent-Type: text/plain\r\n\r\nhello\r\n" {
		t.Fatalf("parts %q", parts)
	}
	hdr, body, _ = strings.Cut(parts[2], "\r\n\r\n")
	if hdr != "\r\nContent-Transfer-Encoding: base64\r\nContent-Type: application/octet-stream" {
		t.Errorf("part header %q", hdr)
	}
	for _, l := range strings.Split(strings.TrimSuffix(body, "\r\n"), "\r\n") {
		if len(l) > 76 {
			t.Errorf("base64 line of %d characters", len(l))
		}
	}
	if dec, err := base64.StdEncoding.DecodeString(strings.ReplaceAll(body, "\r\n", "")); err != nil || string(dec) != big {
		t.Errorf("multipart: decodes to %q, %v", dec, err)
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
