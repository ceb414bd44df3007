package smtpserver

import (
	"strings"
	"testing"
)

// cleanBytes is the rule byte by byte: no NUL, every CR followed by an LF
// and every LF preceded by a CR.
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

// FuzzLineEnds: BDAT content passes in chunks of any size exactly when it
// has CRLF line ends only and no NUL.
func FuzzLineEnds(f *testing.F) {
	for _, v := range []string{"\n.\n", "\n.\r\n", "\r\n.\n", "\r.\r\n", "\r\n.\r", "\r.\n", "\n.\r",
		"\r\n\x00.\r\n", "\r\n.\r\r\n", "\r\r\n.\r\r\n", "\n\n.\n\n", "\r\n .\r\n", "\r\n.\n\r\n", "\n..\n"} {
		f.Add([]byte("a" + v + "b\r\n"))
	}
	f.Add([]byte("ok\r\nok\r\n"))
	f.Add([]byte("\r\n\r\n\r"))
	f.Add([]byte("\n\r\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		want := cleanBytes(data)
		// A CRLF split between two chunks must pass, and whatever is
		// refused whole must be refused in pieces too.
		for _, chunk := range []int{1, 2, 3, 7, len(data) + 1} {
			var l lineEnds
			ok := true
			for rest := data; len(rest) > 0 && ok; {
				n := min(chunk, len(rest))
				ok, rest = l.ok(rest[:n]), rest[n:]
			}
			if ok {
				ok = l.complete()
			}
			if ok != want {
				t.Fatalf("chunks of %d: %q gave %v, want %v", chunk, data, ok, want)
			}
		}
		if want && (strings.Contains(strings.ReplaceAll(string(data), "\r\n", ""), "\n") ||
			strings.Contains(strings.ReplaceAll(string(data), "\r\n", ""), "\r")) {
			t.Fatalf("passed %q", data)
		}
	})
}
