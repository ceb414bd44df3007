//go:build !powercut_nofsync

package maildir

// skipDirSync is false in every real build. Built with the tag
// powercut_nofsync (test/powercut only), it drops the fsync of new/ that
// makes a delivered message's name durable, so that the power-cut test
// can show that it finds a missing fsync.
func skipDirSync(dir string) bool { return false }
