package queue

import "tern/common/diskspace"

// ErrNoSpace: the queue's file system is below its reserve (diskspace).
var ErrNoSpace = diskspace.ErrLow

// CheckSpace checks the reserve of the file system holding the queue.
func (q *Queue) CheckSpace(minBytes, minInodes int64) error {
	return diskspace.Check(q.dir, minBytes, minInodes)
}
