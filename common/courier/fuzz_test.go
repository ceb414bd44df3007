package courier

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"testing"

	"tern/common/queue"
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

// FuzzNeedsUTF8: any message, however malformed its MIME structure, is
// judged without a panic, and an all-ASCII one never needs SMTPUTF8.
func FuzzNeedsUTF8(f *testing.F) {
	f.Add([]byte(utf8Message))
	f.Add([]byte("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: message/global\r\n\r\nSubject: \xc3\xa9\r\n\r\n--b--\r\n"))
	f.Add([]byte("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		e := &queue.Envelope{From: "a@example.test", UTF8: true, Recipients: []queue.Recipient{{Addr: "b@example.test"}}}
		need := needsUTF8(e, []int{0}, bytes.NewReader(data))
		if need.needed() && !strings.ContainsFunc(string(data), func(r rune) bool { return r >= 0x80 }) {
			t.Fatalf("an ASCII message needs SMTPUTF8 (%v): %q", need, data)
		}
	})
}
