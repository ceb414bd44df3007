package maildir

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// PollInterval is how often a folder is polled when inotify cannot watch it
// (inotify unavailable or out of watches). Folders on shared storage, where
// inotify does not see other hosts' changes, are polled every SharedPoll
// (shared.go) besides.
var PollInterval = time.Second

// forcePolling makes new watchers poll instead of using inotify (tests of
// the fallback).
var forcePolling bool

// inotifyBlind makes new watchers and trackers install no inotify watch, as
// if every change came from another host (tests of shared storage on a
// local file system).
var inotifyBlind bool

// Watching is shared per process: one inotify instance for all folders, one
// folderWatch per folder directory fanned out to every subscriber. 10,000
// IDLE sessions on one folder cost 10,000 small channels, not 10,000
// watches.

type folderWatch struct {
	st    *folderState
	subs  map[chan struct{}]struct{}
	wds   []int
	stopc chan struct{} // closes the poller, if any
	ready chan struct{} // closed once the poller took its first snapshot
}

type watcherSet struct {
	mu      sync.Mutex
	fd      int
	file    *os.File
	initErr error
	inited  bool
	failed  bool   // the descriptor failed; everything polls
	buf     []byte // read buffer, used under mu
	byWd    map[int][]wdUser
}

var watchers watcherSet

// wdUser ties a watch descriptor to a folder's watcher (fw) or change
// tracker (ev); top marks the folder directory itself, where only the index
// and its log matter, sub says which directory a tracker watches.
type wdUser struct {
	fw  *folderWatch
	ev  *folderEvents
	top bool
	sub uint8
}

const (
	dirMask = unix.IN_CREATE | unix.IN_DELETE | unix.IN_MOVED_FROM | unix.IN_MOVED_TO | unix.IN_ATTRIB | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF
	// IN_MODIFY reports appends to the change log.
	topMask = unix.IN_MOVED_TO | unix.IN_MOVED_FROM | unix.IN_CREATE | unix.IN_DELETE | unix.IN_MODIFY
)

// initInotify starts the process's inotify instance; watchers.mu is held.
func initInotify() error {
	if watchers.inited {
		if watchers.initErr == nil && watchers.failed {
			return errInotifyFailed
		}
		return watchers.initErr
	}
	watchers.inited = true
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		watchers.initErr = err
		logger().Warn("maildir: inotify unavailable, polling folders", "err", err)
		return err
	}
	watchers.fd = fd
	watchers.buf = make([]byte, 64*1024)
	// A non-blocking descriptor wrapped by os.NewFile uses the runtime
	// poller, so the reader parks a goroutine, not a thread.
	watchers.file = os.NewFile(uintptr(fd), "inotify")
	watchers.byWd = make(map[int][]wdUser)
	rc, err := watchers.file.SyscallConn()
	if err != nil {
		watchers.initErr = err
		return err
	}
	go readInotify(rc)
	return nil
}

var errInotifyFailed = errors.New("maildir: inotify failed")

// readInotify waits for events and processes them under watchers.mu. Sync
// drains the same queue under the same lock (drainLocked), so once it holds
// the lock no event queued earlier is still in flight.
func readInotify(rc syscall.RawConn) {
	err := rc.Read(func(uintptr) bool {
		watchers.mu.Lock()
		defer watchers.mu.Unlock()
		// false: wait until the descriptor is readable again.
		return !drainLocked()
	})
	watchers.mu.Lock()
	watchers.failLocked(err)
	watchers.mu.Unlock()
}

// failLocked switches every watcher to polling and every tracker off after
// the inotify descriptor failed; watchers.mu is held.
func (w *watcherSet) failLocked(err error) {
	if w.failed {
		return
	}
	w.failed = true
	logger().Error("maildir: inotify read failed; watchers fall back to polling", "err", err)
	for _, users := range w.byWd {
		for _, u := range users {
			if u.ev != nil {
				u.ev.live = false
				continue
			}
			u.fw.startPoll(PollInterval)
			u.fw.notify()
		}
	}
	w.byWd = map[int][]wdUser{}
}

// notify wakes every subscriber without blocking (coalescing); watchers.mu
// is held.
func (fw *folderWatch) notify() {
	for ch := range fw.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// startPoll polls new/, cur/, the index and its log every interval;
// watchers.mu is held. Only stats are taken, by path, so no descriptor
// outlives a rename made on another host.
func (fw *folderWatch) startPoll(interval time.Duration) {
	if fw.stopc != nil {
		return
	}
	fw.stopc = make(chan struct{})
	stop := fw.stopc
	dir := fw.st.dir
	// Watch waits for the first snapshot, outside watchers.mu: a change
	// made after Watch returns is then always seen.
	ready := make(chan struct{})
	fw.ready = ready
	go func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		snap := func() [4]fileStat {
			return [4]fileStat{statOf(filepath.Join(dir, "new")), statOf(filepath.Join(dir, "cur")),
				statOf(filepath.Join(dir, indexName)), statOf(filepath.Join(dir, logName))}
		}
		last := snap()
		close(ready)
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			if now := snap(); now != last {
				last = now
				watchers.mu.Lock()
				fw.notify()
				watchers.mu.Unlock()
			}
		}
	}()
}

// Watch returns a channel that receives a value (coalesced, never blocking
// the sender) whenever the folder may have changed: files in new/ or cur/
// or a rewritten index, by this or any other process. The channel is closed
// when ctx ends. IMAP IDLE sessions call Sync on each value.
func (f *Folder) Watch(ctx context.Context) (<-chan struct{}, error) {
	ch := make(chan struct{}, 1)
	st := f.st
	watchers.mu.Lock()
	fw := st.watch
	if fw == nil {
		fw = &folderWatch{st: st, subs: make(map[chan struct{}]struct{})}
		st.watch = fw
		fw.start()
	}
	fw.subs[ch] = struct{}{}
	ready := fw.ready
	watchers.mu.Unlock()
	if ready != nil {
		<-ready
	}
	context.AfterFunc(ctx, func() {
		watchers.mu.Lock()
		delete(fw.subs, ch)
		if len(fw.subs) == 0 {
			fw.stop()
			if st.watch == fw {
				st.watch = nil
			}
		}
		close(ch)
		watchers.mu.Unlock()
	})
	return ch, nil
}

// start installs inotify watches, or the poller when inotify cannot serve
// this folder; watchers.mu is held.
func (fw *folderWatch) start() {
	dir := fw.st.dir
	if isShared(dir) {
		// Never inotify alone: it sees only this host's changes, which
		// it still reports at once.
		fw.startPoll(sharedPoll())
	}
	if forcePolling || initInotify() != nil {
		fw.startPoll(PollInterval)
		return
	}
	if inotifyBlind {
		return
	}
	// Events already queued belong to earlier states of the folder.
	drainLocked()
	for _, w := range []struct {
		path string
		mask uint32
		top  bool
	}{{filepath.Join(dir, "new"), dirMask, false}, {filepath.Join(dir, "cur"), dirMask, false}, {dir, topMask, true}} {
		// IN_MASK_ADD: another folderWatch may watch the same inode
		// (one directory reached by two paths); keep its events too.
		wd, err := unix.InotifyAddWatch(watchers.fd, w.path, w.mask|unix.IN_MASK_ADD|unix.IN_ONLYDIR|unix.IN_DONT_FOLLOW)
		if err != nil {
			logger().Warn("maildir: inotify watch failed, polling", "path", w.path, "err", err)
			fw.startPoll(PollInterval)
			continue
		}
		fw.wds = append(fw.wds, wd)
		watchers.byWd[wd] = append(watchers.byWd[wd], wdUser{fw: fw, top: w.top})
	}
}

// stop removes the folder's watches and poller; watchers.mu is held.
func (fw *folderWatch) stop() {
	if fw.stopc != nil {
		close(fw.stopc)
		fw.stopc = nil
	}
	for _, wd := range fw.wds {
		users := watchers.byWd[wd]
		kept := users[:0]
		for _, u := range users {
			if u.fw != fw || u.ev != nil {
				kept = append(kept, u)
			}
		}
		if len(kept) == 0 {
			delete(watchers.byWd, wd)
			unix.InotifyRmWatch(watchers.fd, uint32(wd))
		} else {
			watchers.byWd[wd] = kept
		}
	}
	fw.wds = nil
}
