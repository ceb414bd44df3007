package main

import (
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/emersion/go-imap/v2"

	"tern/common/maildir"
)

// errMailboxGone ends a session whose selected mailbox was deleted or
// recreated by someone else: RFC 3501 2.3.1.1 forbids reusing UIDs under
// the same UIDVALIDITY, and there is no way to tell the client that its
// sequence numbers mean nothing any more except to disconnect.
var errMailboxGone = errors.New("imapd: selected mailbox was deleted or recreated")

// view is the selected mailbox as one client knows it. The store keeps the
// folder's state, shared by every session; a session keeps only what its
// client was told: the UID of each sequence number, and how far it has
// been told about flag changes. Everything the client has not yet been told
// is the difference between this and the store's latest snapshot.
type view struct {
	name        string
	folder      *maildir.Folder
	readOnly    bool
	uidValidity uint32

	// uids maps sequence numbers to UIDs: message n is uids[n-1]. It keeps
	// the UIDs of messages expunged by others until the client may be told
	// (RFC 3501 7.4.1: no EXPUNGE during FETCH, STORE or SEARCH).
	uids []uint32
	// snap is the latest snapshot seen; unchanged snapshots are shared by
	// the store, so comparing pointers skips all work when nothing changed.
	snap *maildir.Snapshot
	// reported is the snapshot the last update told the client about.
	// It differs from snap after a command that synced (FETCH, STORE,
	// SEARCH...): what that sync brought in (another session's new
	// keyword, flag changes, new mail) is still to be told.
	reported *maildir.Snapshot
	// modSeq is the highest modification sequence the client has been told.
	modSeq uint64
	// told holds flag changes already sent in this session's own command
	// responses (STORE, FETCH setting \Seen), so the next update does not
	// repeat them.
	told map[uint32]uint64
	// searchRes is the result saved by SEARCH RETURN (SAVE), RFC 5182.
	searchRes []uint32
	// contexts are the updating searches of RFC 5267 4 (context.go).
	contexts []*searchContext
	// beforeExpunge tells the contexts of the messages at these indexes
	// of uids before their EXPUNGEs go out.
	beforeExpunge func(gone []int)
	// releaseUIDs gives back uids while it is shared; nil once the view
	// has its own copy.
	releaseUIDs func()
	// recent are the UIDs this session claimed as \Recent (recent.go),
	// ascending; rev2 says the client enabled IMAP4rev2, which has no
	// \Recent (RFC 9051 2.3.2).
	recent []uint32
	rev2   bool
	// keywords are the keywords the client has been told of in FLAGS
	// (RFC 3501 7.2.6); a new one in use makes update send FLAGS again.
	keywords map[string]bool
	// flagLists are the store's shared flag lists whose keywords were
	// already looked at (flags.go: announceSnapshotFlags).
	flagLists map[flagListID]bool
	// fresh says the command being run has just synced, so the poll
	// that follows it (RFC 3501 7: the unilateral responses after a
	// command) can use that snapshot instead of syncing again. Only the
	// commands the layer polls after (FETCH, STORE, SEARCH, EXPUNGE,
	// MOVE) may leave it set.
	fresh bool
}

// newView selects folder. Its UID list starts out shared with the other
// sessions that selected the folder at the same snapshot (uidshare.go).
func newView(name string, folder *maildir.Folder, readOnly bool, share *uidShare) (*view, error) {
	snap, err := folder.Sync()
	if err != nil {
		return nil, fmt.Errorf("sync %q: %w", name, err)
	}
	v := &view{
		name:        name,
		folder:      folder,
		readOnly:    readOnly,
		uidValidity: snap.UIDValidity,
		snap:        snap,
		modSeq:      snap.HighestModSeq,
	}
	// RFC 3501 2.3.2: the messages no session has seen are recent in
	// this one (a read-write SELECT).
	if err := v.claimRecent(); err != nil {
		return nil, fmt.Errorf("claim recent %q: %w", name, err)
	}
	v.mailboxFlags()
	v.reported = v.snap
	// Not fresh: SELECT is answered with no poll after it.
	v.uids, v.releaseUIDs = share.acquire(folder.Dir(), v.snap)
	return v, nil
}

// ownUIDs makes the view's UID list its own before it changes it.
func (v *view) ownUIDs() {
	if v.releaseUIDs == nil {
		return
	}
	v.uids = append(make([]uint32, 0, len(v.uids)+16), v.uids...)
	v.releaseUIDs()
	v.releaseUIDs = nil
}

// seqOf returns the sequence number of uid in the client's view, or 0.
func (v *view) seqOf(uid uint32) uint32 {
	i := sort.Search(len(v.uids), func(i int) bool { return v.uids[i] >= uid })
	if i < len(v.uids) && v.uids[i] == uid {
		return uint32(i + 1)
	}
	return 0
}

// message returns the store's record of uid in the latest snapshot.
func (v *view) message(uid uint32) (*maildir.Message, bool) {
	i, ok := v.snap.ByUID(uid)
	if !ok {
		return nil, false
	}
	return &v.snap.Messages[i], true
}

// cursor finds the store records and sequence numbers of UIDs asked for in
// ascending order (as resolve and SEARCH produce them) by walking the view
// and the snapshot side by side, instead of two binary searches a message.
type cursor struct {
	v    *view
	snap *maildir.Snapshot
	i, j int // next positions in v.uids and snap.Messages
	last uint32
}

func (v *view) cursor() *cursor { return &cursor{v: v, snap: v.snap} }

// find returns the record of uid in the latest snapshot (nil if the store
// no longer has it) and its sequence number in the client's view (0 if the
// client does not know it).
func (c *cursor) find(uid uint32) (*maildir.Message, uint32) {
	if uid < c.last || c.snap != c.v.snap {
		// Out of order, or the view moved on: start over.
		c.i, c.j, c.snap = 0, 0, c.v.snap
	}
	c.last = uid
	uids, msgs := c.v.uids, c.snap.Messages
	for c.i < len(uids) && uids[c.i] < uid {
		c.i++
	}
	for c.j < len(msgs) && msgs[c.j].UID < uid {
		c.j++
	}
	var (
		m   *maildir.Message
		seq uint32
	)
	if c.i < len(uids) && uids[c.i] == uid {
		seq = uint32(c.i + 1)
	}
	if c.j < len(msgs) && msgs[c.j].UID == uid {
		m = &msgs[c.j]
	}
	return m, seq
}

// sync reads the folder's latest state from the store (Poll: on shared
// storage, new mail arriving in bulk is taken in bounded batches).
func (v *view) sync() error {
	snap, err := v.folder.Poll()
	if err != nil {
		if errors.Is(err, maildir.ErrNotFound) {
			return errMailboxGone
		}
		return fmt.Errorf("sync %q: %w", v.name, err)
	}
	if snap.UIDValidity != v.uidValidity {
		return errMailboxGone
	}
	v.snap = snap
	v.fresh = true
	return nil
}

// endCommand is deferred by the commands that sync: one that fails is not
// followed by a poll, so its sync must not stand in for the next one's.
func (v *view) endCommand(err *error) {
	if *err != nil {
		v.fresh = false
	}
}

// markTold records a flag change the client has just been sent.
func (v *view) markTold(m maildir.Message) {
	if v.told == nil {
		v.told = make(map[uint32]uint64)
	}
	v.told[m.UID] = m.ModSeq
}

// updateWriter is what the unilateral responses are written to.
type updateWriter interface {
	WriteExpunge(seqNum uint32) error
	WriteNumMessages(n uint32) error
	WriteNumRecent(n uint32) error
	WriteMailboxFlags(flags []imap.Flag) error
	WriteMessageFlags(seqNum uint32, uid imap.UID, flags []imap.Flag, modseq uint64) error
}

// update syncs with the store and tells the client what changed since it
// was last told: expunges (only when allowed), new messages, flag changes.
func (v *view) update(w updateWriter, allowExpunge bool) error {
	// Compared with the snapshot last reported, not the one before this
	// sync: a command's own sync (fresh) has already moved v.snap on,
	// and RFC 3501 7.2.6 needs the FLAGS of a keyword it brought in
	// before the flag updates below carry it.
	old := v.reported
	if v.fresh {
		v.fresh = false
	} else if err := v.sync(); err != nil {
		return err
	}
	v.fresh = false
	// New messages are this session's recent ones unless another session
	// claimed them first.
	if err := v.claimRecent(); err != nil {
		return err
	}
	if v.snap == old && len(v.uids) == len(v.snap.Messages) && v.told == nil {
		return nil
	}
	if allowExpunge {
		// Otherwise expunges stay to be told, and the next update
		// must look at this snapshot again.
		v.reported = v.snap
	}
	if allowExpunge {
		if err := v.reportExpunges(w); err != nil {
			return err
		}
	}
	var last uint32
	if n := len(v.uids); n > 0 {
		last = v.uids[n-1]
	}
	known := len(v.uids)
	if v.snap != old {
		if err := v.tellKeywords(w, last); err != nil {
			return err
		}
	}
	if n := len(v.snap.Messages); n > 0 && v.snap.Messages[n-1].UID > last {
		v.ownUIDs()
		// New messages have the highest UIDs: they are at the end.
		i := sort.Search(n, func(i int) bool { return v.snap.Messages[i].UID > last })
		for _, m := range v.snap.Messages[i:] {
			v.uids = append(v.uids, m.UID)
		}
	}
	if len(v.uids) > known {
		if err := w.WriteNumMessages(uint32(len(v.uids))); err != nil {
			return err
		}
		// RFC 3501 7.3.2: RECENT follows the new EXISTS.
		if !v.rev2 {
			if err := w.WriteNumRecent(v.numRecent()); err != nil {
				return err
			}
		}
	}
	if v.snap.HighestModSeq > v.modSeq {
		for i := range v.snap.Messages {
			m := &v.snap.Messages[i]
			if m.ModSeq <= v.modSeq || m.UID > last {
				continue
			}
			if mod, ok := v.told[m.UID]; ok && mod >= m.ModSeq {
				continue
			}
			seq := v.seqOf(m.UID)
			if seq == 0 {
				continue
			}
			if err := w.WriteMessageFlags(seq, imap.UID(m.UID), v.withRecent(m.UID, imapFlags(m.Flags)), m.ModSeq); err != nil {
				return err
			}
		}
		v.modSeq = v.snap.HighestModSeq
	}
	v.told = nil
	return nil
}

// tellKeywords sends FLAGS again when a message that is new to the client
// (UID above last) or changed since it was last told carries a keyword the
// client has not seen in FLAGS: RFC 3501 7.2.6, and clients (and
// imaptest) reject a FETCH FLAGS with a keyword FLAGS did not list.
func (v *view) tellKeywords(w updateWriter, last uint32) error {
	var flags []imap.Flag
	var seenList map[flagListID]bool
	for i := range v.snap.Messages {
		m := &v.snap.Messages[i]
		if len(m.Flags) == 0 || (m.UID <= last && m.ModSeq <= v.modSeq) {
			continue
		}
		if seenList == nil {
			seenList = make(map[flagListID]bool)
		}
		id := flagListID{&m.Flags[0], len(m.Flags)}
		if seenList[id] {
			continue
		}
		seenList[id] = true
		if fl := v.newKeywords(m.Flags); fl != nil {
			flags = fl
		}
	}
	if flags == nil {
		return nil
	}
	return w.WriteMailboxFlags(flags)
}

// reportExpunges removes from the view the messages the store no longer
// has and tells the client, highest sequence number first so that each
// EXPUNGE's number is still valid when the client reads it (RFC 3501 7.4.1:
// each EXPUNGE renumbers the messages after it).
func (v *view) reportExpunges(w interface{ WriteExpunge(uint32) error }) error {
	msgs := v.snap.Messages
	gone := make([]int, 0)
	j := 0
	for i, uid := range v.uids {
		for j < len(msgs) && msgs[j].UID < uid {
			j++
		}
		if j >= len(msgs) || msgs[j].UID != uid {
			gone = append(gone, i)
		}
	}
	if len(gone) == 0 {
		return nil
	}
	if v.beforeExpunge != nil {
		v.beforeExpunge(gone)
	}
	v.ownUIDs()
	if vw, ok := w.(vanishedWriter); ok && vw.qresync() {
		// RFC 7162 3.2.10: after ENABLE QRESYNC, one VANISHED with the
		// UIDs instead of an EXPUNGE each.
		uids := make([]uint32, len(gone))
		for k, i := range gone {
			uids[k] = v.uids[i]
		}
		for k := len(gone) - 1; k >= 0; k-- {
			i := gone[k]
			v.uids = append(v.uids[:i], v.uids[i+1:]...)
		}
		return vw.WriteVanished(uids)
	}
	for k := len(gone) - 1; k >= 0; k-- {
		i := gone[k]
		if err := w.WriteExpunge(uint32(i + 1)); err != nil {
			return err
		}
		v.uids = append(v.uids[:i], v.uids[i+1:]...)
	}
	return nil
}

// resolve turns a sequence or UID set of a command into the UIDs it names
// in the client's view, ascending. RFC 9051 6.4.8: UIDs that do not exist
// are ignored; sequence numbers beyond the view are an error.
func (v *view) resolve(numSet imap.NumSet) ([]uint32, error) {
	if imap.IsSearchRes(numSet) {
		return append([]uint32(nil), v.searchRes...), nil
	}
	switch set := numSet.(type) {
	case imap.SeqSet:
		return v.resolveSeq(set)
	case imap.UIDSet:
		return v.resolveUID(set), nil
	}
	return nil, fmt.Errorf("imapd: unknown number set %T", numSet)
}

var errBadSeq = &imap.Error{
	Type: imap.StatusResponseTypeBad,
	Code: imap.ResponseCodeClientBug,
	Text: "Invalid message sequence number",
}

func (v *view) resolveSeq(set imap.SeqSet) ([]uint32, error) {
	n := uint32(len(v.uids))
	var seqs []uint32
	for _, r := range set {
		start, stop := r.Start, r.Stop
		if n == 0 {
			// "*" in an empty mailbox names nothing; an explicit number
			// names a message that does not exist.
			if start == 0 || stop == 0 {
				continue
			}
			return nil, errBadSeq
		}
		if start == 0 {
			start = n
		}
		if stop == 0 {
			stop = n
		}
		if start > stop {
			start, stop = stop, start
		}
		if stop > n {
			return nil, errBadSeq
		}
		if len(set) == 1 {
			// One range (1:*, a single number): the UIDs are a slice
			// of the view, already ascending.
			return append([]uint32(nil), v.uids[start-1:stop]...), nil
		}
		for s := start; s <= stop; s++ {
			seqs = append(seqs, s)
		}
	}
	// UIDs ascend with sequence numbers, so sorting the numbers sorts the
	// UIDs; a number named twice is answered once.
	slices.Sort(seqs)
	seqs = slices.Compact(seqs)
	out := make([]uint32, len(seqs))
	for i, s := range seqs {
		out[i] = v.uids[s-1]
	}
	return out, nil
}

func (v *view) resolveUID(set imap.UIDSet) []uint32 {
	var max imap.UID
	if n := len(v.uids); n > 0 {
		max = imap.UID(v.uids[n-1])
	}
	var out []uint32
	for _, uid := range v.uids {
		for _, r := range set {
			start, stop := r.Start, r.Stop
			// RFC 9051 6.4.8: "*" is the largest UID in use; "n:*" always
			// includes it, even when n is larger.
			if start == 0 {
				start = max
			}
			if stop == 0 {
				stop = max
			}
			if start > stop {
				start, stop = stop, start
			}
			if imap.UID(uid) >= start && imap.UID(uid) <= stop {
				out = append(out, uid)
				break
			}
		}
	}
	return out
}

// close ends the view. Nothing is held open (the store shares the
// folder) but a shared UID list.
func (v *view) close() {
	if v.releaseUIDs != nil {
		v.releaseUIDs()
		v.releaseUIDs = nil
	}
}

var _ updateWriter = (*UpdateWriter)(nil)
