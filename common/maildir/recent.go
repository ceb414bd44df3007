package maildir

import (
	"slices"
	"strconv"
)

// ClaimRecent makes this caller the session that sees the folder's new
// messages as \Recent. RFC 3501 2.3.2: a message is recent in exactly one
// session, the first to be told about it. Under the index lock (so two
// processes never claim the same UID) it brings the index up to date
// (freshForClaim: once the folder was synced, only the index and its log
// are read, no directory is listed, so that a claim is quick while mail
// arrives; a message gets its UID from a Sync) and takes every
// message from the folder's first-recent UID up and moves that mark to
// UIDNEXT. It returns the snapshot after the claim and the UIDs claimed,
// ascending; a read-write SELECT calls it, and so does every later sync of
// that session that finds new messages. A read-only session (EXAMINE)
// claims nothing: it shows Snapshot.FirstRecent and up as recent instead.
//
// The mark is one unsynced log line ("F", changelog.go): a machine crash
// may lose it, and then the messages are recent once more to the next
// session, which is harmless; a UID is never claimed twice while the
// machine runs.
func (f *Folder) ClaimRecent() (*Snapshot, []uint32, error) {
	st := f.st
	st.mu.Lock()
	defer st.mu.Unlock()
	release, err := st.lockIndex()
	if err != nil {
		return nil, nil, err
	}
	defer release()
	if err := st.freshForClaim(); err != nil {
		return nil, nil, err
	}
	x := st.idx
	if x.firstRecent >= x.uidNext {
		return st.snap, nil, nil
	}
	var uids []uint32
	i, _ := st.snap.ByUID(x.firstRecent)
	for _, m := range st.snap.Messages[i:] {
		uids = append(uids, m.UID)
	}
	x.firstRecent = x.uidNext
	var b logBatch
	b.line(strconv.AppendUint([]byte("F "), uint64(x.firstRecent), 10))
	if err := st.appendLog(&b); err != nil {
		st.idx = nil
		return nil, nil, err
	}
	if old := st.snap; old != nil && old.UIDValidity == x.uidValidity && old.UIDNext == x.uidNext &&
		old.HighestModSeq == x.highestModSeq && len(old.Messages) == len(x.entries) &&
		old.ExpungeFloor == x.expungeFloor && slices.Equal(old.Keywords, st.kw) {
		// Only the recent mark moved: the messages are shared with
		// the snapshot before (snapshots are never changed), not
		// copied one by one.
		s := *old
		s.FirstRecent = x.recentMark()
		st.snap = &s
	} else {
		st.updateSnapshot(nil)
	}
	return st.snap, uids, nil
}
