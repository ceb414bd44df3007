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
)

// syncDir fsyncs a directory so that entries created, renamed or removed in
// it survive a crash.
func syncDir(dir string) error {
	if skipDirSync(dir) {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open dir %q: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync dir %q: %w", dir, err)
	}
	return nil
}

// writeFileAtomic replaces dir/name with data: temp file in dir, write,
// fsync, rename, fsync dir. A reader sees the old or the new file, never a
// torn one. The caller holds whatever lock protects name.
func writeFileAtomic(dir, name string, data []byte) error {
	tmp := filepath.Join(dir, name+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("create %q: %w", tmp, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("write %q: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("fsync %q: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("close %q: %w", tmp, err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("rename %q: %w", tmp, err)
	}
	return syncDir(dir)
}

// renameNoReplace renames old to new unless new exists (then it returns an
// error satisfying errors.Is(err, os.ErrExist)). Maildir never overwrites a
// message: where renameat2(RENAME_NOREPLACE) is not supported (older
// kernels, NFS), link+unlink gives the same guarantee.
func renameNoReplace(oldPath, newPath string) error {
	err := unix.Renameat2(unix.AT_FDCWD, oldPath, unix.AT_FDCWD, newPath, unix.RENAME_NOREPLACE)
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EOPNOTSUPP) {
		return &os.LinkError{Op: "rename", Old: oldPath, New: newPath, Err: err}
	}
	if err := os.Link(oldPath, newPath); err != nil {
		return err
	}
	if err := os.Remove(oldPath); err != nil {
		return fmt.Errorf("remove %q after link: %w", oldPath, err)
	}
	return nil
}

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
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return "", 0, 0, fmt.Errorf("create %q: %w", path, err)
	}
	fail := func(e error) (string, int64, int64, error) {
		f.Close()
		os.Remove(path)
		return "", 0, 0, e
	}
	size, wire, err = copyLF(f, r)
	if err != nil {
		return fail(fmt.Errorf("write %q: %w", path, err))
	}
	if err := f.Sync(); err != nil {
		return fail(fmt.Errorf("fsync %q: %w", path, err))
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return "", 0, 0, fmt.Errorf("close %q: %w", path, err)
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
// directory it creates, so that the new names survive a crash.
func mkdirDurable(dir string) error {
	if fi, err := os.Stat(dir); err == nil {
		if !fi.IsDir() {
			return &os.PathError{Op: "mkdir", Path: dir, Err: unix.ENOTDIR}
		}
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := mkdirDurable(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		if !errors.Is(err, os.ErrExist) {
			return err
		}
		// Created meanwhile by another process, whose fsync of the
		// parent may not have happened yet: this one does it too.
	}
	return syncDir(parent)
}

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
