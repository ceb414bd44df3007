package maildir

import (
	"bytes"
	"io"
	"testing"
	"testing/iotest"
)

// wireForm is the rule of wire.go written out plainly: every LF not
// preceded by CR becomes CRLF.
func wireForm(in []byte) []byte {
	var want []byte
	for i, b := range in {
		if b == '\n' && (i == 0 || in[i-1] != '\r') {
			want = append(want, '\r')
		}
		want = append(want, b)
	}
	return want
}

// readAll reads r with small, odd-sized reads that cross every boundary: a
// CR at the end of one chunk, an LF owed at the end of p.
func readAll(t *testing.T, r io.Reader, step int) []byte {
	t.Helper()
	p := make([]byte, step)
	var got []byte
	for {
		m, err := r.Read(p)
		got = append(got, p[:m]...)
		if err == io.EOF {
			return got
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func FuzzWireForm(f *testing.F) {
	f.Add([]byte("a\nb\r\nc\r\r\n\n"))
	f.Add([]byte("\n\n\r"))
	f.Add([]byte("Subject: x\r\n\r\nbody\nmore\r\n"))
	f.Add([]byte("\r\r\r\n\r"))
	f.Fuzz(func(t *testing.T, in []byte) {
		want := wireForm(in)
		n, err := CountWire(iotest.HalfReader(bytes.NewReader(in)))
		if err != nil {
			t.Fatal(err)
		}
		if n != int64(len(want)) {
			t.Fatalf("wire size %d, want %d", n, len(want))
		}
		r := NewWireReader(iotest.OneByteReader(bytes.NewReader(in)))
		defer r.Close()
		if got := readAll(t, r, len(in)%9+1); !bytes.Equal(got, want) {
			t.Fatalf("converted %q, want %q", got, want)
		}
		r2 := NewWireReader(bytes.NewReader(in))
		defer r2.Close()
		all, err := io.ReadAll(r2)
		if err != nil || !bytes.Equal(all, want) {
			t.Fatalf("ReadAll %q %v, want %q", all, err, want)
		}

		// Storing: the file has no CRLF but where a CR precedes it, its
		// sizes are what was written and what reads back, and what reads
		// back is the wire form of the input: the input itself when it
		// had no bare LF.
		var disk bytes.Buffer
		lw := newLFWriter(&disk)
		for rest := in; len(rest) > 0; {
			k := min(len(rest), len(in)%7+1)
			lw.Write(rest[:k])
			rest = rest[k:]
		}
		if err := lw.Flush(); err != nil {
			t.Fatal(err)
		}
		d := disk.Bytes()
		if lw.size != int64(len(d)) {
			t.Fatalf("size %d, wrote %d", lw.size, len(d))
		}
		for i := 1; i+1 < len(d); i++ {
			if d[i] == '\r' && d[i+1] == '\n' && d[i-1] != '\r' {
				t.Fatalf("stored %q keeps a CRLF", d)
			}
		}
		if len(d) >= 2 && d[0] == '\r' && d[1] == '\n' {
			t.Fatalf("stored %q keeps a CRLF", d)
		}
		back := wireForm(d)
		if lw.wire != int64(len(back)) {
			t.Fatalf("wire %d, reads back %d", lw.wire, len(back))
		}
		if !bytes.Equal(back, want) {
			t.Fatalf("stored %q reads back %q, want %q", d, back, want)
		}
	})
}
