package queue

import (
	"errors"
	"fmt"
	"syscall"
)

// ErrNoSpace: the file system holding the queue is below its free-space
// or free-inode reserve ([storage] in tern.toml). It is a temporary
// condition: callers answer 452 4.3.1 (SMTP, LMTP)
// and take mail again once space returns.
var ErrNoSpace = errors.New("queue: file system below its free-space reserve")

// CheckSpace reports ErrNoSpace when the file system holding dir has less
// than minBytes available to unprivileged users or fewer than minInodes
// free inodes; 0 turns either check off. Callers check before they write
// anything, so that a full disk refuses new mail cleanly instead of
// leaving half-written files: the reserve also leaves room for the index
// updates and renames of the mail already accepted. dir may not exist yet
// (not created yet): its nearest existing parent is asked.
func CheckSpace(dir string, minBytes, minInodes int64) error {
	if minBytes <= 0 && minInodes <= 0 {
		return nil
	}
	var st syscall.Statfs_t
	path := dir
	for {
		err := syscall.Statfs(path, &st)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.ENOENT) || path == "/" || path == "." || path == "" {
			return fmt.Errorf("statfs %q: %w", path, err)
		}
		path = parentDir(path)
	}
	avail := int64(st.Bavail) * int64(st.Bsize)
	if minBytes > 0 && avail < minBytes {
		return fmt.Errorf("%w: %q has %d bytes free, reserve %d", ErrNoSpace, path, avail, minBytes)
	}
	// File systems without inode accounting (btrfs, some FUSE) report
	// zero files; they cannot run out of inodes separately.
	if minInodes > 0 && st.Files > 0 && int64(st.Ffree) < minInodes {
		return fmt.Errorf("%w: %q has %d inodes free, reserve %d", ErrNoSpace, path, st.Ffree, minInodes)
	}
	return nil
}

// parentDir is filepath.Dir without the cleaning surprises for "x/..".
func parentDir(p string) string {
	for len(p) > 1 && p[len(p)-1] == '/' {
		p = p[:len(p)-1]
	}
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] == '/' {
			if i == 0 {
				return "/"
			}
			return p[:i]
		}
	}
	return "."
}

// CheckSpace is CheckSpace for the queue's directory.
func (q *Queue) CheckSpace(minBytes, minInodes int64) error {
	return CheckSpace(q.dir, minBytes, minInodes)
}
