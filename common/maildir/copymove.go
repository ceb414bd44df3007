package maildir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// source is a message picked from the source folder's snapshot.
type source struct {
	uid   uint32
	key   string
	info  string // as in the index at pick time; may be stale
	flags []string
	size  int64
	date  int64
	// emailID goes with the message (RFC 8474 5.1).
	emailID string
}

// pick returns the messages of uids that exist, in ascending UID order
// (RFC 4315 COPYUID pairs the sets in this order).
func (f *Folder) pick(uids []uint32) ([]source, error) {
	snap, err := f.Sync()
	if err != nil {
		return nil, err
	}
	sorted := append([]uint32(nil), uids...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	var out []source
	for i, uid := range sorted {
		if i > 0 && sorted[i-1] == uid {
			continue
		}
		if j, ok := snap.ByUID(uid); ok {
			m := snap.Messages[j]
			out = append(out, source{uid: uid, key: m.Key, flags: m.Flags, size: m.Size,
				date: m.InternalDate.UnixNano(), emailID: m.EmailID()})
		}
	}
	f.st.mu.Lock()
	for i := range out {
		if e, ok := f.st.find(out[i].uid); ok && e.key == out[i].key {
			out[i].info = e.info
		}
	}
	f.st.mu.Unlock()
	return out, nil
}

// path finds the current file of key in cur/ (tried first as key+info),
// re-reading the directory if that name is stale.
func (st *folderState) path(key, info string) (string, error) {
	cur := filepath.Join(st.dir, "cur")
	if _, err := os.Lstat(filepath.Join(cur, key+info)); err == nil {
		return filepath.Join(cur, key+info), nil
	}
	names, err := listMessages(cur)
	if err != nil {
		return "", err
	}
	for _, n := range names {
		if k, _ := splitName(n); k == key {
			return filepath.Join(cur, n), nil
		}
	}
	return "", ErrNoMessage
}

// Copy copies messages into dst with their flags and internal dates, by hard
// link when possible (a Maildir file never changes once delivered), and
// returns the UIDs copied and their new UIDs, pairwise (RFC 4315 COPYUID).
// Missing UIDs are skipped.
func (f *Folder) Copy(uids []uint32, dst *Folder) (srcUIDs, dstUIDs []uint32, err error) {
	return f.transfer(uids, dst, false)
}

// Move moves messages into dst (RFC 6851) by renaming their files, keeping
// flags and internal dates. The source folder sees them gone at once.
func (f *Folder) Move(uids []uint32, dst *Folder) (srcUIDs, dstUIDs []uint32, err error) {
	if f.st == dst.st {
		// Moving within a folder is a copy and an expunge.
		src, dstU, err := f.transfer(uids, dst, false)
		if err != nil {
			return nil, nil, err
		}
		return src, dstU, f.Expunge(src)
	}
	return f.transfer(uids, dst, true)
}

// transfer implements Copy and Move. Only one folder lock is held at a time
// (first the source's for the snapshot, then the destination's), so two
// transfers in opposite directions cannot deadlock. After a crash a
// message is in the source, the destination, or (for a copy) both; never
// lost: a moved file without a UID gets one at the destination's next sync.
func (f *Folder) transfer(uids []uint32, dst *Folder, move bool) (srcUIDs, dstUIDs []uint32, err error) {
	msgs, err := f.pick(uids)
	if err != nil || len(msgs) == 0 {
		return nil, nil, err
	}
	dt := dst.st
	dt.mu.Lock()
	release, err := dt.lockIndex()
	if err != nil {
		dt.mu.Unlock()
		return nil, nil, err
	}
	var all []string
	for _, m := range msgs {
		all = append(all, m.flags...)
	}
	kw, _, err := dt.letters(all)
	if err != nil {
		release()
		dt.mu.Unlock()
		return nil, nil, err
	}
	h := &syncHints{kw: map[string][]string{}, emailIDs: map[string]string{}}
	var moved []source
	dstCur := filepath.Join(dt.dir, "cur")
	for _, m := range msgs {
		from, err := f.st.path(m.key, m.info)
		if errors.Is(err, ErrNoMessage) {
			continue // expunged meanwhile
		}
		if err != nil {
			release()
			dt.mu.Unlock()
			return nil, nil, err
		}
		info := buildInfo(m.flags, kw)
		key, err := placeFile(from, dt.dir, m, info, move)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			release()
			dt.mu.Unlock()
			return nil, nil, err
		}
		h.order = append(h.order, key)
		h.emailIDs[key] = m.emailID
		for _, k := range m.flags {
			if !strings.HasPrefix(k, `\`) && k != "$Forwarded" && keywordIndex(kw, k) < 0 {
				h.kw[key] = append(h.kw[key], k)
			}
		}
		moved = append(moved, m)
	}
	if err := syncDir(dstCur); err != nil {
		release()
		dt.mu.Unlock()
		return nil, nil, err
	}
	if err := dt.syncLocked(h); err != nil {
		release()
		dt.mu.Unlock()
		return nil, nil, fmt.Errorf("sync %q: %w", dt.dir, err)
	}
	uidOf := make(map[string]uint32, len(h.order))
	for _, e := range dt.idx.entries {
		uidOf[e.key] = e.uid
	}
	for i, key := range h.order {
		if u, ok := uidOf[key]; ok {
			srcUIDs = append(srcUIDs, moved[i].uid)
			dstUIDs = append(dstUIDs, u)
		}
	}
	release()
	dt.mu.Unlock()
	if move && len(moved) > 0 {
		if err := syncDir(filepath.Join(f.st.dir, "cur")); err != nil {
			return nil, nil, err
		}
		if _, err := f.Sync(); err != nil {
			return nil, nil, err
		}
	}
	return srcUIDs, dstUIDs, nil
}

// placeFile puts the message file from into dstDir/cur under a key and info:
// for a move, rename (keeping the key unless taken); for a copy, a hard link
// under a new key. Across file systems, or where links are refused, the
// content is copied through dstDir/tmp with fsync. It returns the key used.
func placeFile(from, dstDir string, m source, info string, move bool) (string, error) {
	cur := filepath.Join(dstDir, "cur")
	if move {
		key := m.key
		for attempt := 0; attempt < 2; attempt++ {
			err := renameNoReplace(from, filepath.Join(cur, key+info))
			if err == nil {
				return key, nil
			}
			if errors.Is(err, os.ErrExist) {
				key = renameKey(m.key)
				continue
			}
			if !errors.Is(err, unix.EXDEV) {
				return "", err
			}
			break
		}
		key, err := copyFile(from, dstDir, m, info)
		if err != nil {
			return "", err
		}
		if err := os.Remove(from); err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("remove moved %q: %w", from, err)
		}
		return key, nil
	}
	wire, ok := wireSizeFromKey(m.key)
	if !ok {
		wire = -1
	}
	key := newKey(m.size, wire)
	err := os.Link(from, filepath.Join(cur, key+info))
	if err == nil {
		return key, nil
	}
	if errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	return copyFile(from, dstDir, m, info)
}

func copyFile(from, dstDir string, m source, info string) (string, error) {
	in, err := openNoFollow(from)
	if err != nil {
		return "", err
	}
	defer in.Close()
	tmp, size, wire, err := tmpWrite(dstDir, in, timeFromNanos(m.date))
	if err != nil {
		return "", err
	}
	key := sizedKey(filepath.Base(tmp), size, wire)
	if err := renameNoReplace(tmp, filepath.Join(dstDir, "cur", key+info)); err != nil {
		os.Remove(tmp)
		return "", err
	}
	return key, nil
}
