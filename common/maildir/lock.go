package maildir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// Locks are fcntl open-file-description (OFD) write locks on a lock file that
// is never removed or renamed. OFD locks were chosen over a dotlock because
//   - the kernel releases them when the holder dies (SIGKILL, OOM), so there
//     is no staleness guess to get wrong;
//   - they belong to an open file, not to a process, so two goroutines (two
//     imapd sessions in one process) exclude each other as two processes do,
//     and closing an unrelated descriptor does not drop them (the trap of
//     classic POSIX locks);
//   - Linux's NFS client sends them to the server like POSIX locks (NLM for
//     NFSv3, native for NFSv4), so several hosts sharing the tree over NFS
//     are serialised too.

// lockFile opens path (creating it) and takes an exclusive OFD lock on it,
// waiting if wait is set; otherwise it returns ErrLocked when held. The lock
// is released by closing the returned file.
func lockFile(path string, wait bool) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock %q: %w", path, err)
	}
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: 0, Len: 0}
	cmd := unix.F_OFD_SETLK
	if wait && !isShared(filepath.Dir(path)) {
		cmd = unix.F_OFD_SETLKW
	}
	// On shared storage a waiting lock is polled instead: a blocked
	// F_OFD_SETLKW on a FUSE or network file system is interrupted by
	// every signal the Go runtime sends the thread (EINTR, then a new
	// request), and a server that does not cancel the interrupted request
	// can grant it to nobody and leave every host waiting.
	delay := time.Millisecond
	for {
		err = unix.FcntlFlock(f.Fd(), cmd, &lk)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if wait && cmd == unix.F_OFD_SETLK && (errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EACCES)) {
			time.Sleep(delay)
			delay = min(2*delay, 20*time.Millisecond)
			continue
		}
		break
	}
	if err != nil {
		f.Close()
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EACCES) {
			return nil, fmt.Errorf("lock %q: %w", path, ErrLocked)
		}
		return nil, fmt.Errorf("lock %q: %w", path, err)
	}
	return f, nil
}
