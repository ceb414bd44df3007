package maildir

import (
	"path/filepath"
	"runtime"
	"sync"
	"time"
	"weak"

	"golang.org/x/sys/unix"
)

// folderState is the per-process state of one folder directory, shared by
// every Folder value (and so every session) that opens the same path: one
// parsed index, one snapshot, one watcher. Memory therefore grows with the
// number of messages, not with sessions × messages.
type folderState struct {
	dir string

	mu      sync.Mutex // serialises syncs and changes within the process
	idx     *index     // last index read or written; nil before the first sync
	idxStat fileStat   // stat of the index file when idx was read or written
	kw      []string   // dovecot-keywords: letter i is kw[i]
	snap    *Snapshot  // the current snapshot, immutable once published

	// Stats of new/, cur/ and the index taken at the start of the last
	// full scan, and when: the quick path of Sync compares against them.
	seenNew, seenCur, seenIdx fileStat
	scanAt                    time.Time

	lastTmpClean time.Time

	// arrived holds the mtimes of the files moveNew took from new/ since
	// the last full scan, by key: assign gives them UIDs without a stat.
	arrived map[string]int64

	// Change tracking through inotify (events.go); ev is nil when the
	// folder is checked by mtime instead.
	ev              *folderEvents
	evTried         bool
	shared          bool   // on shared storage: no inotify, every log record fsynced
	scanForeign     uint64 // ev.foreign when the last full scan began
	seenIndexEvents uint64 // ev.index when the index was last compared
	scans           uint64 // full scans so far (tests and benchmarks read it)
	// dirty forces the next Sync to scan: an own change failed half-way.
	dirty bool

	// The change log (changelog.go) as this process last read or wrote it.
	logIno  uint64 // inode, 0 if there was none
	logSize int64  // size seen
	logOff  int64  // end of the last record applied
	logOK   bool   // extends the current index and ends cleanly: appendable
	logBoot string // boot token of its header

	// intern shares the Flags slices of snapshot messages by info (plus
	// keywords): most messages carry one of a few flag sets.
	intern map[string][]string

	watch *folderWatch // guarded by watchers.mu
}

// fileStat is the part of stat(2) that tells whether a file or directory
// changed.
type fileStat struct {
	ok    bool
	dev   uint64
	ino   uint64
	size  int64
	mtime int64
	ctime int64
}

func statOf(p string) fileStat {
	var s unix.Stat_t
	if err := unix.Lstat(p, &s); err != nil {
		return fileStat{}
	}
	return fileStat{ok: true, dev: uint64(s.Dev), ino: s.Ino, size: s.Size,
		mtime: s.Mtim.Nano(), ctime: s.Ctim.Nano()}
}

// trustWindow: a directory whose mtime is this close to (or after) the
// moment it was scanned may still change within the same timestamp tick
// without its mtime moving, so the next Sync scans it again. One second
// covers coarse kernel clocks and NFS servers with second granularity.
const trustWindow = time.Second

// registry maps a folder directory to its shared state. It holds weak
// pointers: when no Folder refers to a state any more, the state is
// collected and its entry removed.
var registry = struct {
	sync.Mutex
	m map[string]weak.Pointer[folderState]
}{m: make(map[string]weak.Pointer[folderState])}

func stateFor(dir string) *folderState {
	dir = filepath.Clean(dir)
	registry.Lock()
	defer registry.Unlock()
	if wp, ok := registry.m[dir]; ok {
		if s := wp.Value(); s != nil {
			return s
		}
	}
	s := &folderState{dir: dir}
	wp := weak.Make(s)
	registry.m[dir] = wp
	runtime.AddCleanup(s, func(dir string) {
		registry.Lock()
		defer registry.Unlock()
		if cur, ok := registry.m[dir]; ok && cur.Value() == nil {
			delete(registry.m, dir)
		}
	}, dir)
	return s
}

// forgetState drops the process cache of dir, as if this process had never
// opened it (used by the cold-open benchmark and by tests that simulate a
// fresh process).
func forgetState(dir string) {
	registry.Lock()
	delete(registry.m, filepath.Clean(dir))
	registry.Unlock()
}

// lockIndex takes the folder's cross-process index lock.
func (st *folderState) lockIndex() (release func(), err error) {
	f, err := lockFile(filepath.Join(st.dir, indexLockName), true)
	if err != nil {
		return nil, err
	}
	return func() { f.Close() }, nil
}
