// Package diskspace checks a file system's free-space and free-inode
// reserve ([storage] in tern.toml) before mail is written, for the queue
// and the Maildirs alike.
package diskspace

import (
	"errors"
	"fmt"
	"syscall"
)

// ErrLow: the file system is below its free-space or free-inode reserve.
// It is a temporary condition: callers answer 452 4.3.1 (SMTP, LMTP) or NO
// (IMAP APPEND), and take mail again once space returns.
var ErrLow = errors.New("diskspace: file system below its free-space reserve")

// Check reports ErrLow when the file system holding dir has less
// than minBytes available to unprivileged users or fewer than minInodes
// free inodes; 0 turns either check off. Callers check before they write
// anything, so that a full disk refuses new mail cleanly instead of
// leaving half-written files: the reserve also leaves room for the index
// updates and renames of the mail already accepted. dir may not exist yet
// (not created yet): its nearest existing parent is asked.
func Check(dir string, minBytes, minInodes int64) error {
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
		return fmt.Errorf("%w: %q has %d bytes free, reserve %d", ErrLow, path, avail, minBytes)
	}
	// File systems without inode accounting (btrfs, some FUSE) report
	// zero files; they cannot run out of inodes separately.
	if minInodes > 0 && st.Files > 0 && int64(st.Ffree) < minInodes {
		return fmt.Errorf("%w: %q has %d inodes free, reserve %d", ErrLow, path, st.Ffree, minInodes)
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
