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
	f.Add([]byte("\r\n\r\n\r"))
	f.Add([]byte("\n\r\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		// Chunks of every size: a CRLF split between two reads must pass,
		// and whatever is refused whole must be refused in pieces too.
		for _, chunk := range []int{1, 2, 3, 7, len(data) + 1} {
			_, err := io.ReadAll(&strictReader{r: &chunkReader{data: data, n: chunk}})
			if (err == nil) != cleanBytes(data) {
				t.Fatalf("chunks of %d: %q gave %v", chunk, data, err)
			}
		}
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

// cleanBytes is strictReader's rule byte by byte: no NUL, and every CR
// followed by an LF and every LF preceded by a CR.
func cleanBytes(b []byte) bool {
	for i, c := range b {
		switch {
		case c == 0:
			return false
		case c == '\r' && (i+1 == len(b) || b[i+1] != '\n'):
			return false
		case c == '\n' && (i == 0 || b[i-1] != '\r'):
			return false
		}
	}
	return true
}

// chunkReader returns data n bytes at a time.
type chunkReader struct {
	data []byte
	n    int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := min(c.n, len(p), len(c.data))
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
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
