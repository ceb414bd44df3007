package main

import (
	"slices"
	"sort"

	"github.com/emersion/go-imap/v2"

	"tern/common/maildir"
	"tern/imapd/wire"
)

// CONDSTORE and QRESYNC (RFC 7162). The store keeps a modseq for every
// message, also for changes made by pop3d, lmtpd and other programs (found
// at the next sync), and a history of expunged UIDs with their modseqs
// (maildir.Snapshot.VanishedSince), so every mailbox has persistent
// modseqs: SELECT always answers HIGHESTMODSEQ, never NOMODSEQ (RFC 7162
// 3.1.2.1).

// enableCondStore marks CONDSTORE enabled, by ENABLE or by the first
// CONDSTORE-enabling command (RFC 7162 3.1: SELECT/EXAMINE (CONDSTORE),
// STATUS HIGHESTMODSEQ, FETCH MODSEQ or CHANGEDSINCE, SEARCH MODSEQ, STORE
// UNCHANGEDSINCE). From then on FETCH responses about flag changes carry
// MODSEQ (RFC 7162 3.1.4.1, 3.1.3). RFC 7162 3.1: when the first such
// command comes in the selected state, the server sends HIGHESTMODSEQ
// before its answer.
func (s *session) enableCondStore() {
	if s.condstore {
		return
	}
	s.condstore = true
	if s.state == stateSelected && s.sel != nil {
		s.enc.Atom("* OK [HIGHESTMODSEQ ").Number64(int64(s.sel.modSeq)).Atom("] Highest").CRLF()
	}
}

// esearchModSeq is the MODSEQ of an ESEARCH answer (RFC 7162 3.1.5 with
// RFC 4731): with only MIN and/or MAX asked for, the highest modseq of
// the messages returned; otherwise of all found.
func (s *session) esearchModSeq(opts *imap.SearchOptions, data *imap.SearchData, uid bool) uint64 {
	if opts.ReturnAll || opts.ReturnCount || (!opts.ReturnMin && !opts.ReturnMax) {
		return data.ModSeq
	}
	v := s.sel
	var ms uint64
	var nums []uint32
	if opts.ReturnMin {
		nums = append(nums, data.Min)
	}
	if opts.ReturnMax {
		nums = append(nums, data.Max)
	}
	for _, n := range nums {
		u := n
		if !uid {
			if n == 0 || int(n) > len(v.uids) {
				continue
			}
			u = v.uids[n-1]
		}
		if m, ok := v.message(u); ok {
			ms = max(ms, m.ModSeq)
		}
	}
	return ms
}

// enableQResync: RFC 7162 3.2.3, ENABLE QRESYNC also enables CONDSTORE;
// from then on expunges are reported as VANISHED (RFC 7162 3.2.10).
func (s *session) enableQResync() { s.condstore, s.qresync = true, true }

// selectModSeq writes SELECT's HIGHESTMODSEQ (RFC 7162 3.1.2.1) and, for
// SELECT ... (QRESYNC ...), what changed since the client's modseq (RFC
// 7162 3.2.5.2): VANISHED (EARLIER) and FETCH of changed flags.
func (s *session) selectModSeq(params *wire.SelectParams) {
	v := s.sel
	e := s.enc
	e.Atom("* OK [HIGHESTMODSEQ ").Number64(int64(v.modSeq)).Atom("] Highest").CRLF()
	if params == nil || params.QResync == nil {
		return
	}
	q := params.QResync
	if q.UIDValidity != v.uidValidity {
		// RFC 7162 3.2.5.2: another UIDVALIDITY means the client's
		// cache is void; it gets no VANISHED and no flag changes.
		return
	}
	if set := vanishedIn(v.snap, q.ModSeq, q.KnownUIDs, nil, seqMatchFloor(v.snap, q)); len(set) > 0 {
		e.Atom("* VANISHED (EARLIER) ").NumSet(set).CRLF()
	}
	var known []imap.UIDRange
	if q.KnownUIDs != nil {
		known = uidRanges(q.KnownUIDs, v.snap.UIDNext-1)
	}
	for i := range v.snap.Messages {
		m := &v.snap.Messages[i]
		if m.ModSeq <= q.ModSeq || (known != nil && !inRanges(known, m.UID)) {
			continue
		}
		seq := v.seqOf(m.UID)
		if seq == 0 {
			continue
		}
		e.Atom("* ").Number(seq).Atom(" FETCH (UID ").Number(m.UID).Atom(" FLAGS ").Flags(v.withRecent(m.UID, imapFlags(m.Flags)))
		e.Atom(" MODSEQ (").Number64(int64(m.ModSeq)).Atom("))").CRLF()
	}
}

// uidRanges gives set's ranges in ascending order, "*" as maxUID, each
// with Start <= Stop.
func uidRanges(set imap.UIDSet, maxUID uint32) []imap.UIDRange {
	out := make([]imap.UIDRange, 0, len(set))
	for _, r := range set {
		a, b := r.Start, r.Stop
		if a == 0 {
			a = imap.UID(maxUID)
		}
		if b == 0 {
			b = imap.UID(maxUID)
		}
		if a > b {
			a, b = b, a
		}
		if a == 0 {
			continue
		}
		out = append(out, imap.UIDRange{Start: a, Stop: b})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Start < out[j].Start })
	return out
}

func inRanges(rs []imap.UIDRange, uid uint32) bool {
	i := sort.Search(len(rs), func(i int) bool { return rs[i].Start > imap.UID(uid) })
	// Ranges may overlap: look back over those starting at or below uid.
	for j := i - 1; j >= 0; j-- {
		if rs[j].Stop >= imap.UID(uid) {
			return true
		}
	}
	return false
}

// vanishedIn gives the UIDs within (nil: all) expunged after modseq, as
// the store's expunge history knows them. Where the history no longer
// reaches back that far it gives, as RFC 7162 3.2.5.2 allows, every UID
// within that the mailbox no longer has. UIDs in keep (the client's view,
// whose expunges it will be told of as they come) are left out.
//
// above (from seq-match data, seqMatchFloor) says no UID at or below it
// was expunged: the conservative answer leaves those out.
func vanishedIn(snap *maildir.Snapshot, modseq uint64, within imap.UIDSet, keep []uint32, above uint32) imap.UIDSet {
	maxUID := snap.UIDNext - 1
	if maxUID == 0 {
		return nil
	}
	var rs []imap.UIDRange
	if within != nil {
		rs = uidRanges(within, maxUID)
	} else {
		rs = []imap.UIDRange{{Start: 1, Stop: imap.UID(maxUID)}}
	}
	var out imap.UIDSet
	kept := func(u uint32) bool {
		_, found := slices.BinarySearch(keep, u)
		return found
	}
	uids, complete := snap.VanishedSince(modseq)
	if complete {
		for _, u := range uids {
			if inRanges(rs, u) && !kept(u) {
				out.AddNum(imap.UID(u))
			}
		}
		return out
	}
	// Every UID of the ranges that is neither in the snapshot nor kept.
	present := make([]uint32, 0, len(snap.Messages)+len(keep))
	for i := range snap.Messages {
		present = append(present, snap.Messages[i].UID)
	}
	present = append(present, keep...)
	slices.Sort(present)
	present = slices.Compact(present)
	for _, r := range rs {
		if uint32(r.Stop) <= above {
			continue
		}
		lo := max(uint32(r.Start), above+1)
		i, _ := slices.BinarySearch(present, lo)
		for ; i < len(present) && present[i] <= uint32(r.Stop); i++ {
			if present[i] > lo {
				out.AddRange(imap.UID(lo), imap.UID(present[i]-1))
			}
			lo = present[i] + 1
		}
		if lo <= uint32(r.Stop) && lo != 0 {
			out.AddRange(imap.UID(lo), r.Stop)
		}
	}
	return out
}

// seqMatchFloor reads QRESYNC's seq-match data (RFC 7162 3.2.5.2): pairs
// of a sequence number and the UID it had for the client. Where the
// mailbox still has that UID at that sequence number, no message below
// it was expunged (UIDs only grow, so only expunges move a message to a
// lower number). It returns the highest such UID, or 0. The data is a
// hint: at most as many pairs as the mailbox has messages are looked at,
// and ranges are skipped arithmetically, so no set makes it expensive.
func seqMatchFloor(snap *maildir.Snapshot, q *wire.QResync) uint32 {
	if q.SeqMatchSeqs == nil {
		return 0
	}
	var seqs, uids [][2]uint32
	for _, r := range q.SeqMatchSeqs {
		seqs = append(seqs, [2]uint32{r.Start, r.Stop})
	}
	for _, r := range q.SeqMatchUIDs {
		uids = append(uids, [2]uint32{uint32(r.Start), uint32(r.Stop)})
	}
	count := func(rs [][2]uint32) (uint64, bool) {
		var n uint64
		for i, r := range rs {
			if r[0] == 0 || r[1] == 0 {
				return 0, false // "*" has no place in seq-match data
			}
			if r[0] > r[1] {
				rs[i] = [2]uint32{r[1], r[0]}
			}
			n += uint64(rs[i][1]-rs[i][0]) + 1
		}
		return n, true
	}
	ns, ok1 := count(seqs)
	nu, ok2 := count(uids)
	if !ok1 || !ok2 || ns != nu {
		return 0
	}
	n := uint32(len(snap.Messages))
	budget := len(snap.Messages)
	var floor uint32
	ui, uoff := 0, uint64(0) // the UID paired with the next sequence number
	skip := func(k uint64) {
		for k > 0 && ui < len(uids) {
			left := uint64(uids[ui][1]-uids[ui][0]) + 1 - uoff
			if k < left {
				uoff += k
				return
			}
			k -= left
			ui, uoff = ui+1, 0
		}
	}
	for _, r := range seqs {
		for seq := r[0]; ; seq++ {
			if seq > n || budget == 0 {
				skip(uint64(r[1]-seq) + 1)
				break
			}
			budget--
			if u := uids[ui][0] + uint32(uoff); snap.Messages[seq-1].UID == u {
				floor = max(floor, u)
			}
			skip(1)
			if seq == r[1] {
				break
			}
		}
	}
	return floor
}

// fetchVanished writes UID FETCH ... (CHANGEDSINCE n VANISHED)'s VANISHED
// (EARLIER) for the UIDs of the command's set expunged since n (RFC 7162
// 3.2.6), before its FETCH responses.
func (s *session) fetchVanished(w *FetchWriter, numSet imap.NumSet, options *imap.FetchOptions) {
	if !w.req.Vanished {
		return
	}
	set, ok := numSet.(imap.UIDSet)
	if !ok {
		return
	}
	v := s.sel
	if set := vanishedIn(v.snap, options.ChangedSince, set, v.uids, 0); len(set) > 0 {
		s.enc.Atom("* VANISHED (EARLIER) ").NumSet(set).CRLF()
	}
}

// WriteModSeq writes the MODSEQ item (RFC 7162 3.1.4.1).
func (w *FetchResponseWriter) WriteModSeq(modseq uint64) {
	w.sep()
	w.e.Atom("MODSEQ (").Number64(int64(modseq)).Byte(')')
}

// writeVanished writes an unsolicited VANISHED (RFC 7162 3.2.10).
func (s *session) writeVanished(uids []uint32) {
	var set imap.UIDSet
	for _, u := range uids {
		set.AddNum(imap.UID(u))
	}
	s.enc.Atom("* VANISHED ").NumSet(set).CRLF()
}

// vanishedWriter is a writer of expunges that reports them as VANISHED
// once the client enabled QRESYNC: qresync says whether it does.
type vanishedWriter interface {
	qresync() bool
	WriteVanished(uids []uint32) error
}

func (w *UpdateWriter) qresync() bool { return w.s.qresync }

// WriteVanished writes VANISHED.
func (w *UpdateWriter) WriteVanished(uids []uint32) error {
	w.s.writeVanished(uids)
	return nil
}

func (w *ExpungeWriter) qresync() bool { return w.s != nil && w.s.qresync }

// WriteVanished writes VANISHED.
func (w *ExpungeWriter) WriteVanished(uids []uint32) error {
	w.s.writeVanished(uids)
	return nil
}

func (w *MoveWriter) qresync() bool { return w.s.qresync }

// WriteVanished writes VANISHED.
func (w *MoveWriter) WriteVanished(uids []uint32) error {
	w.s.writeVanished(uids)
	return nil
}

// searchUsesModSeq says whether criteria holds a MODSEQ key anywhere:
// then SEARCH's result ends with the highest modseq of the messages found
// (RFC 7162 3.1.5).
func searchUsesModSeq(c *imap.SearchCriteria) bool {
	if c.ModSeq != nil {
		return true
	}
	for i := range c.Not {
		if searchUsesModSeq(&c.Not[i]) {
			return true
		}
	}
	for i := range c.Or {
		if searchUsesModSeq(&c.Or[i][0]) || searchUsesModSeq(&c.Or[i][1]) {
			return true
		}
	}
	return false
}

// codeModified and codeHighestModSeq are RFC 7162's response codes.
const (
	codeModified      imap.ResponseCode = "MODIFIED"
	codeHighestModSeq imap.ResponseCode = "HIGHESTMODSEQ"
)
