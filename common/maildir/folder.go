package maildir

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"time"
)

// Folder is one Maildir folder of a Mailbox. All methods are safe for
// concurrent use; Folders of the same directory share one state.
type Folder struct {
	name string
	st   *folderState
}

// Name returns the folder's UTF-8 name ("INBOX" for the root).
func (f *Folder) Name() string { return f.name }

// Dir returns the folder's Maildir directory.
func (f *Folder) Dir() string { return f.st.dir }

// Sync picks up every change on disk, assigns UIDs to new messages under the
// cross-process index lock, and returns the current snapshot. When nothing
// changed since the last scan (trusted) it lists no directory and takes no
// lock.
func (f *Folder) Sync() (*Snapshot, error) {
	st := f.st
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.trusted() {
		return st.snap, nil
	}
	if err := st.lockedSync(nil); err != nil {
		return nil, err
	}
	return st.snap, nil
}

// Poll is Sync for a session that has the folder open and asks what
// changed (an IMAP NOOP, IDLE, or the update after a command). On shared
// storage it moves at most maxPollMoves files from new/ to cur/ per call,
// the oldest first and none while it holds the index lock, so that a poll
// answers in bounded time while hundreds of messages arrive, each move
// being a round trip to the servers; the others get their UIDs at the
// next poll, which scans again. Sync (SELECT, POP3) moves them all. On a
// local file system Poll is Sync.
func (f *Folder) Poll() (*Snapshot, error) {
	st := f.st
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.trusted() {
		return st.snap, nil
	}
	if !st.shared || st.idx == nil {
		if err := st.lockedSync(nil); err != nil {
			return nil, err
		}
		return st.snap, nil
	}
	before := statOf(filepath.Join(st.dir, "new"))
	left, err := st.moveNew(maxPollMoves)
	if err != nil {
		logger().Debug("maildir: move new/ to cur/", "dir", st.dir, "err", err)
	}
	release, err := st.lockIndex()
	if err != nil {
		return nil, err
	}
	defer release()
	if err := st.syncStale(&syncHints{poll: true}); err != nil {
		return nil, fmt.Errorf("sync %q: %w", st.dir, err)
	}
	// new/ as it was before this poll's moves: whatever it still holds
	// makes the next Sync or Poll scan.
	st.seenNew = before
	st.dirty = st.dirty || left
	return st.snap, nil
}

// maxPollMoves bounds the files a Poll moves from new/ to cur/ on shared
// storage.
const maxPollMoves = 16

// lockedSync takes the index lock around syncLocked; st.mu is held. It
// moves new/ to cur/ first, without the lock (moveNew): on a network file
// system those renames and their directory fsyncs are the slow part of a
// scan, and sessions on other hosts need not wait for them.
func (st *folderState) lockedSync(h *syncHints) error {
	st.premove()
	release, err := st.lockIndex()
	if err != nil {
		return err
	}
	defer release()
	if err := st.syncStale(h); err != nil {
		return fmt.Errorf("sync %q: %w", st.dir, err)
	}
	return nil
}

// premove is moveNew before the index lock is taken. A failure is only
// logged: the sync under the lock moves what is left and reports it.
func (st *folderState) premove() {
	if _, err := st.moveNew(0); err != nil {
		logger().Debug("maildir: move new/ to cur/", "dir", st.dir, "err", err)
	}
}

// syncStale is syncLocked, repeated when it met ESTALE: on shared storage
// a file or directory looked up by path can be replaced by another host
// before it is read, and looking it up again finds the current one (every
// step of the scan opens by path, so nothing stale is kept). st.mu and the
// index lock are held.
func (st *folderState) syncStale(h *syncHints) error {
	var err error
	for try := 0; try < staleRetries; try++ {
		if err = st.syncLocked(h); err == nil || !isStale(err) {
			return err
		}
		logger().Info("maildir: stale file handle, scanning again", "dir", st.dir, "err", err)
	}
	return err
}

// find returns the index entry of uid; st.mu is held.
func (st *folderState) find(uid uint32) (*entry, bool) {
	if st.idx == nil {
		return nil, false
	}
	es := st.idx.entries
	i := sort.Search(len(es), func(i int) bool { return es[i].uid >= uid })
	if i < len(es) && es[i].uid == uid {
		return &es[i], true
	}
	return nil, false
}

// Open opens the message with uid for reading. If its file was renamed since
// the last sync (a flag change by another program) the folder is synced and
// the open retried; ErrNoMessage if the message is gone.
//
// The name is looked up under st.mu but opened outside it, so a flag change
// or an expunge by another session of this process can come in between:
// the index already shows it, so it is looked at again before a scan.
func (f *Folder) Open(uid uint32) (*os.File, error) {
	st := f.st
	var tried string
	synced := false
	for attempt := 0; attempt < 4; attempt++ {
		st.mu.Lock()
		var name string
		if e, ok := st.find(uid); ok {
			name = e.key + e.info
		}
		known := st.idx != nil
		st.mu.Unlock()
		if name != "" && name != tried {
			p := filepath.Join(st.dir, "cur", name)
			fh, err := openNoFollow(p)
			if err == nil {
				if fi, err := fh.Stat(); err == nil && fi.Mode().IsRegular() {
					return fh, nil
				}
				fh.Close()
				return nil, fmt.Errorf("open uid %d: %w", uid, ErrNoMessage)
			}
			// ESTALE: renamed or removed on another host since
			// looked up; as for a rename here, sync and retry.
			if !errors.Is(err, os.ErrNotExist) && !isStale(err) {
				return nil, fmt.Errorf("open message %q: %w", p, err)
			}
			tried = name
			continue
		}
		if (name == "" && known) || synced {
			// Expunged: the index no longer has it, and a scan
			// would not bring the UID back.
			break
		}
		st.mu.Lock()
		err := st.lockedSync(nil)
		st.mu.Unlock()
		if err != nil {
			return nil, err
		}
		synced, tried = true, ""
	}
	return nil, fmt.Errorf("open uid %d in %q: %w", uid, st.dir, ErrNoMessage)
}

// Append durably adds a message with flags and an internal date (zero: now)
// and returns its UID, assigned at once (RFC 4315 APPENDUID). It is Stage
// and Publish of one message (stage.go).
func (f *Folder) Append(r io.Reader, flags []string, date time.Time) (uint32, error) {
	m, err := f.Stage(r, flags, date)
	if err != nil {
		return 0, err
	}
	uids, err := f.Publish([]*Staged{m})
	if err != nil {
		return 0, err
	}
	return uids[0], nil
}

// appendBySync gives the published messages their UIDs through a full
// sync (the rare paths); st.mu and the index lock are held.
func (st *folderState) appendBySync(msgs []*Staged) ([]uint32, error) {
	h := &syncHints{}
	for _, m := range msgs {
		h.order = append(h.order, m.key)
	}
	if err := st.syncLocked(h); err != nil {
		return nil, fmt.Errorf("sync %q after append: %w", st.dir, err)
	}
	uids := make([]uint32, len(msgs))
	for i, m := range msgs {
		for j := len(st.idx.entries) - 1; j >= 0; j-- {
			if st.idx.entries[j].key == m.key {
				uids[i] = st.idx.entries[j].uid
				break
			}
		}
		if uids[i] == 0 {
			return nil, fmt.Errorf("append to %q: message vanished before it got a UID: %w", st.dir, ErrNoMessage)
		}
	}
	return uids, nil
}

// letters makes sure the keywords among flags have a letter in
// dovecot-keywords where one is free (writing the file), and returns the
// letter table and the keywords that stay index-only. The index lock is held.
func (st *folderState) letters(flags []string) (kw []string, extra []string, err error) {
	if kw, err = readKeywords(st.dir); err != nil {
		return nil, nil, fmt.Errorf("read keywords: %w", err)
	}
	_, want := splitFlags(flags)
	kw, changed := addKeywords(kw, want)
	if changed {
		if err := writeFileAtomic(st.dir, dovecotKeywords, marshalKeywords(kw)); err != nil {
			return nil, nil, fmt.Errorf("write keywords: %w", err)
		}
	}
	st.kw = kw
	for _, k := range want {
		if k != "$Forwarded" && keywordIndex(kw, k) < 0 {
			extra = append(extra, k)
		}
	}
	return kw, extra, nil
}

// FlagOp says how SetFlags combines the given flags with a message's flags.
type FlagOp int

const (
	FlagsSet    FlagOp = iota // replace (STORE FLAGS)
	FlagsAdd                  // add (STORE +FLAGS)
	FlagsRemove               // remove (STORE -FLAGS)
)

// SetFlags changes the flags of the messages with the given UIDs by renaming
// their files and bumps the modseq of each message that changed. With
// unchangedSince > 0 (RFC 7162 3.1.3 UNCHANGEDSINCE) a message whose modseq
// is greater is left alone and its UID returned in failed. UIDs that do not
// exist are ignored. changed holds the messages after the change.
func (f *Folder) SetFlags(uids []uint32, op FlagOp, flags []string, unchangedSince uint64) (changed []Message, failed []uint32, err error) {
	nf, err := normaliseFlags(flags)
	if err != nil {
		return nil, nil, err
	}
	st := f.st
	st.mu.Lock()
	defer st.mu.Unlock()
	release, err := st.lockFresh()
	if err != nil {
		return nil, nil, err
	}
	defer release()
	kw := st.kw
	if op != FlagsRemove {
		if kw, _, err = st.letters(nf); err != nil {
			return nil, nil, err
		}
	}
	x := st.idx
	curDir := filepath.Join(st.dir, "cur")
	// Plan every change first, so that the events of all the renames are
	// registered at once (events.go).
	type plan struct {
		e           *entry
		info        string
		kw          []string
		indexOnlyKW bool
	}
	var plans []plan
	var oc ownChange
	seen := make(map[uint32]bool, len(uids))
	for _, uid := range uids {
		if seen[uid] {
			continue
		}
		seen[uid] = true
		e, ok := st.find(uid)
		if !ok {
			continue
		}
		// RFC 7162 3.1.3: with UNCHANGEDSINCE, a message whose modseq is
		// greater fails the condition and is not changed.
		if unchangedSince > 0 && e.modseq > unchangedSince {
			failed = append(failed, uid)
			continue
		}
		old := messageFlags(e)
		var next []string
		switch op {
		case FlagsSet:
			next = nf
		case FlagsAdd:
			next = sortedUnion(old, nf)
		case FlagsRemove:
			next = removeFlags(old, nf)
		}
		if sameFlags(old, next) {
			continue
		}
		_, keywords := splitFlags(next)
		var ikw []string
		for _, k := range keywords {
			if k != "$Forwarded" {
				ikw = append(ikw, k)
			}
		}
		p := plan{e: e, info: buildInfo(next, kw), kw: sortedUnion(ikw, nil)}
		p.indexOnlyKW = !sameFlags(indexOnly(e.kw, kw), indexOnly(p.kw, kw))
		if p.info != e.info {
			oc.rename(subCur, e.key+e.info, subCur, e.key+p.info)
		}
		plans = append(plans, p)
	}
	if len(plans) == 0 {
		return nil, failed, nil
	}
	st.expect(oc)
	var b logBatch
	touched := make(map[uint32]bool, len(plans))
	renamed := false
	for _, p := range plans {
		e := p.e
		if p.info != e.info {
			err := os.Rename(filepath.Join(curDir, e.key+e.info), filepath.Join(curDir, e.key+p.info))
			if err != nil {
				var one ownChange
				one.rename(subCur, e.key+e.info, subCur, e.key+p.info)
				st.unexpect(one)
			}
			if errors.Is(err, os.ErrNotExist) {
				continue // expunged or renamed by another program meanwhile
			}
			if err != nil {
				st.idx = nil
				return nil, nil, fmt.Errorf("set flags of %q: %w", e.key, err)
			}
			renamed = true
		}
		e.info = p.info
		e.kw = p.kw
		x.highestModSeq++
		e.modseq = x.highestModSeq
		b.entry(e)
		// Keywords without a letter live only in the index: their
		// change must survive a crash like the renames do.
		b.durable = b.durable || p.indexOnlyKW
		touched[e.uid] = true
	}
	if len(touched) == 0 {
		return nil, failed, nil
	}
	// The new names are the flags' source of truth: durable before OK.
	// The log line only adds the modseq (see appendLog for when it is
	// fsynced, and the package doc for the crash analysis).
	if renamed {
		if err := syncDir(curDir); err != nil {
			st.idx = nil
			return nil, nil, err
		}
	}
	if err := st.appendLog(&b); err != nil {
		st.idx = nil
		return nil, nil, err
	}
	st.updateSnapshot(touched)
	for _, uid := range uids {
		if !touched[uid] {
			continue
		}
		delete(touched, uid)
		if i, ok := st.snap.ByUID(uid); ok {
			changed = append(changed, st.snap.Messages[i])
		}
	}
	return changed, failed, nil
}

// indexOnly returns the keywords of kws that have no letter in the letter
// table kw (they are kept in the index only).
func indexOnly(kws, kw []string) []string {
	var out []string
	for _, k := range kws {
		if i := keywordIndex(kw, k); i < 0 || i >= maxKeywordLetters {
			out = append(out, k)
		}
	}
	return out
}

func removeFlags(old, rm []string) []string {
	var out []string
	for _, f := range old {
		drop := false
		for _, r := range rm {
			if f == r {
				drop = true
			}
		}
		if !drop {
			out = append(out, f)
		}
	}
	return out
}

// Expunge removes the messages with the given UIDs: their files are deleted
// (fsync of cur/), then the index drops them.
func (f *Folder) Expunge(uids []uint32) error {
	return f.expunge(0, uids, nil)
}

// ExpungeIn is Expunge of UIDs read from a snapshot with UIDVALIDITY
// validity. UIDs are mapped to files under the index lock, after the index
// is read again; if it was recreated meanwhile (lost, or read back empty
// from a stale cache of shared storage) its new UIDs name other messages,
// and removing by them would delete mail the client never saw. Then
// nothing is removed and ErrUIDValidity is returned (RFC 9051 2.3.1.1: a
// UID means nothing under another UIDVALIDITY).
func (f *Folder) ExpungeIn(validity uint32, uids []uint32) error {
	return f.expunge(validity, uids, nil)
}

// ExpungeKeys is ExpungeIn where each UID uids[i] is removed only while it
// still names the file of keys[i], the message the caller read: a UID
// that names another file now (an index read back from disk that differs
// from what the caller was told) is left alone, so that a removal can
// never delete mail the client did not ask to remove.
func (f *Folder) ExpungeKeys(validity uint32, uids []uint32, keys []string) error {
	if len(keys) != len(uids) {
		return fmt.Errorf("expunge %d messages of %q: %d keys", len(uids), f.st.dir, len(keys))
	}
	want := make(map[uint32]string, len(uids))
	for i, uid := range uids {
		want[uid] = keys[i]
	}
	return f.expunge(validity, uids, want)
}

// expunge is Expunge; a validity other than 0 must be the index's, and
// with keys a UID is removed only while its entry has keys[uid].
func (f *Folder) expunge(validity uint32, uids []uint32, keys map[uint32]string) error {
	st := f.st
	st.mu.Lock()
	defer st.mu.Unlock()
	release, err := st.lockFresh()
	if err != nil {
		return err
	}
	defer release()
	if validity != 0 && st.idx.uidValidity != validity {
		return fmt.Errorf("expunge %d messages of %q: %w", len(uids), st.dir, ErrUIDValidity)
	}
	curDir := filepath.Join(st.dir, "cur")
	drop := make(map[uint32]bool, len(uids))
	var oc ownChange
	mine := func(uid uint32, e *entry) bool { return keys == nil || keys[uid] == e.key }
	for _, uid := range uids {
		if e, ok := st.find(uid); ok && mine(uid, e) {
			oc.remove(subCur, e.key+e.info)
		}
	}
	st.expect(oc)
	var dropped []uint32
	for _, uid := range uids {
		e, ok := st.find(uid)
		if !ok || drop[uid] || !mine(uid, e) {
			continue
		}
		p := filepath.Join(curDir, e.key+e.info)
		if err := os.Remove(p); err != nil {
			var one ownChange
			one.remove(subCur, e.key+e.info)
			st.unexpect(one)
			if !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("expunge %q: %w", p, err)
			}
		}
		drop[uid] = true
		dropped = append(dropped, uid)
	}
	if len(drop) == 0 {
		return nil
	}
	// The removals are durable before OK; the log line is not fsynced: if
	// it is lost, the next sync finds the files gone and expunges again.
	if err := syncDir(curDir); err != nil {
		st.idx = nil
		return err
	}
	x := st.idx
	x.entries = slices.DeleteFunc(x.entries, func(e entry) bool { return drop[e.uid] })
	x.highestModSeq++
	var b logBatch
	b.expunge(x.highestModSeq, dropped)
	x.noteExpunge(x.highestModSeq, dropped)
	if err := st.appendLog(&b); err != nil {
		st.idx = nil
		return err
	}
	st.updateSnapshot(nil)
	return nil
}
