package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"

	"tern/common/config"
	"tern/common/queue"
)

// openQueue opens the queue for mailq. Run by root, mailq first becomes
// the owner of the queue directory (the user smtpd runs as): files it
// writes (envelopes, the kick file) must stay readable and replaceable by
// smtpd, and root-owned ones would not be. It returns nil and an exit code
// when the queue cannot be used.
func openQueue(cfg *config.Config, stderr io.Writer) (*queue.Queue, int) {
	dir := filepath.Join(cfg.StateDir, "queue")
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		// Never create it here: as root that would make a directory smtpd
		// cannot write.
		fmt.Fprintf(stderr, "mailq: no queue at %s (has tern-smtpd run yet?)\n", dir)
		return nil, exUnavailable
	}
	if err != nil {
		fmt.Fprintf(stderr, "mailq: %v\n", err)
		return nil, exNoPerm
	}
	if err := becomeOwner(fi); err != nil {
		fmt.Fprintf(stderr, "mailq: %v\n", err)
		return nil, exNoPerm
	}
	q, err := queue.Open(cfg.StateDir, slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		if errors.Is(err, fs.ErrPermission) {
			fmt.Fprintf(stderr, "mailq: %v: run mailq as root or as the user tern-smtpd runs as\n", err)
			return nil, exNoPerm
		}
		fmt.Fprintf(stderr, "mailq: %v\n", err)
		return nil, exIOErr
	}
	// Reading a directory is the test of access: Open only creates what
	// exists already.
	if _, err := q.IDs(); err != nil {
		fmt.Fprintf(stderr, "mailq: %v: run mailq as root or as the user tern-smtpd runs as\n", err)
		return nil, exNoPerm
	}
	return q, exOK
}

// becomeOwner switches a root process to the uid and gid owning the queue
// directory (groups first, then gid, then uid; Go applies them to every
// thread). Anyone else keeps its identity.
func becomeOwner(fi os.FileInfo) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || os.Geteuid() != 0 || st.Uid == 0 {
		return nil
	}
	if err := syscall.Setgroups([]int{int(st.Gid)}); err != nil {
		return fmt.Errorf("switch to the queue owner: setgroups: %w", err)
	}
	if err := syscall.Setgid(int(st.Gid)); err != nil {
		return fmt.Errorf("switch to the queue owner: setgid %d: %w", st.Gid, err)
	}
	if err := syscall.Setuid(int(st.Uid)); err != nil {
		return fmt.Errorf("switch to the queue owner: setuid %d: %w", st.Uid, err)
	}
	return nil
}
