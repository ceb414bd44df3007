package maildir

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"tern/common/safeio"
)

// syncDir fsyncs a directory so that entries created, renamed or removed in
// it survive a crash (common/safeio), except where a power-cut test build
// drops it on purpose (powercut.go).
func syncDir(dir string) error {
	if skipDirSync(dir) {
		return nil
	}
	return safeio.SyncDir(dir)
}

// writeFileAtomic replaces dir/name with data (common/safeio: temp file
// dir/name.tmp, write, fsync, rename, fsync of dir). The caller holds
// whatever lock protects name.
func writeFileAtomic(dir, name string, data []byte) error {
	return safeio.WriteFile(filepath.Join(dir, name), data, 0o600)
}

// renameNoReplace: Maildir never overwrites a message (safeio.RenameNoReplace).
func renameNoReplace(oldPath, newPath string) error { return safeio.RenameNoReplace(oldPath, newPath) }

var (
	keyCounter atomic.Uint64
	hostPart   = func() string {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "localhost"
		}
		// Maildir convention: "/" and ":" in the host name are written as
		// \057 and \072 so that they cannot split the name. "," would be
		// read as the start of ",S=", and "." is fine.
		r := strings.NewReplacer("/", `\057`, ":", `\072`, ",", `\054`)
		return r.Replace(h)
	}()
)

// newBase returns a fresh "time.unique.host" name: unique is
// M<usec>P<pid>Q<counter>R<random>, unique across processes (pid), within a
// process (counter) and across hosts and pid reuse (random, host).
func newBase(now time.Time) string {
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	return strconv.FormatInt(now.Unix(), 10) + ".M" + strconv.Itoa(now.Nanosecond()/1000) +
		"P" + strconv.Itoa(os.Getpid()) + "Q" + strconv.FormatUint(keyCounter.Add(1), 10) +
		"R" + hex.EncodeToString(rnd[:]) + "." + hostPart
}

// newKey returns a fresh key carrying the sizes.
func newKey(size, wire int64) string {
	return sizedKey(newBase(time.Now()), size, wire)
}

// sizedKey appends the sizes to a base name as Dovecot writes them:
// ",S=" the bytes on disk, ",W=" the size with CRLF line ends, which is
// what IMAP's RFC822.SIZE and POP3's octet counts report. With both in the
// name, listing a folder needs no stat and no read of any message. A
// negative wire size (not known) leaves ",W=" out.
func sizedKey(base string, size, wire int64) string {
	k := base + ",S=" + strconv.FormatInt(size, 10)
	if wire >= 0 {
		k += ",W=" + strconv.FormatInt(wire, 10)
	}
	return k
}

// tmpWrite copies r into a new file in dir/tmp with LF line ends (wire.go),
// fsyncs and closes it, and returns its path, its size on disk, and the size
// of its wire form. mtime, when non-zero, is set on the file (the IMAP
// internal date).
func tmpWrite(dir string, r io.Reader, mtime time.Time) (path string, size, wire int64, err error) {
	path = filepath.Join(dir, "tmp", newBase(time.Now()))
	f, err := safeio.CreateExcl(path, 0o600)
	if err != nil {
		return "", 0, 0, err
	}
	size, wire, err = copyLF(f, r)
	if err != nil {
		safeio.Discard(f)
		return "", 0, 0, fmt.Errorf("write %q: %w", path, err)
	}
	if err := safeio.Finish(f); err != nil {
		return "", 0, 0, err
	}
	if !mtime.IsZero() {
		if err := os.Chtimes(path, mtime, mtime); err != nil {
			os.Remove(path)
			return "", 0, 0, fmt.Errorf("set date of %q: %w", path, err)
		}
	}
	return path, size, wire, nil
}

// ensureMaildir creates dir/{cur,new,tmp} (0700) where missing, refusing
// symlinks in their place. A directory it creates is made durable (fsync of
// its parent) before it returns: a message linked into a new/ whose own
// name is not durable is lost with it in a crash, fsynced or not.
func ensureMaildir(dir string) error {
	if err := mkdirDurable(dir); err != nil {
		return fmt.Errorf("create maildir %q: %w", dir, err)
	}
	created := false
	for _, sub := range []string{"cur", "new", "tmp"} {
		p := filepath.Join(dir, sub)
		err := os.Mkdir(p, 0o700)
		if err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("create %q: %w", p, err)
		}
		created = created || err == nil
		if err := checkDir(p); err != nil {
			return err
		}
	}
	if created {
		return syncDir(dir)
	}
	return nil
}

// mkdirDurable is os.MkdirAll (0700) that fsyncs the parent of every
// directory it creates (safeio.MkdirAll).
func mkdirDurable(dir string) error { return safeio.MkdirAll(dir) }

// checkDir refuses anything but a real directory (a planted symlink to a
// directory outside the tree in particular).
func checkDir(p string) error {
	fi, err := os.Lstat(p)
	if err != nil {
		return fmt.Errorf("stat %q: %w", p, err)
	}
	if !fi.Mode().IsDir() {
		return fmt.Errorf("%w: %q is not a directory (%v)", ErrInvalidName, p, fi.Mode().Type())
	}
	return nil
}

// noFollow refuses a symlink as the last path component.
const noFollow = unix.O_NOFOLLOW
