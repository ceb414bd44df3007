package queue

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// tmpFiles lists what the queue's tmp/ holds.
func tmpFiles(t *testing.T, q *Queue) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(q.Dir(), dirTmp))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// TestBufferedSpoolStaysInMemory: a small message creates no file until it
// is committed, and the committed copy is the whole message.
func TestBufferedSpoolStaysInMemory(t *testing.T) {
	q := openQueue(t)
	msg := "Subject: small\r\n\r\nbody\r\n"
	sp := q.NewBufferedSpool(1024)
	if _, err := io.Copy(sp, strings.NewReader(msg)); err != nil {
		t.Fatal(err)
	}
	if got := tmpFiles(t, q); len(got) != 0 {
		t.Fatalf("a buffered message created %v", got)
	}
	if b, _ := io.ReadAll(sp.Reader()); string(b) != msg {
		t.Fatalf("Reader = %q", b)
	}
	e := testEnvelope()
	if err := sp.Commit(e); err != nil {
		t.Fatal(err)
	}
	c, err := q.Claim(e.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r, err := c.Data() // checks size and SHA-256 against the envelope
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(r); string(b) != msg {
		t.Fatalf("queued data = %q", b)
	}
}

// TestBufferedSpoolOverflowsToFile: past the limit the message goes to a
// locked spool file, which Discard removes.
func TestBufferedSpoolOverflowsToFile(t *testing.T) {
	q := openQueue(t)
	msg := strings.Repeat("0123456789abcdef\r\n", 100)
	sp := q.NewBufferedSpool(64)
	if _, err := io.Copy(sp, strings.NewReader(msg)); err != nil {
		t.Fatal(err)
	}
	got := tmpFiles(t, q)
	if len(got) != 1 || got[0] != sp.ID() {
		t.Fatalf("tmp/ holds %v, want the spool file %s", got, sp.ID())
	}
	if !q.lockedElsewhere(filepath.Join(q.Dir(), dirTmp, sp.ID())) {
		t.Fatal("the spool file is not locked")
	}
	if b, _ := io.ReadAll(sp.Reader()); string(b) != msg || sp.Size() != int64(len(msg)) {
		t.Fatalf("Reader gave %d bytes, Size %d, want %d", len(b), sp.Size(), len(msg))
	}
	sp.Discard()
	if got := tmpFiles(t, q); len(got) != 0 {
		t.Fatalf("Discard left %v", got)
	}
	if _, err := sp.Write([]byte("x")); err == nil {
		t.Fatal("Write after Discard succeeded")
	}
}
