package main

import (
	"github.com/emersion/go-imap/v2"
)

// RFC 9051 7.3.5 (RFC 3501 7.2.6): FLAGS lists the flags a client may see
// in the mailbox, and a server sends it again when the list changes. A
// keyword that appears while a mailbox is selected (set by this session,
// another one, or another process) is announced with FLAGS and
// PERMANENTFLAGS before the first response that carries it. What the
// client was told is the view's keyword set (recent.go: newKeywords);
// every path that writes flags goes through announceFlags or the view's
// update (tellKeywords), which both record in it.

// announceFlags writes FLAGS and PERMANENTFLAGS if flags has a keyword
// the client has not been told of.
func (s *session) announceFlags(flags []string) {
	if s.sel == nil {
		return
	}
	if fl := s.sel.newKeywords(flags); fl != nil {
		s.writeMailboxFlags(fl)
	}
}

// writeMailboxFlags writes FLAGS and, for a read-write mailbox,
// PERMANENTFLAGS with the same keywords.
func (s *session) writeMailboxFlags(flags []imap.Flag) {
	s.enc.Atom("* FLAGS ").Flags(flags).CRLF()
	if s.sel != nil && !s.sel.readOnly {
		// Keywords are stored, so clients may make up new ones.
		s.enc.Atom("* OK [PERMANENTFLAGS ").Flags(append(flags, imap.FlagWildcard))
		s.enc.Atom("] Flags permitted").CRLF()
	}
}

// announceSnapshotFlags announces the keywords of every message of the
// selected mailbox's latest snapshot. The store shares one flag list
// among the messages with the same flags, so each list is looked at once.
func (s *session) announceSnapshotFlags() {
	v := s.sel
	if v == nil || v.snap == nil {
		return
	}
	snap := v.snap
	if v.flagLists == nil || len(v.flagLists) > 4096 {
		// Bounded: a long session sees new lists as flags change.
		v.flagLists = make(map[flagListID]bool)
	}
	for i := range snap.Messages {
		fl := snap.Messages[i].Flags
		if len(fl) == 0 {
			continue
		}
		id := flagListID{&fl[0], len(fl)}
		if v.flagLists[id] {
			continue
		}
		v.flagLists[id] = true
		s.announceFlags(fl)
	}
}
