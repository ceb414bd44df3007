package binarymime

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
)

func convertString(t *testing.T, in string) string {
	t.Helper()
	var out bytes.Buffer
	if err := Encode(&out, strings.NewReader(in)); err != nil {
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

// Encode reuses its buffers: conversions running at once, each through
// Reader's pipe and some stopped before their end, give every message
// exactly what it gives alone.
func TestEncodeReusedBuffers(t *testing.T) {
	msgs := []string{
		"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n" + strings.Repeat("\x00\xff\n", 30000),
		"Subject: plain\r\n\r\n" + strings.Repeat("line\r\n", 20000),
		"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Transfer-Encoding: binary\r\n\r\n\x01\r\n--b--\r\n",
	}
	want := make([]string, len(msgs))
	for i, m := range msgs {
		want[i] = convertString(t, m)
	}
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				n := (g + i) % len(msgs)
				r, stop := Reader(strings.NewReader(msgs[n]))
				if i%5 == 4 {
					// Stopped half way: its buffers go back all the same.
					io.CopyN(io.Discard, r, 100)
					stop()
					continue
				}
				got, err := io.ReadAll(r)
				stop()
				if err != nil || string(got) != want[n] {
					errs <- fmt.Sprintf("message %d: %d bytes, %v", n, len(got), err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
