package safeio

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func read(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestWriteFileReplacesWithMode(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := WriteFile(p, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A leftover temporary file of a crashed write is reused, whatever
	// its mode and content.
	if err := os.WriteFile(p+".tmp", []byte("torn, longer than the new content"), 0o666); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(p, []byte("two"), 0o640); err != nil {
		t.Fatal(err)
	}
	if got := read(t, p); got != "two" {
		t.Fatalf("content %q, want two", got)
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o640 {
		t.Fatalf("mode %v, want 0640", fi.Mode().Perm())
	}
	if _, err := os.Stat(p + ".tmp"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temporary file left: %v", err)
	}
}

func TestWriteFileRefusesSymlinkedTemp(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	os.WriteFile(victim, []byte("keep"), 0o600)
	p := filepath.Join(dir, "f")
	if err := os.Symlink(victim, p+".tmp"); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(p, []byte("x"), 0o600); err == nil {
		t.Fatal("a planted symlink as the temporary file was followed")
	}
	if got := read(t, victim); got != "keep" {
		t.Fatalf("victim overwritten: %q", got)
	}
}

func TestWriteFileVia(t *testing.T) {
	dir := t.TempDir()
	tmpDir, envDir := filepath.Join(dir, "tmp"), filepath.Join(dir, "env")
	os.Mkdir(tmpDir, 0o700)
	os.Mkdir(envDir, 0o700)
	if err := WriteFileVia(filepath.Join(tmpDir, "a.env"), filepath.Join(envDir, "a"), []byte("env"), 0o640); err != nil {
		t.Fatal(err)
	}
	if got := read(t, filepath.Join(envDir, "a")); got != "env" {
		t.Fatalf("content %q", got)
	}
	if ents, _ := os.ReadDir(tmpDir); len(ents) != 0 {
		t.Fatalf("tmp/ not empty: %v", ents)
	}
}

func TestLinkFileNeverReplaces(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "key")
	if err := LinkFile(p, []byte("first"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := LinkFile(p, []byte("second"), 0o600)
	if !errors.Is(err, os.ErrExist) {
		t.Fatalf("second LinkFile: %v, want ErrExist", err)
	}
	if got := read(t, p); got != "first" {
		t.Fatalf("content %q, want first", got)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("temporary files left: %v", ents)
	}
}

func TestInstallKeepsFileOpen(t *testing.T) {
	dir := t.TempDir()
	f, err := Create(dir, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.WriteString("data")
	target := filepath.Join(dir, "target")
	if err := Install(f, target); err != nil {
		t.Fatal(err)
	}
	// Still open: a lock held on it (the queue's) lasts.
	if _, err := f.Stat(); err != nil {
		t.Fatalf("file closed by Install: %v", err)
	}
	if got := read(t, target); got != "data" {
		t.Fatalf("content %q", got)
	}
}

func TestCreateExclAndFinish(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "m")
	f, err := CreateExcl(p, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("msg")
	if err := Finish(f); err != nil {
		t.Fatal(err)
	}
	if _, err := CreateExcl(p, 0o600); !errors.Is(err, os.ErrExist) {
		t.Fatalf("CreateExcl of an existing name: %v", err)
	}
}

func TestRenameNoReplace(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	os.WriteFile(a, []byte("a"), 0o600)
	os.WriteFile(b, []byte("b"), 0o600)
	if err := RenameNoReplace(a, b); !errors.Is(err, os.ErrExist) {
		t.Fatalf("rename over an existing name: %v", err)
	}
	os.Remove(b)
	if err := RenameNoReplace(a, b); err != nil {
		t.Fatal(err)
	}
	if got := read(t, b); got != "a" {
		t.Fatalf("content %q", got)
	}
}

func TestMkdirAll(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a", "b", "c")
	if err := MkdirAll(p); err != nil {
		t.Fatal(err)
	}
	if err := MkdirAll(p); err != nil {
		t.Fatalf("existing directory: %v", err)
	}
	f := filepath.Join(dir, "file")
	os.WriteFile(f, nil, 0o600)
	if err := MkdirAll(filepath.Join(f, "x")); err == nil {
		t.Fatal("MkdirAll under a file succeeded")
	}
}

func TestUnnamed(t *testing.T) {
	dir := t.TempDir()
	f, ok, err := CreateUnnamed(dir, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		t.Skip("no O_TMPFILE here")
	}
	defer f.Close()
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("an unnamed file has a name: %v", ents)
	}
	f.WriteString("msg")
	target := filepath.Join(dir, "m")
	if err := LinkUnnamed(f, target); err != nil {
		t.Fatal(err)
	}
	if got := read(t, target); got != "msg" {
		t.Fatalf("content %q", got)
	}
	if err := LinkUnnamed(f, target); !errors.Is(err, os.ErrExist) {
		t.Fatalf("second link over an existing name: %v", err)
	}
}
