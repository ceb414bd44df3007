package reload

import (
	"os"
	"syscall"
	"time"
)

// FileID identifies a version of a file, so that its owner re-reads it
// only when it changed: a replaced file has a new inode, an edited one a
// new size or modification time. The zero value is a missing file.
type FileID struct {
	dev, ino uint64
	size     int64
	mtime    time.Time
}

// IDOf is the FileID of what fi describes.
func IDOf(fi os.FileInfo) FileID {
	id := FileID{size: fi.Size(), mtime: fi.ModTime()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		id.dev, id.ino = uint64(st.Dev), st.Ino
	}
	return id
}

// StatID is the FileID of the file at path now (zero when it is missing).
func StatID(path string) FileID {
	fi, err := os.Stat(path)
	if err != nil {
		return FileID{}
	}
	return IDOf(fi)
}
