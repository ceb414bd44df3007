package maildir

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// deliverUnnamed is Deliver's fast path on Linux: the message is written to
// an unnamed file in tmp/ (O_TMPFILE), fsynced, and given its one name in
// new/ (or cur/) with linkat(2). Compared with the classic tmp/ name that is
// linked and then removed, it saves two changes to tmp/ per message, and a
// crash leaves nothing behind in tmp/ at all: an unnamed file vanishes.
// Readers see the same thing as before: a complete, fsynced file appears
// under its final name or not at all. ok is false when the file system or
// kernel cannot do it (O_TMPFILE is refused on some, NFS among them); the
// caller then takes the classic path.
func deliverUnnamed(dir string, r io.Reader, target func(key string) string) (key string, size int64, ok bool, err error) {
	if !procFDs() {
		return "", 0, false, nil
	}
	fd, err := unix.Open(filepath.Join(dir, "tmp"), unix.O_TMPFILE|unix.O_WRONLY|unix.O_CLOEXEC, 0o600)
	if err != nil {
		if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EISDIR) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			return "", 0, false, nil
		}
		return "", 0, true, fmt.Errorf("create unnamed file in %q: %w", dir, err)
	}
	f := os.NewFile(uintptr(fd), "tmpfile")
	defer f.Close()
	size, wire, err := copyLF(f, r)
	if err != nil {
		return "", 0, true, fmt.Errorf("write message in %q: %w", dir, err)
	}
	if err := f.Sync(); err != nil {
		return "", 0, true, fmt.Errorf("fsync message in %q: %w", dir, err)
	}
	key = sizedKey(newBase(time.Now()), size, wire)
	dst := target(key)
	// linkat through /proc names the unnamed file without needing
	// CAP_DAC_READ_SEARCH (which AT_EMPTY_PATH would); it never replaces
	// an existing name.
	proc := "/proc/self/fd/" + strconv.Itoa(int(f.Fd()))
	if err := unix.Linkat(unix.AT_FDCWD, proc, unix.AT_FDCWD, dst, unix.AT_SYMLINK_FOLLOW); err != nil {
		return "", 0, true, fmt.Errorf("deliver to %q: %w", dst, err)
	}
	return key, size, true, nil
}

// procFDs reports whether /proc/self/fd can name an open file (not in
// some containers and chroots); without it Deliver takes the classic path.
var procFDs = sync.OnceValue(func() bool {
	_, err := os.Stat("/proc/self/fd")
	return err == nil
})
