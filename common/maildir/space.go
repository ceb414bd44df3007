package maildir

import "tern/common/diskspace"

// ErrNoSpace: a Maildir's file system is below its reserve (diskspace).
var ErrNoSpace = diskspace.ErrLow

// CheckSpace checks the reserve of the file system holding dir, or of its
// nearest existing parent when dir is not created yet (a first delivery).
func CheckSpace(dir string, minBytes, minInodes int64) error {
	return diskspace.Check(dir, minBytes, minInodes)
}
