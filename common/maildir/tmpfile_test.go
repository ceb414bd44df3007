package maildir

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// failingReader returns some data and then an error, as a dropped SMTP
// connection would in the middle of a message.
type failingReader struct{ n int }

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n > 0 {
		n := copy(p, strings.Repeat("x", min(len(p), r.n)))
		r.n -= n
		return n, nil
	}
	return 0, errors.New("connection dropped")
}

// TestDeliverLeavesNothingBehind: a delivery names its file once, in new/,
// and a failed one leaves no file anywhere (the unnamed tmp file of the
// fast path vanishes; the classic path removes its tmp/ name).
func TestDeliverLeavesNothingBehind(t *testing.T) {
	dir := t.TempDir()
	key, _, err := Deliver(dir, strings.NewReader("Subject: a\n\nbody\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "new", key))
	if err != nil || string(data) != "Subject: a\n\nbody\n" {
		t.Fatalf("delivered %q, %v", data, err)
	}
	if _, _, err := Deliver(dir, &failingReader{n: 10000}, nil); err == nil {
		t.Fatal("a failed read was delivered")
	}
	for _, sub := range []string{"tmp", "new", "cur"} {
		es, _ := os.ReadDir(filepath.Join(dir, sub))
		want := 0
		if sub == "new" {
			want = 1
		}
		if len(es) != want {
			t.Errorf("%s/ holds %d files, want %d", sub, len(es), want)
		}
	}
	// With flags the message goes straight to cur/.
	key, _, err = Deliver(dir, io.LimitReader(strings.NewReader("Subject: b\n\n"), 100), []string{`\Seen`})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "cur", key+":2,S")); err != nil {
		t.Errorf("flagged delivery: %v", err)
	}
}
