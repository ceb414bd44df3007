// Package safeio writes files so that a crash leaves the old version or the
// new one, never a torn file, and so that a file reported written survives
// a power cut: temp file in the same file system → write → fsync →
// rename or link to its name → fsync of the directory that holds the name
// (STYLE.md 7; the Maildir delivery steps of tern-maildir(5) are the same
// steps). It is the one home of that sequence: the Maildir store, the
// queue, DKIM keys, the Sieve script store, the ACME and self-signed
// certificates, the MTA-STS cache and the vacation memory all write
// through it.
//
// A name is durable only once the directory holding it is fsynced after
// the rename or link (an fsync of the file makes its data durable, not its
// name), and a directory is durable only once its parent is: MkdirAll
// fsyncs the parent of each directory it creates.
package safeio

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

// SyncDir fsyncs a directory, so that entries created, renamed or removed
// in it survive a crash.
func SyncDir(dir string) error {
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

// Create makes a new temporary file in dir (which must be on the file
// system of the file's final name) with mode perm. It is given its name
// by Install or InstallLink; Discard removes it.
func Create(dir string, perm os.FileMode) (*os.File, error) {
	f, err := os.CreateTemp(dir, ".tmp-")
	if err != nil {
		return nil, fmt.Errorf("create temporary file in %q: %w", dir, err)
	}
	// CreateTemp makes 0600; a file others must read (a certificate for
	// the group) says so.
	if perm != 0o600 {
		if err := f.Chmod(perm); err != nil {
			Discard(f)
			return nil, fmt.Errorf("chmod %q: %w", f.Name(), err)
		}
	}
	return f, nil
}

// CreateExcl creates path for writing, with mode perm; it fails when the
// name exists or is a symlink (a planted link is never followed).
func CreateExcl(path string, perm os.FileMode) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, perm)
	if err != nil {
		return nil, fmt.Errorf("create %q: %w", path, err)
	}
	return f, nil
}

// Discard closes and removes a file made by Create that will not be
// installed.
func Discard(f *os.File) {
	f.Close()
	os.Remove(f.Name())
}

// Finish makes f's data durable and closes it: fsync, then close. On
// error the file is removed.
func Finish(f *os.File) error {
	if err := f.Sync(); err != nil {
		Discard(f)
		return fmt.Errorf("fsync %q: %w", f.Name(), err)
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("close %q: %w", f.Name(), err)
	}
	return nil
}

// Install makes f's data durable and gives it the name target, replacing
// what was there: fsync, rename, fsync of target's directory. f stays
// open (a lock held on it lasts until the caller closes it). On error the
// temporary name is removed.
func Install(f *os.File, target string) error {
	if err := f.Sync(); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("fsync %q: %w", f.Name(), err)
	}
	if err := os.Rename(f.Name(), target); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("rename %q to %q: %w", f.Name(), target, err)
	}
	return SyncDir(filepath.Dir(target))
}

// InstallLink is Install that never replaces an existing target (link(2),
// qmail's rule): the error then satisfies errors.Is(err, os.ErrExist). The
// temporary name is removed in every case; f stays open.
func InstallLink(f *os.File, target string) error {
	defer os.Remove(f.Name())
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync %q: %w", f.Name(), err)
	}
	if err := os.Link(f.Name(), target); err != nil {
		return fmt.Errorf("link %q: %w", target, err)
	}
	return SyncDir(filepath.Dir(target))
}

// WriteFile replaces path with data (mode perm) crash-safely: a reader
// sees the old or the new file, never a torn one. The temporary file is
// path.tmp, so that a crash leaves at most one behind, reused by the next
// write; the caller serialises writers of one path.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	return WriteFileVia(path+".tmp", path, data, perm)
}

// WriteFileVia is WriteFile with the temporary file at tmp, on the same
// file system, for a store whose directories must hold only finished
// files (the queue's env/).
func WriteFileVia(tmp, path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|unix.O_NOFOLLOW, perm)
	if err != nil {
		return fmt.Errorf("create %q: %w", tmp, err)
	}
	defer f.Close()
	// The mode asked for, whatever the umask or a leftover had.
	if err := f.Chmod(perm); err != nil {
		Discard(f)
		return fmt.Errorf("chmod %q: %w", tmp, err)
	}
	if _, err := f.Write(data); err != nil {
		Discard(f)
		return fmt.Errorf("write %q: %w", tmp, err)
	}
	return Install(f, path)
}

// LinkFile writes data to path (mode perm) crash-safely unless path
// exists: an existing file is never overwritten (the error then satisfies
// errors.Is(err, os.ErrExist)).
func LinkFile(path string, data []byte, perm os.FileMode) error {
	f, err := Create(filepath.Dir(path), perm)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		Discard(f)
		return fmt.Errorf("write %q: %w", f.Name(), err)
	}
	return InstallLink(f, path)
}

// Rename renames old to new durably: the rename, then an fsync of new's
// directory (and of old's, when it is another one).
func Rename(oldPath, newPath string) error {
	if err := os.Rename(oldPath, newPath); err != nil {
		return err
	}
	if od, nd := filepath.Dir(oldPath), filepath.Dir(newPath); od != nd {
		if err := SyncDir(od); err != nil {
			return err
		}
	}
	return SyncDir(filepath.Dir(newPath))
}

// RenameNoReplace renames old to new unless new exists (then the error
// satisfies errors.Is(err, os.ErrExist)). Where renameat2(RENAME_NOREPLACE)
// is not supported (older kernels, NFS), link+unlink gives the same
// guarantee. It does not fsync: the caller fsyncs the directories, often
// once for many renames.
func RenameNoReplace(oldPath, newPath string) error {
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

// MkdirAll is os.MkdirAll (mode 0700) that fsyncs the parent of every
// directory it creates, so that the new names survive a crash: a file
// made durable in a directory whose own name is not is lost with it.
func MkdirAll(dir string) error {
	if fi, err := os.Stat(dir); err == nil {
		if !fi.IsDir() {
			return &os.PathError{Op: "mkdir", Path: dir, Err: unix.ENOTDIR}
		}
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := MkdirAll(parent); err != nil {
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
	return SyncDir(parent)
}

// CreateUnnamed makes a file in dir that has no name yet (O_TMPFILE), with
// mode perm: a crash before LinkUnnamed leaves nothing behind, and naming
// it costs one change to the target directory instead of a create and a
// remove in a temporary one. ok is false when the kernel or file system
// cannot (O_TMPFILE is refused on some, NFS among them; /proc is missing
// in some containers): the caller then takes the named path (CreateExcl).
func CreateUnnamed(dir string, perm os.FileMode) (f *os.File, ok bool, err error) {
	if !procFDs() {
		return nil, false, nil
	}
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_WRONLY|unix.O_CLOEXEC, uint32(perm))
	if err != nil {
		if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EISDIR) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			return nil, false, nil
		}
		return nil, true, fmt.Errorf("create unnamed file in %q: %w", dir, err)
	}
	return os.NewFile(uintptr(fd), filepath.Join(dir, "(unnamed)")), true, nil
}

// LinkUnnamed makes the data of f (from CreateUnnamed) durable and gives
// it the name target, which it never replaces: fsync, then linkat(2).
// linkat through /proc/self/fd names the file without needing
// CAP_DAC_READ_SEARCH (which AT_EMPTY_PATH would). The caller then fsyncs
// target's directory: common/maildir shares one such fsync among the
// deliveries that finish together. f stays open.
func LinkUnnamed(f *os.File, target string) error {
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync %q: %w", f.Name(), err)
	}
	proc := "/proc/self/fd/" + strconv.Itoa(int(f.Fd()))
	if err := unix.Linkat(unix.AT_FDCWD, proc, unix.AT_FDCWD, target, unix.AT_SYMLINK_FOLLOW); err != nil {
		return &os.LinkError{Op: "link", Old: f.Name(), New: target, Err: err}
	}
	return nil
}

// procFDs reports whether /proc/self/fd can name an open file.
var procFDs = sync.OnceValue(func() bool {
	_, err := os.Stat("/proc/self/fd")
	return err == nil
})
