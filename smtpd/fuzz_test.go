package main

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"testing"
)

func FuzzSplitAddr(f *testing.F) {
	for _, a := range relayAttempts {
		f.Add(strings.Trim(a, "<>"))
	}
	f.Add("demo@example.test")
	f.Fuzz(func(t *testing.T, a string) {
		local, domain, err := splitAddr(a)
		if err != nil {
			return
		}
		if local == "" || domain == "" || strings.ContainsAny(domain, "@ \r\n") && !strings.HasPrefix(domain, "[") {
			t.Fatalf("%q -> %q, %q", a, local, domain)
		}
	})
}

// FuzzStrictReader: whatever passes has CRLF line ends only and no NUL.
func FuzzStrictReader(f *testing.F) {
	for _, v := range smuggleVariants {
		f.Add([]byte("a" + v + "b\r\n"))
	}
	f.Add([]byte("ok\r\nok\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := io.ReadAll(&strictReader{r: bytes.NewReader(data)})
		if err != nil {
			return
		}
		s := string(out)
		if strings.Contains(strings.ReplaceAll(s, "\r\n", ""), "\n") ||
			strings.Contains(strings.ReplaceAll(s, "\r\n", ""), "\r") || strings.Contains(s, "\x00") {
			t.Fatalf("passed %q", data)
		}
	})
}

// FuzzCRLFReader: the outbound normalizer never emits a bare CR or LF.
func FuzzCRLFReader(f *testing.F) {
	f.Add([]byte("a\nb\rc\r\nd\r"))
	f.Add([]byte("\r\r\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := io.ReadAll(&crlfReader{r: bufio.NewReader(bytes.NewReader(data))})
		if err != nil {
			t.Fatal(err)
		}
		rest := strings.ReplaceAll(string(out), "\r\n", "")
		if strings.ContainsAny(rest, "\r\n") {
			t.Fatalf("%q -> %q", data, out)
		}
		if strings.ReplaceAll(strings.ReplaceAll(string(out), "\r", ""), "\n", "") !=
			strings.ReplaceAll(strings.ReplaceAll(string(data), "\r", ""), "\n", "") {
			t.Fatalf("content changed: %q -> %q", data, out)
		}
	})
}

// FuzzGuardScan: the command guard never panics and, in command mode,
// refuses every bare LF.
func FuzzGuardScan(f *testing.F) {
	f.Add([]byte("EHLO x\r\nMAIL FROM:<a@b>\r\nDATA\r\nx\n.\r\n.\r\nQUIT\r\n"))
	f.Add([]byte("BDAT 3 LAST\r\na\nbNOOP\r\n"))
	f.Add([]byte("GET / HTTP/1.1\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		g := &guardConn{}
		why := g.scan(data)
		if why == "" && !bytes.Contains(data, []byte("DATA")) && !bytes.Contains(bytes.ToUpper(data), []byte("BDAT")) &&
			!bytes.Contains(bytes.ToUpper(data), []byte("STARTTLS")) && !bytes.Contains(bytes.ToUpper(data), []byte("DATA")) {
			if bytes.Contains(bytes.ReplaceAll(data, []byte("\r\n"), nil), []byte("\n")) {
				t.Fatalf("bare LF passed: %q", data)
			}
		}
	})
}
