package maildir

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// syncHints tells a sync about messages the caller has just put into cur/:
// their keys get UIDs first, in this order (so that COPYUID/APPENDUID pairs
// line up), and their keywords that have no letter are recorded.
type syncHints struct {
	order []string
	kw    map[string][]string
	// emailIDs are the EMAILIDs a COPY or MOVE carries over from the
	// source messages (RFC 8474 5.1), by new key.
	emailIDs map[string]string
	// poll: the caller (Poll) moved what it would from new/; nothing
	// more is moved under the lock.
	poll bool
}

// trusted reports whether the cached index and snapshot still describe the
// folder, without listing a directory; st.mu is held. With inotify (see
// events.go) that is: no foreign event in new/ or cur/ since the last full
// scan began, the index not replaced by anyone else, the log as last seen.
// Without it, today's stat rules (unchanged).
func (st *folderState) trusted() bool {
	if st.snap == nil || st.idx == nil || st.dirty {
		return false
	}
	quiet, indexEvents, ok := st.eventsQuiet()
	if !ok {
		return st.unchanged()
	}
	if !quiet {
		return false
	}
	if indexEvents != st.seenIndexEvents {
		// Replaced since last compared: by this process (its generation)
		// or by another one.
		p := filepath.Join(st.dir, indexName)
		if statOf(p) != st.idxStat || st.headerGen(p) != st.idx.gen {
			return false
		}
		st.seenIndexEvents = indexEvents
	}
	return st.logUnchanged()
}

// unchanged reports whether new/, cur/ and the index are as they were at the
// last full scan, and old enough that an unseen change would have moved
// their mtimes, and whether the log is as last seen (it only grows between
// compactions, which replace the index).
func (st *folderState) unchanged() bool {
	n := statOf(filepath.Join(st.dir, "new"))
	c := statOf(filepath.Join(st.dir, "cur"))
	i := statOf(filepath.Join(st.dir, indexName))
	if n != st.seenNew || c != st.seenCur || i != st.seenIdx || !n.ok || !c.ok || !i.ok {
		return false
	}
	limit := st.scanAt.Add(-trustWindow).UnixNano()
	return n.mtime < limit && c.mtime < limit && i.mtime < limit && st.logUnchanged()
}

// fresh brings the cached state up to date before a change, with a full
// scan only when trusted says so; st.mu and the index lock are held.
func (st *folderState) fresh() error {
	if st.trusted() {
		return nil
	}
	if err := st.syncStale(nil); err != nil {
		return fmt.Errorf("sync %q: %w", st.dir, err)
	}
	return nil
}

// lockFresh takes the index lock and brings the cached state up to date for
// a change (fresh); st.mu is held. When a scan is due, new/ is moved to
// cur/ before the lock is taken (premove), so that the lock is held for
// the index work only.
func (st *folderState) lockFresh() (release func(), err error) {
	if !st.trusted() {
		st.premove()
	}
	if release, err = st.lockIndex(); err != nil {
		return nil, err
	}
	if err := st.fresh(); err != nil {
		release()
		return nil, err
	}
	return release, nil
}

// freshForClaim is fresh's lighter sibling for ClaimRecent (st.mu and the
// index lock held). A claim concerns only messages that have UIDs, so
// once this process has scanned the folder, the index and its log are all
// it needs: when the index is the one last read, the log's new lines
// (other processes' UIDs, flags and claims) are read and nothing is
// listed. Files that arrived since the caller's last Sync have no UID yet,
// so no session can claim them; the next Sync gives them one. When the
// index was replaced (a compaction) it is scanned again as a Poll does,
// moving nothing under the lock; before the first scan, as by Sync.
func (st *folderState) freshForClaim() error {
	if st.snap == nil || st.idx == nil {
		return st.fresh()
	}
	p := filepath.Join(st.dir, indexName)
	if statOf(p) == st.idxStat && st.headerGen(p) == st.idx.gen {
		prevOff, prevIno := st.logOff, st.logIno
		reload, err := st.readLog(false)
		if err != nil {
			st.idx = nil
			return fmt.Errorf("sync %q: %w", st.dir, err)
		}
		if !reload {
			if st.logOff != prevOff || st.logIno != prevIno {
				// Another process's lines: a keyword they use may have
				// got its letter meanwhile.
				if st.kw, err = readKeywords(st.dir); err != nil {
					st.idx = nil
					return fmt.Errorf("read keywords: %w", err)
				}
				st.snap = st.buildSnapshot()
			}
			return nil
		}
	}
	if st.trusted() {
		return nil
	}
	// What a Poll left in new/ still makes the next Sync scan.
	dirty := st.dirty
	if err := st.syncStale(&syncHints{poll: true}); err != nil {
		return fmt.Errorf("sync %q: %w", st.dir, err)
	}
	st.dirty = st.dirty || dirty
	return nil
}

// readLockRecord returns the UIDVALIDITY last recorded in the lock file (0
// if none). The lock file is never removed, so it remembers the validity of
// an index that was lost, and a recreated index never repeats it.
func (st *folderState) readLockRecord() uint32 {
	data, err := os.ReadFile(filepath.Join(st.dir, indexLockName))
	if err != nil {
		return 0
	}
	s, ok := strings.CutPrefix(strings.TrimSpace(string(data)), "uidvalidity ")
	if !ok {
		return 0
	}
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0
	}
	return uint32(v)
}

func (st *folderState) writeLockRecord(v uint32) {
	p := filepath.Join(st.dir, indexLockName)
	if err := os.WriteFile(p, []byte("uidvalidity "+strconv.FormatUint(uint64(v), 10)+"\n"), 0o600); err != nil {
		logger().Warn("maildir: record uidvalidity", "path", p, "err", err)
	}
}

// lastValidity is the greatest UIDVALIDITY this process has handed out.
var lastValidity atomic.Uint32

// validityRecord is a file in the Maildir root holding the last UIDVALIDITY
// given to a new index in the tree, so that a folder deleted and created
// again within one second still gets a new UIDVALIDITY.
const validityRecord = "tern-uidvalidity"

// freshIndex starts a new index whose UIDVALIDITY differs from every one this
// folder had: RFC 3501 2.3.1.1: if UIDs cannot be kept, UIDVALIDITY must
// change, so a client never sees a UID naming another message (and a
// mailbox created again under an old name gets a new one).
func (st *folderState) freshIndex(known uint32) *index {
	root := st.dir
	if _, err := os.Lstat(filepath.Join(st.dir, "maildirfolder")); err == nil {
		root = filepath.Dir(st.dir)
	}
	recPath := filepath.Join(root, validityRecord)
	for _, r := range []uint32{st.readLockRecord(), readValidity(recPath), lastValidity.Load()} {
		known = max(known, r)
	}
	v := uint32(time.Now().Unix())
	if v <= known {
		v = known + 1
	}
	for {
		l := lastValidity.Load()
		if l >= v || lastValidity.CompareAndSwap(l, v) {
			break
		}
	}
	st.writeLockRecord(v)
	if err := writeFileAtomic(root, validityRecord, []byte(strconv.FormatUint(uint64(v), 10)+"\n")); err != nil {
		logger().Warn("maildir: record uidvalidity", "path", recPath, "err", err)
	}
	// Every message of a new index is recent: no session has seen it
	// under this UIDVALIDITY.
	return &index{uidValidity: v, uidNext: 1, highestModSeq: 1, firstRecent: 1, version: indexVersion}
}

func readValidity(p string) uint32 {
	data, err := os.ReadFile(p)
	if err != nil {
		return 0
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(data)), 10, 32)
	if err != nil {
		return 0
	}
	return uint32(v)
}

// loadIndex brings st.idx up to date with the index file. It returns the
// imported Dovecot UIDs when the folder is being migrated, and whether the
// index must be written even if nothing else changes.
func (st *folderState) loadIndex() (imported map[string]uint32, mustWrite bool, err error) {
	p := filepath.Join(st.dir, indexName)
	fs := statOf(p)
	if st.idx != nil && fs.ok && fs == st.idxStat && st.headerGen(p) == st.idx.gen {
		reload, err := st.readLog(false)
		if err != nil {
			st.idx = nil
			return nil, false, err
		}
		if !reload {
			return nil, false, nil
		}
		// The log was replaced behind an unchanged index: read both
		// again.
	}
	if !fs.ok {
		if _, err := os.Lstat(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, false, fmt.Errorf("stat index %q: %w", p, err)
		}
		if st.idx != nil {
			logger().Warn("maildir: index vanished, new UIDVALIDITY", "path", p)
			st.idx = st.freshIndex(st.idx.uidValidity)
			return nil, true, nil
		}
		if st.readLockRecord() == 0 {
			ul, err := readUIDList(st.dir)
			if err != nil {
				logger().Warn("maildir: ignoring unreadable dovecot-uidlist", "dir", st.dir, "err", err)
			}
			if ul != nil {
				logger().Info("maildir: importing dovecot-uidlist", "dir", st.dir,
					"uidvalidity", ul.uidValidity, "uidnext", ul.uidNext, "messages", len(ul.uids))
				st.writeLockRecord(ul.uidValidity)
				// Dovecot's recent state is in its own index, not read
				// here: the messages it listed count as seen.
				next := max(ul.uidNext, 1)
				st.idx = &index{uidValidity: ul.uidValidity, uidNext: next, highestModSeq: 1, firstRecent: next, version: indexVersion}
				return ul.uids, true, nil
			}
		} else {
			logger().Warn("maildir: index missing, new UIDVALIDITY", "path", p)
		}
		st.idx = st.freshIndex(0)
		return nil, true, nil
	}
	data, err := readFileNoFollow(p)
	if err != nil {
		return nil, false, fmt.Errorf("read index: %w", err)
	}
	x, err := parseIndex(data)
	if err != nil {
		// Never guess: a fresh UIDVALIDITY tells clients to forget their
		// UIDs. The broken file is kept for inspection.
		var known uint32
		if nl := strings.IndexByte(string(data), '\n'); nl > 0 {
			if h, _, herr := parseHeaderLine(string(data[:nl])); herr == nil {
				known = h.uidValidity
			}
		}
		if st.idx != nil && st.idx.uidValidity > known {
			known = st.idx.uidValidity
		}
		logger().Error("maildir: unreadable index, new UIDVALIDITY", "path", p, "err", err)
		if rerr := os.Rename(p, p+".corrupt"); rerr != nil {
			logger().Warn("maildir: keep corrupt index", "path", p, "err", rerr)
		}
		st.idx = st.freshIndex(known)
		return nil, true, nil
	}
	st.idx = x
	st.idxStat = fs
	if _, err := st.readLog(true); err != nil {
		return nil, false, err
	}
	return nil, false, nil
}

// headerGen reads the generation from the index header (0 on error). It
// guards the stat comparison against inode reuse.
func (st *folderState) headerGen(p string) uint64 {
	f, err := openNoFollow(p)
	if err != nil {
		return 0
	}
	defer f.Close()
	var buf [160]byte
	n, _ := f.Read(buf[:])
	line := string(buf[:n])
	if nl := strings.IndexByte(line, '\n'); nl >= 0 {
		line = line[:nl]
	}
	h, _, err := parseHeaderLine(line)
	if err != nil {
		return 0
	}
	return h.gen
}

// dirEntryName lists the message files of a directory: regular files whose
// names do not start with "." (Maildir hides those) and that make a valid
// key. Symlinks and directories are ignored, never followed.
func listMessages(dir string) ([]string, error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("open %q: %w", dir, err)
	}
	defer d.Close()
	ents, err := d.ReadDir(-1)
	if err != nil {
		return nil, fmt.Errorf("read %q: %w", dir, err)
	}
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		n := e.Name()
		if n == "" || n[0] == '.' || !e.Type().IsRegular() {
			continue
		}
		if k, _ := splitName(n); !validKey(k) {
			continue
		}
		names = append(names, n)
	}
	return names, nil
}

// syncLocked is the full scan. The caller holds st.mu and the index lock.
// Steps, each safe to interrupt (see the package doc):
//  1. read the index (or import dovecot-uidlist, or start afresh);
//  2. move new/ files to cur/ with ":2," (no replace), fsync both dirs;
//  3. list cur/; rename duplicate keys apart;
//  4. drop entries whose file is gone, note outside flag renames (new
//     modseq), give UIDs to unknown files;
//  5. if anything changed, write the index atomically;
//  6. publish a new snapshot.
func (st *folderState) syncLocked(h *syncHints) (err error) {
	defer func() {
		if err != nil {
			// The in-memory index may hold changes that never reached
			// the disk: forget it and read the file again next time.
			st.idx = nil
		}
	}()
	st.scans++
	st.startEvents()
	st.markScan()
	st.dirty = false
	scanAt := time.Now()
	prevIdx, prevLog := st.idx, st.logOff
	imported, mustWrite, err := st.loadIndex()
	changed := mustWrite
	if err != nil {
		return err
	}
	if st.kw, err = readKeywords(st.dir); err != nil {
		return fmt.Errorf("read keywords: %w", err)
	}
	x := st.idx
	newDir := filepath.Join(st.dir, "new")
	curDir := filepath.Join(st.dir, "cur")

	sNew := statOf(newDir)
	left := false
	if h == nil || !h.poll {
		if left, err = st.moveNew(maxLockedMoves); err != nil {
			return err
		}
	}
	if left {
		// Bounded work under the lock: the rest of new/ is moved by the
		// next sync, before it takes the lock (moveNew).
		defer func() { st.dirty = true }()
	}

	sCur := statOf(curDir)
	files, dups, stable, err := st.listCur(x, scanAt)
	if err != nil {
		return err
	}
	for key, info := range files {
		if !oddName(key, info) {
			continue
		}
		// Renamed in cur/ by another program (or taken in by an older
		// tern): given a name the store can keep and change.
		nk, ni := st.saneName("cur", key+info, key, info)
		var oc ownChange
		oc.rename(subCur, key+info, subCur, nk+ni)
		st.expect(oc)
		if err := renameNoReplace(filepath.Join(curDir, key+info), filepath.Join(curDir, nk+ni)); err != nil {
			st.unexpect(oc)
			logger().Warn("maildir: cannot rename a file with an unusable name", "dir", curDir, "name", key+info, "err", err)
			continue
		}
		delete(files, key)
		files[nk] = ni
	}
	for _, name := range dups {
		// Two files with one key (a copy made by an outside tool): both
		// are kept, the second under a new key.
		key, info := splitName(name)
		nk := renameKey(key)
		if err := renameNoReplace(filepath.Join(curDir, name), filepath.Join(curDir, nk+info)); err != nil {
			logger().Warn("maildir: duplicate key", "dir", curDir, "name", name, "err", err)
			continue
		}
		files[nk] = info
	}

	// Reconcile the index with the files. Every change goes to the log
	// (or, when the index must be rewritten anyway, into a compaction).
	var batch logBatch
	kept := x.entries[:0]
	var expunged []uint32
	for _, e := range x.entries {
		info, ok := files[e.key]
		if !ok {
			if !stable {
				// Maybe renamed while the directory was read: keep it
				// until a listing can be trusted.
				kept = append(kept, e)
				continue
			}
			expunged = append(expunged, e.uid)
			continue
		}
		delete(files, e.key)
		if info != e.info {
			// Renamed by another program: flags from the new name, keywords
			// without a letter kept from the index, new modseq.
			e.kw = mergeKeywords(e.kw, info, st.kw)
			e.info = info
			x.highestModSeq++
			e.modseq = x.highestModSeq
			changed = true
			kept = append(kept, e)
			batch.entry(&kept[len(kept)-1])
			continue
		}
		kept = append(kept, e)
	}
	// Clear the tail so dropped entries' strings can be collected.
	clear(x.entries[len(kept):])
	x.entries = kept
	if len(expunged) > 0 {
		// RFC 7162 3.2 (QRESYNC): the mailbox's HIGHESTMODSEQ changes when messages
		// are expunged, so that QRESYNC clients notice.
		x.highestModSeq++
		batch.expunge(x.highestModSeq, expunged)
		x.noteExpunge(x.highestModSeq, expunged)
		changed = true
	}

	if len(files) > 0 {
		n0 := len(x.entries)
		added, reorder, err := st.assign(x, files, imported, h)
		if err != nil {
			return err
		}
		if added {
			changed = true
			mustWrite = mustWrite || reorder
			// New UIDs must survive a crash before anyone is told.
			// (An index rewritten whole needs no log lines.)
			for i := n0; !reorder && !mustWrite && i < len(x.entries); i++ {
				batch.entry(&x.entries[i])
			}
			batch.durable = true
		}
	}

	if mustWrite {
		if err := st.compact(); err != nil {
			return err
		}
	} else if err := st.appendLog(&batch); err != nil {
		return err
	}
	st.seenNew, st.seenCur, st.seenIdx, st.scanAt = sNew, sCur, st.idxStat, scanAt
	// A snapshot is rebuilt when this scan changed the index, and also when
	// another process did (a new index or new log lines: their expunges
	// and flag changes are in no file listing of ours).
	if changed || x != prevIdx || st.logOff != prevLog || st.snap == nil || st.snap.UIDValidity != x.uidValidity {
		st.snap = st.buildSnapshot()
	}
	st.cleanTmp(scanAt)
	clear(st.arrived)
	return nil
}

// maxLockedMoves bounds the new/ → cur/ renames a sync does while it holds
// the index lock: on a network file system each is a round trip to the
// servers, and every other session on every host waits for the lock
// meanwhile. A sync moves new/ before it takes the lock (moveNew), so
// under the lock it normally finds only what arrived while it waited.
const maxLockedMoves = 64

// moveNew moves the files of new/ to cur/ with ":2," (never replacing a
// file), at most limit of them when limit > 0, then fsyncs cur/ and new/
// once for the batch, and reports whether it left files in new/. st.mu is
// held; the index lock need not be: moving a file changes no UID (UIDs
// are given under the lock to what cur/ holds; package doc, crash
// recovery), and two processes moving one file cannot both succeed: the
// second finds new/KEY gone or, where a move is a link and an unlink,
// cur/KEY:2, taken by the same file, which is then already moved. Each
// process starts at a random place in the listing, so that two hosts
// moving at once mostly take different files. Each file's mtime is noted
// for assign, so the sync under the lock need not stat it again.
func (st *folderState) moveNew(limit int) (left bool, err error) {
	newDir := filepath.Join(st.dir, "new")
	curDir := filepath.Join(st.dir, "cur")
	fresh, err := listMessages(newDir)
	if err != nil {
		return false, err
	}
	st.startEvents() // decides st.shared; once the folder exists
	if limit > 0 && len(fresh) > limit {
		// The oldest first, so that UIDs still follow arrival.
		slices.SortFunc(fresh, func(a, b string) int {
			ka, _ := splitName(a)
			kb, _ := splitName(b)
			return newArrivalKey(ka).compare(newArrivalKey(kb))
		})
		fresh, left = fresh[:limit], true
	} else if len(fresh) > 1 {
		r := rand.IntN(len(fresh))
		fresh = slices.Concat(fresh[r:], fresh[:r])
	}
	if st.arrived == nil {
		st.arrived = make(map[string]int64)
	}
	moves := make([]newMove, len(fresh))
	for i, name := range fresh {
		key, info := splitName(name)
		if !strings.HasPrefix(info, ":2,") {
			info = ":2,"
		}
		if oddName(key, info) {
			key, info = st.saneName("new", name, key, info)
		}
		m := &moves[i]
		m.name, m.key, m.info = name, key, info
		m.oc.rename(subNew, name, subCur, key+info)
		st.expect(m.oc)
	}
	// On shared storage each rename waits for the servers: several are
	// kept in flight. Locally one at a time (they would queue on the
	// directory's lock anyway).
	workers := 1
	if st.shared {
		workers = sharedMoveWorkers
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(workers, len(moves)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(moves) {
					return
				}
				moveOne(&moves[i], newDir, curDir)
			}
		}()
	}
	wg.Wait()
	var first error
	moved := false
	for i := range moves {
		m := &moves[i]
		if !m.moved {
			st.unexpect(m.oc)
		}
		if m.err != nil && first == nil {
			first = fmt.Errorf("move %q to cur: %w", m.name, m.err)
		}
		if m.moved {
			moved = true
			st.arrived[m.key] = m.mtime
		}
	}
	if moved {
		// One fsync of each directory for the whole batch, before any of
		// its files gets a UID; also after a failure, since the files
		// moved before it will get theirs.
		if err := syncDir(curDir); err != nil {
			return left, err
		}
		if err := syncDir(newDir); err != nil {
			return left, err
		}
	}
	return left, first
}

// sharedMoveWorkers is how many renames from new/ to cur/ a sync keeps in
// flight on shared storage.
const sharedMoveWorkers = 8

// newMove is one file of a batch of moveNew.
type newMove struct {
	name      string // in new/
	key, info string // in cur/
	oc        ownChange
	mtime     int64
	moved     bool // renamed by this process, to key+info
	err       error
}

// moveOne moves one file of a batch: a stat (its mtime, and whether
// another process took it meanwhile), then a rename that replaces nothing.
func moveOne(m *newMove, newDir, curDir string) {
	src, dst := filepath.Join(newDir, m.name), filepath.Join(curDir, m.key+m.info)
	var fi unix.Stat_t
	if unix.Lstat(src, &fi) != nil {
		return // moved by another process meanwhile
	}
	m.mtime = fi.Mtim.Nano()
	err := moveNoReplace(src, dst)
	if errors.Is(err, os.ErrExist) && sameFile(src, dst) {
		// Linked into cur/ by another process that has not yet removed
		// the new/ name (or died before it did): already moved.
		if err := os.Remove(src); err != nil && !errors.Is(err, os.ErrNotExist) {
			m.err = err
		}
		return
	}
	if errors.Is(err, os.ErrExist) {
		// Another file already has this key: keep both, under a new key.
		m.key = renameKey(m.key)
		err = renameNoReplace(src, filepath.Join(curDir, m.key+m.info))
	}
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	m.err = err
	m.moved = err == nil
}

// moveNoReplace is renameNoReplace for the move from new/ to cur/, where
// the file system has no RENAME_NOREPLACE (GlusterFS): instead of a link
// and an unlink (two transactions on every replica), one rename(2) after
// checking that the target name is free, as Dovecot moves new/ to cur/
// with plain rename(2). The target is the file's own key with ":2,"; keys
// are unique (time, pid, counter, random, host), so the only file that can
// take that name meanwhile is this one, moved by another process, and
// then the rename finds new/KEY gone.
func moveNoReplace(src, dst string) error {
	err := unix.Renameat2(unix.AT_FDCWD, src, unix.AT_FDCWD, dst, unix.RENAME_NOREPLACE)
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EOPNOTSUPP) {
		return &os.LinkError{Op: "rename", Old: src, New: dst, Err: err}
	}
	if _, err := os.Lstat(dst); err == nil {
		return &os.LinkError{Op: "rename", Old: src, New: dst, Err: unix.EEXIST}
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return os.Rename(src, dst)
}

// sameFile reports whether the paths a and b name one file (hard links).
func sameFile(a, b string) bool {
	var sa, sb unix.Stat_t
	if unix.Lstat(a, &sa) != nil || unix.Lstat(b, &sb) != nil {
		return false
	}
	return sa.Dev == sb.Dev && sa.Ino == sb.Ino
}

// maxListTries bounds the re-reads of cur/ while outside programs keep
// renaming files in it.
const maxListTries = 4

// listCur reads cur/ into key -> info. readdir(3) is not atomic: a file
// renamed by another program (a flag change) while the directory is read can
// be listed under both names or under neither. So when a listing shows
// duplicate keys or misses indexed messages, and cur/ changed during the read
// or recently, the directory is read again until two listings agree. If they
// never do, stable is false and the caller keeps "missing" messages for now.
// dups are the extra names of keys seen twice in agreeing listings.
func (st *folderState) listCur(x *index, scanAt time.Time) (files map[string]string, dups []string, stable bool, err error) {
	curDir := filepath.Join(st.dir, "cur")
	var prev map[string]string
	var prevDups []string
	for try := 0; try < maxListTries; try++ {
		before := statOf(curDir)
		names, err := listMessages(curDir)
		if err != nil {
			return nil, nil, false, err
		}
		after := statOf(curDir)
		files = make(map[string]string, len(names))
		dups = dups[:0:0]
		for _, name := range names {
			key, info := splitName(name)
			if _, dup := files[key]; dup {
				dups = append(dups, name)
				continue
			}
			files[key] = info
		}
		missing := false
		for i := range x.entries {
			if _, ok := files[x.entries[i].key]; !ok {
				missing = true
				break
			}
		}
		if !missing && len(dups) == 0 {
			return files, nil, true, nil
		}
		if before == after && scanAt.UnixNano()-after.mtime > int64(trustWindow) {
			return files, dups, true, nil
		}
		if prev != nil && sameKeys(prev, files) && len(prevDups) == len(dups) {
			return files, dups, true, nil
		}
		prev, prevDups = files, dups
	}
	return files, nil, false, nil
}

func sameKeys(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			return false
		}
	}
	return true
}

// assign gives UIDs to files without one: imported Dovecot UIDs first, then
// the hinted keys in order, then the rest by name (names start with the
// delivery time, so UIDs follow arrival).
func (st *folderState) assign(x *index, files map[string]string, imported map[string]uint32, h *syncHints) (added, reorder bool, err error) {
	curDir := filepath.Join(st.dir, "cur")
	rank := map[string]int{}
	if h != nil {
		for i, k := range h.order {
			rank[k] = i + 1
		}
	}
	// The sort keys are worked out once per file, not once per
	// comparison: a first scan of a large folder sorts 100,000 names.
	type ranked struct {
		arrivalKey
		rank int
	}
	order := make([]ranked, 0, len(files))
	for k := range files {
		order = append(order, ranked{newArrivalKey(k), rank[k]})
	}
	slices.SortFunc(order, func(a, b ranked) int {
		if (a.rank > 0) != (b.rank > 0) {
			if a.rank > 0 {
				return -1
			}
			return 1
		}
		if c := cmp.Compare(a.rank, b.rank); c != 0 {
			return c
		}
		return a.compare(b.arrivalKey)
	})
	keys := make([]string, len(order))
	for i := range order {
		keys[i] = order[i].key
	}
	used := make(map[uint32]bool)
	if imported != nil {
		for _, e := range x.entries {
			used[e.uid] = true
		}
	}
	needSort := false
	stats, err := st.statNew(curDir, keys, files)
	if err != nil {
		return added, reorder, err
	}
	now := time.Now()
	for i, key := range keys {
		info := files[key]
		size, sized := sizeFromKey(key)
		mtime, known := st.arrived[key]
		if !known || !sized {
			// Not moved from new/ by this process just now: one stat.
			fs := &stats[i]
			if fs.err != nil {
				if errors.Is(fs.err, os.ErrNotExist) {
					continue // gone already; not a message any more
				}
				return added, reorder, fmt.Errorf("stat new message: %w", fs.err)
			}
			if !sized {
				size = fs.size
			}
			mtime = fs.mtime
		}
		kw := mergeKeywords(nil, info, st.kw)
		if h != nil && h.kw[key] != nil {
			kw = sortedUnion(kw, h.kw[key])
		}
		var uid uint32
		if u, ok := imported[key]; ok && u < x.uidNext && !used[u] {
			uid = u
			needSort = true
		} else {
			if x.uidNext == math.MaxUint32 {
				st.renumber(x)
				reorder = true
				used = map[uint32]bool{}
				needSort = false
				imported = nil
			}
			uid = x.uidNext
			x.uidNext++
		}
		used[uid] = true
		x.highestModSeq++
		// RFC 8514: the save date is when the message entered this
		// folder, which for files other programs drop in is the sync
		// that first sees them.
		e := entry{uid: uid, modseq: x.highestModSeq, size: size,
			mtime: mtime, saved: now.Unix(), key: key, info: info, kw: kw}
		if h != nil {
			e.emailID = storedEmailID(key, h.emailIDs[key])
		}
		x.entries = append(x.entries, e)
		added = true
	}
	if needSort {
		reorder = true
		slices.SortFunc(x.entries, func(a, b entry) int {
			switch {
			case a.uid < b.uid:
				return -1
			case a.uid > b.uid:
				return 1
			}
			return 0
		})
	}
	return added, reorder, nil
}

// msgStat is what assign needs of a message file: lstat(2)'s size and
// mtime (the IMAP internal date), or why it could not be had.
type msgStat struct {
	size, mtime int64
	err         error
}

// statWorkers is how many stats run at once when a folder's first scan
// meets many files: the kernel answers them in parallel, and a 100,000
// message folder seen for the first time spends most of its scan there.
const statWorkers = 4

// statNew stats the files of keys that assign needs to stat (those moveNew
// did not note). On shared storage each stat is a round trip to the
// servers made while the index lock is held, so several run at once.
func (st *folderState) statNew(curDir string, keys []string, files map[string]string) ([]msgStat, error) {
	out := make([]msgStat, len(keys))
	var todo []int
	var names []string
	for i, key := range keys {
		_, sized := sizeFromKey(key)
		if _, known := st.arrived[key]; !known || !sized {
			todo = append(todo, i)
			names = append(names, key+files[key])
		}
	}
	workers := 0 // statFiles' own choice
	if st.shared {
		workers = sharedMoveWorkers
	}
	stats, err := statFiles(curDir, names, workers)
	if err != nil {
		return nil, err
	}
	for j, i := range todo {
		out[i] = stats[j]
	}
	return out, nil
}

// statFiles stats the files names of dir, without following symlinks,
// relative to one open directory (no path walk per file), with workers
// at once (0: in parallel only when there are many).
func statFiles(dir string, names []string, workers int) ([]msgStat, error) {
	out := make([]msgStat, len(names))
	if len(names) == 0 {
		return out, nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("open %q: %w", dir, err)
	}
	defer d.Close()
	fd := int(d.Fd())
	stat := func(from, step int) {
		var st unix.Stat_t
		for i := from; i < len(names); i += step {
			err := unix.Fstatat(fd, names[i], &st, unix.AT_SYMLINK_NOFOLLOW)
			if err != nil {
				out[i].err = &os.PathError{Op: "lstat", Path: filepath.Join(dir, names[i]), Err: err}
				continue
			}
			out[i].size, out[i].mtime = st.Size, st.Mtim.Nano()
		}
	}
	if workers <= 0 {
		workers = min(statWorkers, runtime.GOMAXPROCS(0), len(names)/256+1)
	}
	workers = min(workers, len(names))
	if workers <= 1 {
		stat(0, 1)
		return out, nil
	}
	var wg sync.WaitGroup
	for k := 0; k < workers; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stat(k, workers)
		}()
	}
	wg.Wait()
	return out, nil
}

// renumber handles the exhaustion of the 32-bit UID space: a new
// UIDVALIDITY and UIDs from 1 (RFC 3501 2.3.1.1).
func (st *folderState) renumber(x *index) {
	n := st.freshIndex(x.uidValidity)
	x.uidValidity = n.uidValidity
	x.uidNext = 1
	x.firstRecent = 1
	for i := range x.entries {
		x.entries[i].uid = x.uidNext
		x.uidNext++
	}
	logger().Warn("maildir: UID space exhausted, renumbered", "dir", st.dir, "uidvalidity", x.uidValidity)
}

// arrivalLess orders keys by their arrival time: the seconds before the
// first ".", then the microseconds of an "M<usec>" unique part (tern,
// Dovecot), as numbers, since neither is zero-padded and a plain string
// order would put 9 after 10. Ties and other shapes fall back to the name.
func arrivalLess(a, b string) bool {
	return newArrivalKey(a).compare(newArrivalKey(b)) < 0
}

// arrivalKey is a key with its arrival time parsed, for sorting many.
type arrivalKey struct {
	key       string
	sec, usec int64
}

func newArrivalKey(key string) arrivalKey {
	a := arrivalKey{key: key}
	a.sec, a.usec = arrivalTime(key)
	return a
}

func (a arrivalKey) compare(b arrivalKey) int {
	if c := cmp.Compare(a.sec, b.sec); c != 0 {
		return c
	}
	if c := cmp.Compare(a.usec, b.usec); c != 0 {
		return c
	}
	return strings.Compare(a.key, b.key)
}

func arrivalTime(key string) (sec, usec int64) {
	dot := strings.IndexByte(key, '.')
	if dot <= 0 {
		return 0, 0
	}
	sec, err := strconv.ParseInt(key[:dot], 10, 64)
	if err != nil {
		return 0, 0
	}
	rest := key[dot+1:]
	if len(rest) < 2 || rest[0] != 'M' {
		return sec, 0
	}
	end := 1
	for end < len(rest) && end < 8 && rest[end] >= '0' && rest[end] <= '9' {
		end++
	}
	usec, _ = strconv.ParseInt(rest[1:end], 10, 64)
	return sec, usec
}

// maxKeyLen is the longest key kept as it is. A name in cur/ is the key
// plus ":2," and the flag letters (at most 6 system flags and 26 keyword
// letters), and must fit in NAME_MAX (nameMax): a longer key could not
// take its flags, nor even move from new/ to cur/ (ENAMETOOLONG).
const maxKeyLen = nameMax - len(":2,") - 6 - 26

// oddName reports whether a file's name cannot be kept as it is: a key too
// long to take flags, or an info with a second colon (no Maildir writer
// makes one; flags could not be read from it reliably).
func oddName(key, info string) bool {
	return len(key) > maxKeyLen || strings.Count(info, ":") > 1
}

// saneName gives a file with an odd name a fresh unique key, with its
// size on disk, and keeps its flags when its info is a plain ":2,FLAGS".
// The content is never touched; the rename is logged, which happens once
// per file since the new name is not odd.
func (st *folderState) saneName(sub, name, key, info string) (string, string) {
	size := int64(-1)
	if fi, err := os.Lstat(filepath.Join(st.dir, sub, name)); err == nil {
		size = fi.Size()
	}
	nk := newBase(time.Now())
	if size >= 0 {
		nk = sizedKey(nk, size, -1)
	}
	ni := info
	if strings.Count(info, ":") > 1 || !strings.HasPrefix(info, ":2,") {
		ni = ":2,"
	}
	logger().Warn("maildir: file renamed: its name was too long or had more than one colon",
		"dir", st.dir, "old", sub+"/"+name, "new", "cur/"+nk+ni)
	return nk, ni
}

// renameKey gives a new unique key that keeps the sizes of the old one.
func renameKey(key string) string {
	if s, ok := sizeFromKey(key); ok {
		w, ok := wireSizeFromKey(key)
		if !ok {
			w = -1
		}
		return newKey(s, w)
	}
	return newBase(time.Now())
}

// mergeKeywords computes a message's keywords after its file got info: the
// keywords that have a letter follow the file name, the others are kept
// from old (they live only in the index).
func mergeKeywords(old []string, info string, kwmap []string) []string {
	_, letterKW := flagsFromInfo(info, kwmap)
	var out []string
	out = append(out, letterKW...)
	for _, k := range old {
		if keywordIndex(kwmap, k) < 0 {
			out = append(out, k)
		}
	}
	return sortedUnion(out, nil)
}

func sortedUnion(a, b []string) []string {
	out := make([]string, 0, len(a)+len(b))
	out = append(out, a...)
	out = append(out, b...)
	if len(out) == 0 {
		return nil
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// tmpMaxAge: qmail's maildir(5) rule: a tmp/ file untouched for 36 hours
// is a delivery that died.
const tmpMaxAge = 36 * time.Hour

// cleanTmp removes dead tmp/ files, at most once an hour per folder and
// process. Age is the file's ctime, not its mtime: Append sets the mtime of
// its tmp file to the message's internal date, which may be years ago, while
// the file is very much alive.
func (st *folderState) cleanTmp(now time.Time) {
	if now.Sub(st.lastTmpClean) < time.Hour {
		return
	}
	st.lastTmpClean = now
	dir := filepath.Join(st.dir, "tmp")
	names, err := listMessages(dir)
	if err != nil {
		logger().Debug("maildir: clean tmp", "dir", dir, "err", err)
		return
	}
	for _, n := range names {
		var s unix.Stat_t
		p := filepath.Join(dir, n)
		if unix.Lstat(p, &s) != nil || now.Sub(time.Unix(0, s.Ctim.Nano())) <= tmpMaxAge {
			continue
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			logger().Debug("maildir: clean tmp", "path", p, "err", err)
		}
	}
}
