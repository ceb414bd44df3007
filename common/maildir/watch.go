package maildir

import (
	"context"
	"encoding/binary"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// PollInterval is how often a folder is polled when inotify cannot watch it
// (inotify unavailable or out of watches, or an NFS mount, where inotify
// does not see other hosts' changes).
var PollInterval = time.Second

// forcePolling makes new watchers poll instead of using inotify (tests of
// the fallback).
var forcePolling bool

// Watching is shared per process: one inotify instance for all folders, one
// folderWatch per folder directory fanned out to every subscriber. 10,000
// IDLE sessions on one folder cost 10,000 small channels, not 10,000
// watches.

type folderWatch struct {
	st    *folderState
	subs  map[chan struct{}]struct{}
	wds   []int
	stopc chan struct{} // closes the poller, if any
}

var watchers struct {
	mu      sync.Mutex
	fd      int
	file    *os.File
	initErr error
	inited  bool
	byWd    map[int][]wdUser
}

// wdUser ties a watch descriptor to a folder; top marks the folder
// directory itself, where only index replacements matter.
type wdUser struct {
	fw  *folderWatch
	top bool
}

const (
	dirMask = unix.IN_CREATE | unix.IN_DELETE | unix.IN_MOVED_FROM | unix.IN_MOVED_TO | unix.IN_ATTRIB | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF
	topMask = unix.IN_MOVED_TO | unix.IN_CREATE | unix.IN_DELETE
)

// nfsSuperMagic is the statfs type of NFS mounts.
const nfsSuperMagic = 0x6969

func initInotify() error {
	if watchers.inited {
		return watchers.initErr
	}
	watchers.inited = true
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		watchers.initErr = err
		slog.Warn("maildir: inotify unavailable, polling folders", "err", err)
		return err
	}
	watchers.fd = fd
	// A non-blocking descriptor wrapped by os.NewFile uses the runtime
	// poller, so the reader parks a goroutine, not a thread.
	watchers.file = os.NewFile(uintptr(fd), "inotify")
	watchers.byWd = make(map[int][]wdUser)
	go readInotify(watchers.file)
	return nil
}

func readInotify(f *os.File) {
	buf := make([]byte, 64*1024)
	for {
		n, err := f.Read(buf)
		if err != nil {
			slog.Error("maildir: inotify read failed; watchers fall back to polling", "err", err)
			watchers.mu.Lock()
			for _, users := range watchers.byWd {
				for _, u := range users {
					u.fw.startPoll()
					u.fw.notify()
				}
			}
			watchers.byWd = map[int][]wdUser{}
			watchers.mu.Unlock()
			return
		}
		watchers.mu.Lock()
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			wd := int(int32(binary.NativeEndian.Uint32(buf[off:])))
			mask := binary.NativeEndian.Uint32(buf[off+4:])
			nameLen := int(binary.NativeEndian.Uint32(buf[off+12:]))
			name := ""
			if end := off + unix.SizeofInotifyEvent + nameLen; end <= n {
				b := buf[off+unix.SizeofInotifyEvent : end]
				for i, c := range b {
					if c == 0 {
						b = b[:i]
						break
					}
				}
				name = string(b)
			}
			off += unix.SizeofInotifyEvent + nameLen
			if mask&unix.IN_Q_OVERFLOW != 0 {
				for _, users := range watchers.byWd {
					for _, u := range users {
						u.fw.notify()
					}
				}
				continue
			}
			for _, u := range watchers.byWd[wd] {
				if u.top && name != indexName && mask&unix.IN_IGNORED == 0 {
					continue
				}
				u.fw.notify()
			}
			if mask&unix.IN_IGNORED != 0 {
				delete(watchers.byWd, wd)
			}
		}
		watchers.mu.Unlock()
	}
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

// startPoll polls new/, cur/ and the index every PollInterval; watchers.mu
// is held.
func (fw *folderWatch) startPoll() {
	if fw.stopc != nil {
		return
	}
	fw.stopc = make(chan struct{})
	stop := fw.stopc
	dir := fw.st.dir
	interval := PollInterval
	go func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		snap := func() [3]fileStat {
			return [3]fileStat{statOf(filepath.Join(dir, "new")), statOf(filepath.Join(dir, "cur")),
				statOf(filepath.Join(dir, indexName))}
		}
		last := snap()
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
	watchers.mu.Unlock()
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
	var sfs unix.Statfs_t
	nfs := unix.Statfs(dir, &sfs) == nil && sfs.Type == nfsSuperMagic
	if nfs {
		fw.startPoll()
	}
	if forcePolling || initInotify() != nil {
		fw.startPoll()
		return
	}
	for _, w := range []struct {
		path string
		mask uint32
		top  bool
	}{{filepath.Join(dir, "new"), dirMask, false}, {filepath.Join(dir, "cur"), dirMask, false}, {dir, topMask, true}} {
		// IN_MASK_ADD: another folderWatch may watch the same inode
		// (one directory reached by two paths); keep its events too.
		wd, err := unix.InotifyAddWatch(watchers.fd, w.path, w.mask|unix.IN_MASK_ADD|unix.IN_ONLYDIR|unix.IN_DONT_FOLLOW)
		if err != nil {
			slog.Warn("maildir: inotify watch failed, polling", "path", w.path, "err", err)
			fw.startPoll()
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
			if u.fw != fw {
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
