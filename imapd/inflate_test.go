package main

import (
	"bytes"
	"compress/flate"
	"errors"
	"io"
	"math/rand"
	"net"
	"os/exec"
	"strings"
	"testing"
)

// chunkReader hands out its chunks one Read at a time and then fails
// with errWouldBlock, a timeout, as a connection whose client has sent
// nothing more does at its read deadline.
type chunkReader struct{ chunks [][]byte }

type timeoutError struct{}

func (timeoutError) Error() string   { return "would block" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

var errWouldBlock net.Error = timeoutError{}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.chunks) == 0 {
		return 0, errWouldBlock
	}
	n := copy(p, r.chunks[0])
	if r.chunks[0] = r.chunks[0][n:]; len(r.chunks[0]) == 0 {
		r.chunks = r.chunks[1:]
	}
	return n, nil
}

// readAvailable reads from z until it has to wait for input.
func readAvailable(t *testing.T, z *inflater, bufSize int) []byte {
	t.Helper()
	var out []byte
	buf := make([]byte, bufSize)
	for {
		n, err := z.Read(buf)
		out = append(out, buf[:n]...)
		if errors.Is(err, errWouldBlock) {
			return out
		}
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
	}
}

func testCorpus() [][]byte {
	rnd := rand.New(rand.NewSource(1))
	random := make([]byte, 70000)
	rnd.Read(random)
	text := []byte(strings.Repeat("a42 UID FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (From To Subject)])\r\n", 900))
	var mixed []byte
	for i := 0; i < 3000; i++ {
		mixed = append(mixed, text[rnd.Intn(len(text)-40):][:rnd.Intn(40)]...)
		mixed = append(mixed, random[rnd.Intn(len(random)-20):][:rnd.Intn(20)]...)
	}
	return [][]byte{[]byte("a NOOP\r\n"), text, random, mixed}
}

// Streams from compress/flate at every level, sync-flushed at random
// points and fed in pieces: each flushed part is there to read before
// the next arrives, and the whole comes out as it went in, whatever the
// size of the reads.
func TestInflateSyncFlush(t *testing.T) {
	rnd := rand.New(rand.NewSource(2))
	for _, level := range []int{flate.HuffmanOnly, flate.NoCompression, flate.BestSpeed, flate.DefaultCompression, flate.BestCompression} {
		for _, data := range testCorpus() {
			var parts, chunks [][]byte
			var comp bytes.Buffer
			fw, _ := flate.NewWriter(&comp, level)
			for rest := data; len(rest) > 0; {
				n := min(len(rest), 1+rnd.Intn(20000))
				fw.Write(rest[:n])
				fw.Flush()
				parts = append(parts, rest[:n])
				chunks = append(chunks, bytes.Clone(comp.Bytes()))
				comp.Reset()
				rest = rest[n:]
			}
			src := &chunkReader{}
			z := newInflater(src)
			for i, c := range chunks {
				// The chunk arrives in pieces of 1 to 1000 bytes.
				for len(c) > 0 {
					n := min(len(c), 1+rnd.Intn(1000))
					src.chunks = append(src.chunks, c[:n])
					c = c[n:]
				}
				got := readAvailable(t, z, []int{1, 7, 4096}[i%3])
				if !bytes.Equal(got, parts[i]) {
					t.Fatalf("level %d, part %d: got %d bytes, want %d", level, i, len(got), len(parts[i]))
				}
			}
			fw.Close()
			src.chunks = append(src.chunks, comp.Bytes())
			if n, err := z.Read(make([]byte, 10)); n != 0 || err != io.EOF {
				t.Fatalf("after the final block: %d, %v", n, err)
			}
		}
	}
}

// zlib's Z_PARTIAL_FLUSH, as mbsync sends its commands: no stored block
// at the end, only an empty fixed-code block that may end inside a byte.
// Each command decodes in full before the next arrives.
func TestInflatePartialFlush(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	script := `
import sys, zlib
c = zlib.compressobj(6, zlib.DEFLATED, -15)
for line in sys.stdin.buffer:
    out = c.compress(line) + c.flush(zlib.Z_PARTIAL_FLUSH)
    sys.stdout.buffer.write(len(out).to_bytes(4, 'big') + out)
`
	var lines []string
	for i := 0; i < 200; i++ {
		lines = append(lines, strings.Repeat("x", i%37)+" NOOP "+strings.Repeat("abc", i%11)+"\r\n")
	}
	cmd := exec.Command(py, "-c", script)
	cmd.Stdin = strings.NewReader(strings.Join(lines, ""))
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	src := &chunkReader{}
	z := newInflater(src)
	for i, line := range lines {
		n := int(out[0])<<24 | int(out[1])<<16 | int(out[2])<<8 | int(out[3])
		src.chunks = append(src.chunks, out[4:4+n])
		out = out[4+n:]
		if got := readAvailable(t, z, 4096); string(got) != line {
			t.Fatalf("line %d: got %q, want %q", i, got, line)
		}
	}
}

// Corrupt streams are errors, never a panic or a hang.
func TestInflateCorrupt(t *testing.T) {
	for name, data := range map[string][]byte{
		"reserved block type": {0x07},
		"stored length":       {0x00, 0x05, 0x00, 0x05, 0x00},
		"distance too far":    fixedCodes(t),
	} {
		z := newInflater(&chunkReader{chunks: [][]byte{data}})
		_, err := io.ReadAll(io.LimitReader(z, 1<<20))
		if err == nil || errors.Is(err, errWouldBlock) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// fixedCodes is a fixed-code block whose first symbol is a match: it
// refers before the start of the stream.
func fixedCodes(t *testing.T) []byte {
	// Header 1 (final), 01 (fixed); length code 257 is 0000001 (7
	// bits), distance code 0 is 00000: all zero bits but the first
	// three and the last of the length code.
	var b bitWriter
	b.write(1, 1)
	b.write(1, 2)
	b.writeCode(0b0000001, 7)
	b.writeCode(0, 5)
	return b.bytes()
}

type bitWriter struct {
	out  []byte
	acc  uint32
	nacc uint
}

func (w *bitWriter) write(v uint32, n uint) {
	w.acc |= v << w.nacc
	w.nacc += n
	for w.nacc >= 8 {
		w.out = append(w.out, byte(w.acc))
		w.acc >>= 8
		w.nacc -= 8
	}
}

// writeCode writes a Huffman code, most significant bit first.
func (w *bitWriter) writeCode(code uint32, n uint) {
	for i := int(n) - 1; i >= 0; i-- {
		w.write(code>>uint(i)&1, 1)
	}
}

func (w *bitWriter) bytes() []byte {
	if w.nacc > 0 {
		return append(w.out, byte(w.acc))
	}
	return w.out
}

// FuzzInflate: whatever the input, the decoder errs or agrees with
// compress/flate.
func FuzzInflate(f *testing.F) {
	for _, d := range testCorpus()[:2] {
		var b bytes.Buffer
		fw, _ := flate.NewWriter(&b, flate.BestSpeed)
		fw.Write(d)
		fw.Close()
		f.Add(b.Bytes())
	}
	f.Add([]byte{0x07})
	f.Fuzz(func(t *testing.T, data []byte) {
		want, werr := io.ReadAll(io.LimitReader(flate.NewReader(bytes.NewReader(data)), 1<<20))
		z := newInflater(&chunkReader{chunks: [][]byte{data}})
		got, gerr := io.ReadAll(io.LimitReader(z, 1<<20))
		if werr == nil && gerr == nil && !bytes.Equal(got, want) {
			t.Fatalf("decoded %d bytes, compress/flate %d", len(got), len(want))
		}
		if werr == nil && len(want) < 1<<20 && !bytes.Equal(got, want) {
			t.Fatalf("compress/flate decodes %d bytes, this %d (%v)", len(want), len(got), gerr)
		}
	})
}

// BenchmarkInflate decodes a 1 MiB mixed text stream, as an APPEND of a
// large message would arrive.
func BenchmarkInflate(b *testing.B) {
	data := bytes.Repeat(testCorpus()[3], 1)
	for len(data) < 1<<20 {
		data = append(data, data...)
	}
	var comp bytes.Buffer
	fw, _ := flate.NewWriter(&comp, flate.DefaultCompression)
	fw.Write(data)
	fw.Close()
	buf := make([]byte, 4096)
	b.SetBytes(int64(len(data)))
	for i := 0; i < b.N; i++ {
		z := newInflater(bytes.NewReader(comp.Bytes()))
		for {
			if _, err := z.Read(buf); err != nil {
				break
			}
		}
	}
}
