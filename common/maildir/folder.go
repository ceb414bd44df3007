package maildir

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
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
// cross-process index lock, and returns the current snapshot. When new/,
// cur/ and the index are unchanged since the last scan it only stats them.
func (f *Folder) Sync() (*Snapshot, error) {
	st := f.st
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.unchanged() {
		return st.snap, nil
	}
	if err := st.lockedSync(nil); err != nil {
		return nil, err
	}
	return st.snap, nil
}

// lockedSync takes the index lock around syncLocked; st.mu is held.
func (st *folderState) lockedSync(h *syncHints) error {
	release, err := st.lockIndex()
	if err != nil {
		return err
	}
	defer release()
	if err := st.syncLocked(h); err != nil {
		return fmt.Errorf("sync %q: %w", st.dir, err)
	}
	return nil
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
func (f *Folder) Open(uid uint32) (*os.File, error) {
	st := f.st
	for attempt := 0; attempt < 2; attempt++ {
		st.mu.Lock()
		var name string
		if e, ok := st.find(uid); ok {
			name = e.key + e.info
		}
		st.mu.Unlock()
		if name != "" {
			p := filepath.Join(st.dir, "cur", name)
			fh, err := openNoFollow(p)
			if err == nil {
				if fi, err := fh.Stat(); err == nil && fi.Mode().IsRegular() {
					return fh, nil
				}
				fh.Close()
				return nil, fmt.Errorf("open uid %d: %w", uid, ErrNoMessage)
			}
			if !errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("open message %q: %w", p, err)
			}
		}
		if attempt == 0 {
			st.mu.Lock()
			err := st.lockedSync(nil)
			st.mu.Unlock()
			if err != nil {
				return nil, err
			}
		}
	}
	return nil, fmt.Errorf("open uid %d in %q: %w", uid, st.dir, ErrNoMessage)
}

// Append durably adds a message with flags and an internal date (zero: now)
// and returns its UID, assigned at once (RFC 4315 APPENDUID).
func (f *Folder) Append(r io.Reader, flags []string, date time.Time) (uint32, error) {
	nf, err := normaliseFlags(flags)
	if err != nil {
		return 0, err
	}
	st := f.st
	tmp, size, wire, err := tmpWrite(st.dir, r, date)
	if err != nil {
		return 0, err
	}
	defer os.Remove(tmp) // a no-op once moved
	key := sizedKey(filepath.Base(tmp), size, wire)

	st.mu.Lock()
	defer st.mu.Unlock()
	release, err := st.lockIndex()
	if err != nil {
		return 0, err
	}
	defer release()
	kw, extra, err := st.letters(nf)
	if err != nil {
		return 0, err
	}
	curDir := filepath.Join(st.dir, "cur")
	if err := renameNoReplace(tmp, filepath.Join(curDir, key+buildInfo(nf, kw))); err != nil {
		return 0, fmt.Errorf("append into %q: %w", curDir, err)
	}
	if err := syncDir(curDir); err != nil {
		return 0, err
	}
	h := &syncHints{order: []string{key}, kw: map[string][]string{key: extra}}
	if err := st.syncLocked(h); err != nil {
		return 0, fmt.Errorf("sync %q after append: %w", st.dir, err)
	}
	for i := len(st.idx.entries) - 1; i >= 0; i-- {
		if st.idx.entries[i].key == key {
			return st.idx.entries[i].uid, nil
		}
	}
	return 0, fmt.Errorf("append to %q: message vanished before it got a UID: %w", st.dir, ErrNoMessage)
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
	release, err := st.lockIndex()
	if err != nil {
		return nil, nil, err
	}
	defer release()
	if err := st.syncLocked(nil); err != nil {
		return nil, nil, fmt.Errorf("sync %q: %w", st.dir, err)
	}
	kw := st.kw
	if op != FlagsRemove {
		if kw, _, err = st.letters(nf); err != nil {
			return nil, nil, err
		}
	}
	x := st.idx
	curDir := filepath.Join(st.dir, "cur")
	var done []uint32
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
		info := buildInfo(next, kw)
		if info != e.info {
			err := os.Rename(filepath.Join(curDir, e.key+e.info), filepath.Join(curDir, e.key+info))
			if errors.Is(err, os.ErrNotExist) {
				continue // expunged or renamed by another program meanwhile
			}
			if err != nil {
				return nil, nil, fmt.Errorf("set flags of %q: %w", e.key, err)
			}
		}
		_, keywords := splitFlags(next)
		var ikw []string
		for _, k := range keywords {
			if k != "$Forwarded" {
				ikw = append(ikw, k)
			}
		}
		e.info = info
		e.kw = sortedUnion(ikw, nil)
		x.highestModSeq++
		e.modseq = x.highestModSeq
		done = append(done, uid)
	}
	if len(done) == 0 {
		return nil, failed, nil
	}
	if err := syncDir(curDir); err != nil {
		st.idx = nil
		return nil, nil, err
	}
	if err := st.commit(); err != nil {
		return nil, nil, err
	}
	for _, uid := range done {
		if i, ok := st.snap.ByUID(uid); ok {
			changed = append(changed, st.snap.Messages[i])
		}
	}
	return changed, failed, nil
}

// commit writes the in-memory index and publishes a snapshot; st.mu and the
// index lock are held. The files were changed first, so a crash before the
// write is repaired by the next sync.
func (st *folderState) commit() error {
	st.idx.gen++
	if err := writeFileAtomic(st.dir, indexName, st.idx.marshal()); err != nil {
		st.idx = nil
		return fmt.Errorf("write index: %w", err)
	}
	st.idxStat = statOf(filepath.Join(st.dir, indexName))
	st.snap = st.buildSnapshot()
	return nil
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
	st := f.st
	st.mu.Lock()
	defer st.mu.Unlock()
	release, err := st.lockIndex()
	if err != nil {
		return err
	}
	defer release()
	if err := st.syncLocked(nil); err != nil {
		return fmt.Errorf("sync %q: %w", st.dir, err)
	}
	curDir := filepath.Join(st.dir, "cur")
	drop := make(map[uint32]bool, len(uids))
	for _, uid := range uids {
		e, ok := st.find(uid)
		if !ok {
			continue
		}
		p := filepath.Join(curDir, e.key+e.info)
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("expunge %q: %w", p, err)
		}
		drop[uid] = true
	}
	if len(drop) == 0 {
		return nil
	}
	if err := syncDir(curDir); err != nil {
		return err
	}
	x := st.idx
	kept := x.entries[:0]
	for _, e := range x.entries {
		if !drop[e.uid] {
			kept = append(kept, e)
		}
	}
	clear(x.entries[len(kept):])
	x.entries = kept
	x.highestModSeq++
	return st.commit()
}
