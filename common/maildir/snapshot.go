package maildir

import (
	"slices"
	"sort"
	"strings"
	"time"
)

// Snapshot is an immutable view of a folder at one Sync. Sessions share
// snapshots: never modify one, nor the Flags slices of its messages.
type Snapshot struct {
	UIDValidity   uint32
	UIDNext       uint32
	HighestModSeq uint64
	// FirstRecent is the lowest UID no session has claimed as recent
	// (Folder.ClaimRecent): the messages from it up are what STATUS
	// RECENT counts and what a read-only session shows as \Recent.
	FirstRecent uint32
	// Keywords are the keywords defined for the folder (its
	// dovecot-keywords letters), in use on a message or not: IMAP's FLAGS
	// lists them, as Dovecot does, so that a keyword does not vanish from
	// FLAGS when the last message carrying it loses it.
	Keywords []string
	Messages []Message // ascending UID
	// Expunged is the folder's expunge history, ascending modseq, and
	// ExpungeFloor the modseq at or below which expunges may be
	// forgotten (VanishedSince). Shared: never modify.
	Expunged     []Expunged
	ExpungeFloor uint64
}

// Message is one message of a snapshot.
type Message struct {
	UID    uint32
	ModSeq uint64
	// Key is the unique part of the file name ("time.unique.host,S=size,W=wire"),
	// stable across flag changes.
	Key string
	// Flags are sorted; system flags by their IMAP names (\Answered,
	// \Deleted, \Draft, \Flagged, \Seen), then keywords. Never \Recent.
	Flags []string
	// Size in bytes: from ",S=" in the name when present, otherwise stat.
	Size int64
	// InternalDate is the file's mtime (Dovecot's convention).
	InternalDate time.Time
	// saved is the save date in Unix seconds (SaveDate), 0 if unknown.
	saved int64
	// emailID is a stored EMAILID (EmailID); "" for the derived one.
	emailID string
}

// SaveDate is when the message entered this folder (RFC 8514): its
// APPEND, delivery, COPY or MOVE, or the sync that first saw a file
// another program put there. Messages indexed before save dates were
// kept have their InternalDate.
func (m *Message) SaveDate() time.Time {
	if m.saved == 0 {
		return m.InternalDate
	}
	return time.Unix(m.saved, 0)
}

// WireSize returns the message's size with CRLF line ends (what IMAP's
// RFC822.SIZE and POP3's octet counts report) when the file name records
// it (",W=", as tern and Dovecot write it); otherwise the caller must count.
func (m *Message) WireSize() (int64, bool) { return wireSizeFromKey(m.Key) }

// ByUID returns the index of uid in s.Messages (binary search).
func (s *Snapshot) ByUID(uid uint32) (int, bool) {
	i := sort.Search(len(s.Messages), func(i int) bool { return s.Messages[i].UID >= uid })
	if i < len(s.Messages) && s.Messages[i].UID == uid {
		return i, true
	}
	return i, false
}

// NumRecent is the number of messages no session has claimed as recent:
// STATUS RECENT (RFC 3501 6.3.10) and the RECENT count of EXAMINE.
func (s *Snapshot) NumRecent() uint32 {
	i, _ := s.ByUID(s.FirstRecent)
	return uint32(len(s.Messages) - i)
}

// HasFlag reports whether m carries flag (case-insensitive, RFC 3501 2.3.2).
func (m *Message) HasFlag(flag string) bool {
	for _, f := range m.Flags {
		if strings.EqualFold(f, flag) {
			return true
		}
	}
	return false
}

// messageFlags gives the sorted IMAP flags of an index entry.
func messageFlags(e *entry) []string {
	sys, _ := flagsFromInfo(e.info, nil)
	if len(sys) == 0 {
		return e.kw
	}
	return sortedUnion(sys, e.kw)
}

// maxIntern bounds the flag-set cache of a folder; past it the cache starts
// afresh (a folder whose messages carry that many distinct keyword sets
// gains little from sharing).
const maxIntern = 4096

// flagsOf returns the flags of e, shared with every message of the same
// flags. The system flags come from info and the keywords from e.kw, so
// info and keywords together are the cache key; without keywords the key is
// info itself and the lookup allocates nothing.
func (st *folderState) flagsOf(e *entry) []string {
	if st.intern == nil || len(st.intern) > maxIntern {
		st.intern = make(map[string][]string)
	}
	k := e.info
	if len(e.kw) > 0 {
		k = e.info + "\x00" + strings.Join(e.kw, "\x00")
	}
	if fl, ok := st.intern[k]; ok {
		return fl
	}
	fl := messageFlags(e)
	if len(fl) == 0 {
		fl = nil
	}
	st.intern[k] = fl
	return fl
}

func (st *folderState) message(e *entry) Message {
	return Message{UID: e.uid, ModSeq: e.modseq, Key: e.key, Flags: st.flagsOf(e),
		Size: e.size, InternalDate: time.Unix(0, e.mtime), saved: e.saved, emailID: e.emailID}
}

// buildSnapshot publishes the index as a snapshot.
func (st *folderState) buildSnapshot() *Snapshot {
	x := st.idx
	s := &Snapshot{UIDValidity: x.uidValidity, UIDNext: x.uidNext, HighestModSeq: x.highestModSeq,
		FirstRecent: x.recentMark(), Keywords: slices.Clip(st.kw), Messages: make([]Message, len(x.entries)),
		Expunged: x.expunged, ExpungeFloor: x.expungeFloor}
	for i := range x.entries {
		s.Messages[i] = st.message(&x.entries[i])
	}
	return s
}

// updateSnapshot publishes the index after a change this process made to
// the messages with the UIDs in touched: the previous snapshot's messages
// are reused for every other UID, expunged ones are left out, and new ones
// built. Both lists are in UID order, so this is one merge pass.
func (st *folderState) updateSnapshot(touched map[uint32]bool) {
	old := st.snap
	x := st.idx
	if old == nil || old.UIDValidity != x.uidValidity {
		st.snap = st.buildSnapshot()
		return
	}
	s := &Snapshot{UIDValidity: x.uidValidity, UIDNext: x.uidNext, HighestModSeq: x.highestModSeq,
		FirstRecent: x.recentMark(), Keywords: slices.Clip(st.kw), Messages: make([]Message, len(x.entries)),
		Expunged: x.expunged, ExpungeFloor: x.expungeFloor}
	j := 0
	for i := range x.entries {
		e := &x.entries[i]
		for j < len(old.Messages) && old.Messages[j].UID < e.uid {
			j++
		}
		if j < len(old.Messages) && old.Messages[j].UID == e.uid && !touched[e.uid] {
			s.Messages[i] = old.Messages[j]
			continue
		}
		s.Messages[i] = st.message(e)
	}
	st.snap = s
}

func timeFromNanos(ns int64) time.Time { return time.Unix(0, ns) }
