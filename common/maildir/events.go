package maildir

import (
	"encoding/binary"
	"errors"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"
)

// Change tracking. While this process has a folder open, its new/, cur/ and
// directory are watched through the process's one inotify instance, and
// every event that this process did not cause itself counts as a foreign
// change. Sync trusts its cached snapshot without listing any directory as
// long as no foreign event arrived since the last full scan began. This is
// sound because the kernel queues an inotify event before the system call
// that caused it returns: a change completed before Sync starts is in the
// queue, and Sync drains the queue (under watchers.mu, the lock the reader
// holds while it processes events) before it looks at the counter. A full
// scan records the counter after such a drain and before it lists, so a
// change made while it lists is counted for the next Sync.
//
// Changes this process makes to new/ and cur/ register the events they will
// cause (directory, event type, file name) before they make them; the
// matching events are consumed instead of counted. Maildir names are
// unique, and rename events carry distinct cookies, so the kernel never
// merges one of our events with another program's. If an own change fails
// half-way the folder is marked dirty and the next Sync scans.
//
// The index file is replaced only by rename, counted per folder: the next
// Sync compares the index's generation with its own. The change log is only
// appended to under the index lock, so its size tells whether another
// process wrote to it. Without inotify (unavailable, out of watches, shared
// storage: see shared.go)
// Sync falls back to comparing stats and mtimes (see unchanged).

// Watched subdirectories of a folder.
const (
	subNew = iota
	subCur
	subTop
)

// folderEvents is the inotify change tracking of one folder state. All
// fields are guarded by watchers.mu.
type folderEvents struct {
	dir     string
	live    bool   // watches installed and the reader healthy
	foreign uint64 // events in new/ or cur/ not caused by this process
	index   uint64 // replacements or removals of the index file
	expect  map[expectKey]int
	wds     []int
}

type expectKey struct {
	sub  uint8
	mask uint32
	name string
}

// eventKinds are the event types matched against own changes.
const eventKinds = unix.IN_CREATE | unix.IN_DELETE | unix.IN_MOVED_FROM | unix.IN_MOVED_TO | unix.IN_ATTRIB

// startEvents installs the change tracking of st, if inotify can serve the
// folder; st.mu is held. The watches are removed when the state is
// collected.
func (st *folderState) startEvents() {
	if st.evTried {
		return
	}
	st.evTried = true
	if isShared(st.dir) {
		// Other hosts' changes raise no inotify events (shared.go).
		st.shared = true
		return
	}
	watchers.mu.Lock()
	defer watchers.mu.Unlock()
	if forcePolling || inotifyBlind || initInotify() != nil {
		return
	}
	ev := &folderEvents{dir: st.dir, expect: make(map[expectKey]int)}
	for _, w := range []struct {
		path string
		mask uint32
		sub  uint8
	}{{filepath.Join(st.dir, "new"), dirMask, subNew}, {filepath.Join(st.dir, "cur"), dirMask, subCur}, {st.dir, topMask, subTop}} {
		wd, err := unix.InotifyAddWatch(watchers.fd, w.path, w.mask|unix.IN_MASK_ADD|unix.IN_ONLYDIR|unix.IN_DONT_FOLLOW)
		if err != nil {
			if errors.Is(err, unix.ENOSPC) {
				logger().Warn("maildir: out of inotify watches, folder checked by mtime", "path", w.path)
			}
			ev.removeLocked()
			return
		}
		ev.wds = append(ev.wds, wd)
		watchers.byWd[wd] = append(watchers.byWd[wd], wdUser{ev: ev, sub: w.sub, top: w.sub == subTop})
	}
	ev.live = true
	st.ev = ev
	runtime.AddCleanup(st, func(ev *folderEvents) {
		watchers.mu.Lock()
		ev.removeLocked()
		watchers.mu.Unlock()
	}, ev)
}

// removeLocked drops the watches of ev; watchers.mu is held.
func (ev *folderEvents) removeLocked() {
	ev.live = false
	for _, wd := range ev.wds {
		users := watchers.byWd[wd]
		kept := users[:0]
		for _, u := range users {
			if u.ev != ev {
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
	ev.wds = nil
}

// event counts one inotify event of ev's folder; watchers.mu is held.
func (ev *folderEvents) event(sub uint8, mask uint32, name string) {
	if mask&(unix.IN_IGNORED|unix.IN_DELETE_SELF|unix.IN_MOVE_SELF|unix.IN_UNMOUNT) != 0 {
		// The directory itself went away or moved: nothing more can be
		// trusted from these watches.
		ev.live = false
		ev.foreign++
		return
	}
	if sub == subTop {
		if name == indexName && mask&(unix.IN_MOVED_TO|unix.IN_CREATE|unix.IN_DELETE|unix.IN_MOVED_FROM) != 0 {
			ev.index++
		}
		return
	}
	k := expectKey{sub: sub, mask: mask & eventKinds, name: name}
	if n := ev.expect[k]; n > 0 {
		if n == 1 {
			delete(ev.expect, k)
		} else {
			ev.expect[k] = n - 1
		}
		return
	}
	ev.foreign++
}

// overflow: the kernel dropped events, so every folder may have changed and
// no expected event can be relied on any more; watchers.mu is held.
func (ev *folderEvents) overflow() {
	ev.foreign++
	ev.index++
	clear(ev.expect)
}

// drainLocked reads and processes every event queued for this process's
// inotify instance without blocking; watchers.mu is held. It returns false
// when the descriptor failed (the caller falls back to polling).
func drainLocked() bool {
	if !watchers.inited || watchers.initErr != nil || watchers.failed {
		return false
	}
	for {
		n, err := unix.Read(watchers.fd, watchers.buf)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if errors.Is(err, unix.EAGAIN) {
			return true
		}
		if err != nil || n <= 0 {
			watchers.failLocked(err)
			return false
		}
		processEventsLocked(watchers.buf[:n])
	}
}

// processEventsLocked dispatches a buffer of inotify events to the
// folders' trackers and watchers; watchers.mu is held.
func processEventsLocked(buf []byte) {
	n := len(buf)
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
					if u.ev != nil {
						u.ev.overflow()
					}
					if u.fw != nil {
						u.fw.notify()
					}
				}
			}
			continue
		}
		for _, u := range watchers.byWd[wd] {
			if u.ev != nil {
				u.ev.event(u.sub, mask, name)
				continue
			}
			if u.top && name != indexName && name != logName && mask&unix.IN_IGNORED == 0 {
				continue
			}
			u.fw.notify()
		}
		if mask&unix.IN_IGNORED != 0 {
			delete(watchers.byWd, wd)
		}
	}
}

// eventsQuiet drains the inotify queue and reports whether no foreign change
// to new/ or cur/ arrived since the last full scan, and how many index
// replacements were counted so far; st.mu is held. ok is false when inotify
// does not serve this folder.
func (st *folderState) eventsQuiet() (quiet bool, indexEvents uint64, ok bool) {
	ev := st.ev
	if ev == nil {
		return false, 0, false
	}
	watchers.mu.Lock()
	defer watchers.mu.Unlock()
	if !drainLocked() || !ev.live {
		return false, 0, false
	}
	return ev.foreign == st.scanForeign, ev.index, true
}

// markScan drains the queue and records the counters at the start of a full
// scan; st.mu is held.
func (st *folderState) markScan() {
	ev := st.ev
	if ev == nil {
		return
	}
	watchers.mu.Lock()
	defer watchers.mu.Unlock()
	drainLocked()
	st.scanForeign, st.seenIndexEvents = ev.foreign, ev.index
	// Own changes finished before this point have had their events
	// drained; whatever is still expected never came (or was made by a
	// path that causes other events) and must not swallow a later one.
	clear(ev.expect)
}

// ownChange is a change of a file in new/ or cur/ that this process is about
// to make, with the inotify events it will cause.
type ownChange []expectKey

func (c *ownChange) rename(fromSub uint8, from string, toSub uint8, to string) {
	*c = append(*c, expectKey{fromSub, unix.IN_MOVED_FROM, from}, expectKey{toSub, unix.IN_MOVED_TO, to})
}

func (c *ownChange) moveIn(sub uint8, name string) {
	*c = append(*c, expectKey{sub, unix.IN_MOVED_TO, name})
}

func (c *ownChange) remove(sub uint8, name string) {
	*c = append(*c, expectKey{sub, unix.IN_DELETE, name})
}

// expect registers own changes before they are made; st.mu is held. The
// queue is drained first so that no event queued before cannot match.
func (st *folderState) expect(c ownChange) {
	ev := st.ev
	if ev == nil || len(c) == 0 {
		return
	}
	watchers.mu.Lock()
	defer watchers.mu.Unlock()
	drainLocked()
	for _, k := range c {
		ev.expect[k]++
	}
}

// unexpect withdraws registered changes that were not made (the system call
// failed) and marks the folder for a full scan: another program may have
// caused the very events that were expected; st.mu is held.
func (st *folderState) unexpect(c ownChange) {
	st.dirty = true
	ev := st.ev
	if ev == nil || len(c) == 0 {
		return
	}
	watchers.mu.Lock()
	defer watchers.mu.Unlock()
	for _, k := range c {
		if n := ev.expect[k]; n > 1 {
			ev.expect[k] = n - 1
		} else {
			delete(ev.expect, k)
		}
	}
}
