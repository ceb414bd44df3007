package maildir

// WriteFileAtomic replaces dir/name with data crash-safely (temp file in
// dir, write, fsync, rename, fsync of dir), for other per-user files kept
// beside the Maildir, such as Sieve scripts. The caller serialises writers.
func WriteFileAtomic(dir, name string, data []byte) error {
	return writeFileAtomic(dir, name, data)
}

// SyncDir fsyncs a directory, so that entries created, renamed or removed
// in it survive a crash.
func SyncDir(dir string) error { return syncDir(dir) }
