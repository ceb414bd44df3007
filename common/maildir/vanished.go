package maildir

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// The expunge history serves QRESYNC (RFC 7162 3.2.5.2, 3.2.6): which UIDs
// were expunged after a given modseq. Every expunge adds a record of its
// modseq and UIDs: the X lines of the change log, and the trailer of the
// index that a compaction folds them into (tern-maildir(5)):
//
//	.
//	K <floor> <count>
//	X <modseq> <uid-set>
//	...
//
// The history is bounded to maxExpungedUIDs UIDs: past it the oldest
// records are dropped and floor rises to the modseq of the last one
// dropped. Expunges at or below floor are no longer known one by one, so a
// client asking about them is told that every UID it may know and the
// folder no longer has is gone, which RFC 7162 3.2.5.2 allows (a client
// ignores UIDs it does not know). An index written before the history
// existed has no trailer: its floor is its HIGHESTMODSEQ.

// maxExpungedUIDs bounds the expunge history of a folder: 4 bytes a UID in
// memory, a few in the index file ([storage] expunge_history).
var maxExpungedUIDs = 50000

// hardExpungedUIDs bounds what is read of an index's history, whatever
// limit wrote it: a damaged count must not allocate without bound.
const hardExpungedUIDs = 1 << 24

// SetExpungeHistory sets how many expunged UIDs each folder remembers for
// QRESYNC ([storage] expunge_history); call it before opening any
// Mailbox. Values below 1 keep the default.
func SetExpungeHistory(n int) {
	if n > 0 {
		maxExpungedUIDs = n
	}
}

// Expunged is one expunge: the UIDs (ascending) removed at ModSeq.
type Expunged struct {
	ModSeq uint64
	UIDs   []uint32
}

// noteExpunge records in x's history that uids were expunged at modseq.
// Records are only ever appended or dropped from the front, never changed,
// so snapshots share the slice.
func (x *index) noteExpunge(modseq uint64, uids []uint32) {
	if len(uids) == 0 {
		return
	}
	u := append([]uint32(nil), uids...)
	slices.Sort(u)
	x.expunged = append(x.expunged, Expunged{ModSeq: modseq, UIDs: u})
	x.expungedUIDs += len(u)
	x.trimExpunged()
}

// trimExpunged drops the oldest records while the history holds more
// than maxExpungedUIDs UIDs, raising the floor.
func (x *index) trimExpunged() {
	drop := 0
	for x.expungedUIDs > maxExpungedUIDs && drop < len(x.expunged) {
		x.expungedUIDs -= len(x.expunged[drop].UIDs)
		x.expungeFloor = max(x.expungeFloor, x.expunged[drop].ModSeq)
		drop++
	}
	if drop > 0 {
		x.expunged = append([]Expunged(nil), x.expunged[drop:]...)
	}
}

// appendUIDSet writes uids (ascending) as an IMAP-style set: "1:4,7".
func appendUIDSet(b []byte, uids []uint32) []byte {
	for i := 0; i < len(uids); {
		j := i
		for j+1 < len(uids) && uids[j+1] == uids[j]+1 {
			j++
		}
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendUint(b, uint64(uids[i]), 10)
		if j > i {
			b = append(b, ':')
			b = strconv.AppendUint(b, uint64(uids[j]), 10)
		}
		i = j + 1
	}
	return b
}

// parseUIDSet reads what appendUIDSet wrote, refusing sets of more than
// limit UIDs.
func parseUIDSet(s string, limit int) ([]uint32, error) {
	var out []uint32
	for _, r := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(r, ":")
		a, err := strconv.ParseUint(lo, 10, 32)
		if err != nil || a == 0 {
			return nil, fmt.Errorf("bad UID %q", lo)
		}
		b := a
		if isRange {
			if b, err = strconv.ParseUint(hi, 10, 32); err != nil || b < a {
				return nil, fmt.Errorf("bad UID range %q", r)
			}
		}
		if n := len(out); n > 0 && uint64(out[n-1]) >= a {
			return nil, fmt.Errorf("UIDs not ascending at %q", r)
		}
		if uint64(len(out))+b-a+1 > uint64(limit) {
			return nil, fmt.Errorf("UID set too large")
		}
		for u := a; u <= b; u++ {
			out = append(out, uint32(u))
		}
	}
	return out, nil
}

// appendExpunged writes the index trailer of x's history.
func (x *index) appendExpunged(b []byte) []byte {
	b = fmt.Appendf(b, "K %d %d\n", x.expungeFloor, len(x.expunged))
	for _, r := range x.expunged {
		b = append(b, "X "...)
		b = strconv.AppendUint(b, r.ModSeq, 10)
		b = append(b, ' ')
		b = appendUIDSet(b, r.UIDs)
		b = append(b, '\n')
	}
	return b
}

// parseExpunged reads the index trailer s (after the "." line) into x. An
// empty trailer is an index written before the history: nothing is known
// of its expunges.
func (x *index) parseExpunged(s string) error {
	if s == "" {
		x.expungeFloor = x.highestModSeq
		return nil
	}
	nl := strings.IndexByte(s, '\n')
	if nl < 0 {
		return fmt.Errorf("%w: truncated expunge history", ErrCorruptIndex)
	}
	var floor uint64
	var count int
	if _, err := fmt.Sscanf(s[:nl], "K %d %d", &floor, &count); err != nil || count < 0 || count > hardExpungedUIDs {
		return fmt.Errorf("%w: bad expunge history header %q", ErrCorruptIndex, s[:nl])
	}
	s = s[nl+1:]
	x.expungeFloor = floor
	if count > 0 {
		x.expunged = make([]Expunged, 0, count)
	}
	var last uint64
	for i := 0; i < count; i++ {
		nl := strings.IndexByte(s, '\n')
		if nl < 0 {
			return fmt.Errorf("%w: truncated expunge history", ErrCorruptIndex)
		}
		f := strings.Split(s[:nl], " ")
		s = s[nl+1:]
		if len(f) != 3 || f[0] != "X" {
			return fmt.Errorf("%w: bad expunge record", ErrCorruptIndex)
		}
		m, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil || m < last || m > x.highestModSeq {
			return fmt.Errorf("%w: bad expunge modseq %q", ErrCorruptIndex, f[1])
		}
		last = m
		uids, err := parseUIDSet(f[2], hardExpungedUIDs-x.expungedUIDs)
		if err != nil {
			return fmt.Errorf("%w: expunge record: %v", ErrCorruptIndex, err)
		}
		x.expunged = append(x.expunged, Expunged{ModSeq: m, UIDs: uids})
		x.expungedUIDs += len(uids)
	}
	if s != "" {
		return fmt.Errorf("%w: data after expunge history", ErrCorruptIndex)
	}
	// Written under a larger limit: keep what this one allows.
	x.trimExpunged()
	return nil
}

// VanishedSince returns the UIDs expunged after modseq (RFC 7162 3.2.5.2
// and 3.2.6), ascending, and whether the history reaches back that far.
// When complete is false, expunges after modseq may have been forgotten:
// the caller must treat every UID below UIDNext that Messages lacks as
// possibly expunged.
func (s *Snapshot) VanishedSince(modseq uint64) (uids []uint32, complete bool) {
	if modseq < s.ExpungeFloor {
		return nil, false
	}
	for _, r := range s.Expunged {
		if r.ModSeq > modseq {
			uids = append(uids, r.UIDs...)
		}
	}
	if len(uids) > 0 {
		// Records are in modseq order; their UIDs together need not be.
		slices.Sort(uids)
		uids = slices.Compact(uids)
	}
	return uids, true
}
