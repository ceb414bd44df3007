package crashfs

import (
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// mount mounts a crashfs on a fresh backing directory, or skips the test
// where FUSE cannot be mounted.
func mount(t *testing.T, backing string) (*FS, string) {
	t.Helper()
	mnt := t.TempDir()
	c, err := Mount(backing, mnt)
	if err != nil {
		t.Skipf("FUSE not available (needs /dev/fuse and root or fusermount3): %v", err)
	}
	t.Cleanup(func() { c.Unmount() })
	return c, mnt
}

func fsyncPath(t *testing.T, p string) {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		t.Fatalf("fsync %s: %v", p, err)
	}
}

// TestRules checks each rule of the package doc on one cut that keeps
// only what was synced (every seed is tried until the worst case comes
// up for each directory).
func TestRules(t *testing.T) {
	backing := t.TempDir()
	os.WriteFile(filepath.Join(backing, "old"), []byte("old content"), 0o600)
	c, mnt := mount(t, backing)

	// a: written, fsynced, named, directory fsynced: durable.
	os.Mkdir(filepath.Join(mnt, "d"), 0o700)
	fsyncPath(t, mnt)
	a := filepath.Join(mnt, "d", "a")
	os.WriteFile(a, []byte("aaaa"), 0o600)
	fsyncPath(t, a)
	fsyncPath(t, filepath.Join(mnt, "d"))
	// a appended after its fsync: the append may be lost.
	f, _ := os.OpenFile(a, os.O_WRONLY|os.O_APPEND, 0)
	f.Write([]byte("more"))
	f.Close()
	// old removed without a directory fsync: it comes back.
	os.Remove(filepath.Join(mnt, "old"))
	// O_TMPFILE, fsynced, linked, directory fsynced: durable.
	fd, err := unix.Open(filepath.Join(mnt, "d"), unix.O_TMPFILE|unix.O_WRONLY, 0o600)
	tmpfile := err == nil
	if tmpfile {
		unix.Write(fd, []byte("tmpfile"))
		if err := unix.Fsync(fd); err != nil {
			t.Fatal(err)
		}
		if err := unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+itoa(fd), unix.AT_FDCWD, filepath.Join(mnt, "d", "t"), unix.AT_SYMLINK_FOLLOW); err != nil {
			t.Fatalf("linkat of an O_TMPFILE file: %v", err)
		}
		unix.Close(fd)
		fsyncPath(t, filepath.Join(mnt, "d"))
	} else {
		t.Logf("O_TMPFILE not supported on FUSE here: %v", err)
	}
	// b: fsynced but its directory not since: no name after the cut.
	b := filepath.Join(mnt, "d", "b")
	os.WriteFile(b, []byte("bbbb"), 0o600)
	fsyncPath(t, b)
	if st := c.Stats(); st.FileSyncs < 2 || st.DirSyncs < 2 {
		t.Fatalf("fsyncs seen: %+v", st)
	}

	img, err := c.Cut(rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	// After the cut, fsync blocks and then fails.
	done := make(chan error, 1)
	go func() {
		f, _ := os.Open(a)
		defer f.Close()
		done <- f.Sync()
	}()
	c.Release()
	if err := <-done; !errors.Is(err, syscall.EIO) {
		t.Errorf("fsync after the cut: %v, want EIO", err)
	}
	out := t.TempDir()
	if err := img.WriteTo(out); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(out, "d", "a"))
	if err != nil {
		t.Fatalf("durable file lost: %v", err)
	}
	if s := string(got); s != "aaaa" && s != "aaaamore" && len(s) != 8 {
		t.Errorf("a after the cut: %q", s)
	}
	if tmpfile {
		if got, err := os.ReadFile(filepath.Join(out, "d", "t")); err != nil || string(got) != "tmpfile" {
			t.Errorf("linked O_TMPFILE after the cut: %q, %v", got, err)
		}
	}
	t.Logf("coverage %v, torn %d, reverted %d, kept %d", img.Coverage, img.Torn, img.Reverted, img.Kept)
	if img.Coverage["d"]["unnamed"] == 0 {
		t.Errorf("b not reported as synced without a durable name: %v", img.Coverage)
	}
}

// TestWorstCase cuts the same history with many seeds and checks that
// both the loss of unsynced changes and their survival come up.
func TestWorstCase(t *testing.T) {
	lostB, keptB, revivedOld := 0, 0, 0
	for seed := range uint64(16) {
		backing := t.TempDir()
		os.WriteFile(filepath.Join(backing, "old"), []byte("old"), 0o600)
		c, mnt := mount(t, backing)
		b := filepath.Join(mnt, "b")
		os.WriteFile(b, []byte("bbbb"), 0o600)
		fsyncPath(t, b)
		os.Remove(filepath.Join(mnt, "old"))
		img, err := c.Cut(rand.New(rand.NewPCG(seed, 7)))
		if err != nil {
			t.Fatal(err)
		}
		c.Unmount()
		out := t.TempDir()
		if err := img.WriteTo(out); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(out, "b")); err != nil {
			lostB++
		} else {
			keptB++
		}
		if got, err := os.ReadFile(filepath.Join(out, "old")); err == nil {
			if string(got) != "old" {
				t.Errorf("revived old holds %q", got)
			}
			revivedOld++
		}
	}
	t.Logf("unsynced name lost %d times, kept %d; unsynced removal undone %d times", lostB, keptB, revivedOld)
	if lostB == 0 || keptB == 0 || revivedOld == 0 {
		t.Errorf("the worst cases do not all come up")
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
