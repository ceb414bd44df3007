package maildir

import (
	"fmt"
	"io"
	"path/filepath"
	"time"

	"tern/common/safeio"
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
	f, ok, err := safeio.CreateUnnamed(filepath.Join(dir, "tmp"), 0o600)
	if !ok || err != nil {
		return "", 0, ok, err
	}
	defer f.Close()
	size, wire, err := copyLF(f, r)
	if err != nil {
		return "", 0, true, fmt.Errorf("write message in %q: %w", dir, err)
	}
	key = sizedKey(newBase(time.Now()), size, wire)
	dst := target(key)
	if err := safeio.LinkUnnamed(f, dst); err != nil {
		return "", 0, true, fmt.Errorf("deliver to %q: %w", dst, err)
	}
	return key, size, true, nil
}
