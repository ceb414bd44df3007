package courier

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"testing"
)

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
