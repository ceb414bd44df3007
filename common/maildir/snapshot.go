package maildir

import (
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
	Messages      []Message // ascending UID
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

// buildSnapshot publishes the index as a snapshot. Identical flag lists are
// shared between messages (most messages carry one of a few flag sets).
func (st *folderState) buildSnapshot() *Snapshot {
	x := st.idx
	s := &Snapshot{UIDValidity: x.uidValidity, UIDNext: x.uidNext, HighestModSeq: x.highestModSeq,
		Messages: make([]Message, len(x.entries))}
	intern := make(map[string][]string)
	for i := range x.entries {
		e := &x.entries[i]
		fl := messageFlags(e)
		if len(fl) > 0 {
			k := strings.Join(fl, " ")
			if c, ok := intern[k]; ok {
				fl = c
			} else {
				intern[k] = fl
			}
		}
		s.Messages[i] = Message{UID: e.uid, ModSeq: e.modseq, Key: e.key, Flags: fl,
			Size: e.size, InternalDate: time.Unix(0, e.mtime)}
	}
	return s
}

func timeFromNanos(ns int64) time.Time { return time.Unix(0, ns) }
