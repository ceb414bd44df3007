package main

import (
	"bufio"
	"bytes"
	"strings"
	"testing"

	"tern/common/maildir"
)

// convert runs copyMessage over msg with a reader buffer of size bufSize
// (small sizes split lines, as long lines do in production).
func convert(t testing.TB, msg []byte, bodyLines, bufSize int) []byte {
	t.Helper()
	var out bytes.Buffer
	w := bufio.NewWriter(&out)
	if err := copyMessage(w, bufio.NewReaderSize(bytes.NewReader(msg), bufSize), bodyLines); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func TestCopyMessage(t *testing.T) {
	for _, c := range []struct {
		name, in, want string
		lines          int
	}{
		{"LF to CRLF", "a: b\n\nbody\n", "a: b\r\n\r\nbody\r\n", -1},
		{"CRLF kept", "a: b\r\n\r\nbody\r\n", "a: b\r\n\r\nbody\r\n", -1},
		{"bare CR kept", "a: b\n\nx\ry\n", "a: b\r\n\r\nx\ry\r\n", -1},
		{"CR at end", "a\r", "a\r\r\n", -1},
		{"dot-stuffing", ".\n..\n.x\nx.\n", "..\r\n...\r\n..x\r\nx.\r\n", -1},
		{"dot after CRLF", "a\r\n.b\r\n", "a\r\n..b\r\n", -1},
		{"no final newline", "a: b\n\nlast", "a: b\r\n\r\nlast\r\n", -1},
		{"empty message", "", "", -1},
		{"TOP 0", "a: b\nc: d\n\n1\n2\n", "a: b\r\nc: d\r\n\r\n", 0},
		{"TOP 1", "a: b\n\n.1\n2\n", "a: b\r\n\r\n..1\r\n", 1},
		{"TOP CRLF header end", "a: b\r\n\r\n1\r\n2\r\n", "a: b\r\n\r\n1\r\n", 1},
		{"TOP past the end", "a: b\n\n1\n", "a: b\r\n\r\n1\r\n", 10},
		{"TOP no body", "a: b\n", "a: b\r\n", 3},
	} {
		for _, bufSize := range []int{16, 4096} {
			if got := convert(t, []byte(c.in), c.lines, bufSize); string(got) != c.want {
				t.Errorf("%s (buffer %d): got %q, want %q", c.name, bufSize, got, c.want)
			}
		}
	}
}

// TestCopyMessageLongLines: lines longer than the buffer, with CRLF split
// across buffer boundaries, convert as short ones do.
func TestCopyMessageLongLines(t *testing.T) {
	for n := 10; n < 40; n++ {
		line := strings.Repeat("y", n)
		in := "." + line + "\r\n" + line + "\r" + line + "\n." + line + "\n"
		want := ".." + line + "\r\n" + line + "\r" + line + "\r\n.." + line + "\r\n"
		if got := convert(t, []byte(in), -1, 16); string(got) != want {
			t.Errorf("n=%d: got %q, want %q", n, got, want)
		}
	}
}

func TestWireSize(t *testing.T) {
	for _, in := range []string{"", "a", "a\n", "a\r\n", "\n\n", "\r", "a\rb\n", "x\r\r\n", ".\n"} {
		checkWireSize(t, []byte(in))
	}
}

// checkWireSize: the wire size is the length of copyMessage's output without
// the byte-stuffing (one "." added per line that starts with ".").
func checkWireSize(t testing.TB, msg []byte) {
	t.Helper()
	out := convert(t, msg, -1, 16)
	stuffed := 0
	for _, l := range bytes.SplitAfter(out, []byte("\r\n")) {
		if bytes.HasPrefix(l, []byte(".")) {
			stuffed++
		}
	}
	// A bare CR followed by a line starting with "." is not a line start.
	got, err := maildir.CountWire(bytes.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	want := int64(len(out) - stuffed)
	if len(msg) > 0 && msg[len(msg)-1] != '\n' {
		want -= 2 // the line end that ends the last line belongs to the terminator
	}
	if got != want {
		t.Errorf("wireSize(%q) = %d, want %d (output %q)", msg, got, want, out)
	}
}

// FuzzCopyMessage: for any stored bytes, the wire form has only CRLF line
// ends after the last byte, never a line that reads as the terminator,
// undoes to the input (modulo LF → CRLF), and matches wireSize.
func FuzzCopyMessage(f *testing.F) {
	for _, s := range []string{"", ".\n", "a\r\nb\n", "\r", "..\r\r\n.", "From: x\n\n.\n", strings.Repeat("z", 40) + "\r\n"} {
		f.Add([]byte(s), 3)
	}
	f.Fuzz(func(t *testing.T, msg []byte, bodyLines int) {
		out := convert(t, msg, -1, 16)
		if len(out) > 0 && !bytes.HasSuffix(out, []byte("\r\n")) {
			t.Fatalf("output does not end with CRLF: %q", out)
		}
		// The client's view: split at CRLF, unstuff, join with LF.
		var back bytes.Buffer
		if len(out) > 0 {
			for _, l := range bytes.Split(bytes.TrimSuffix(out, []byte("\r\n")), []byte("\r\n")) {
				if bytes.Equal(l, []byte(".")) {
					t.Fatalf("a line reads as the terminator: %q", out)
				}
				back.Write(bytes.TrimPrefix(l, []byte(".")))
				back.WriteByte('\n')
			}
		}
		norm := bytes.ReplaceAll(msg, []byte("\r\n"), []byte("\n"))
		if len(norm) > 0 && norm[len(norm)-1] != '\n' {
			norm = append(norm, '\n')
		}
		if !bytes.Equal(back.Bytes(), norm) {
			t.Fatalf("round trip: %q -> %q -> %q", msg, out, back.Bytes())
		}
		checkWireSize(t, msg)
		if bodyLines >= 0 && bodyLines < 1000 {
			top := convert(t, msg, bodyLines, 16)
			if !bytes.HasPrefix(out, top) {
				t.Fatalf("TOP %d is not a prefix of the message: %q vs %q", bodyLines, top, out)
			}
		}
	})
}
