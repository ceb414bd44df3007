package queue

import (
	"errors"
	"path/filepath"
	"testing"
)

func TestCheckSpace(t *testing.T) {
	dir := t.TempDir()
	if err := CheckSpace(dir, 0, 0); err != nil {
		t.Fatalf("checks off: %v", err)
	}
	if err := CheckSpace(dir, 1, 1); err != nil {
		t.Fatalf("tiny reserve: %v", err)
	}
	// No file system has an exabyte free.
	if err := CheckSpace(dir, 1<<60, 0); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("huge byte reserve: err %v, want ErrNoSpace", err)
	}
	// A Maildir not created yet is checked on its nearest parent.
	if err := CheckSpace(filepath.Join(dir, "a", "b", "queue"), 1, 0); err != nil {
		t.Fatalf("missing dir: %v", err)
	}
	if err := CheckSpace(filepath.Join(dir, "a", "queue"), 1<<60, 0); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("missing dir, huge reserve: err %v", err)
	}
}
