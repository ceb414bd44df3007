package diskspace

import (
	"errors"
	"path/filepath"
	"testing"
)

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	if err := Check(dir, 0, 0); err != nil {
		t.Fatalf("checks off: %v", err)
	}
	if err := Check(dir, 1, 1); err != nil {
		t.Fatalf("tiny reserve: %v", err)
	}
	// No file system has an exabyte free.
	if err := Check(dir, 1<<60, 0); !errors.Is(err, ErrLow) {
		t.Fatalf("huge byte reserve: err %v, want ErrLow", err)
	}
	// A directory not created yet is checked on its nearest parent.
	if err := Check(filepath.Join(dir, "a", "b", "queue"), 1, 0); err != nil {
		t.Fatalf("missing dir: %v", err)
	}
	if err := Check(filepath.Join(dir, "a", "queue"), 1<<60, 0); !errors.Is(err, ErrLow) {
		t.Fatalf("missing dir, huge reserve: err %v", err)
	}
}
