package main

import (
	"slices"

	"github.com/emersion/go-imap/v2"
)

// RFC 9051 7.3.5 (RFC 3501 7.2.6): FLAGS lists the flags a client may see
// in the mailbox, and a server sends it again when the list changes. A
// keyword that appears while a mailbox is selected (set by this session,
// another one, or another process) is announced with FLAGS and
// PERMANENTFLAGS before the first response that carries it.

// setMailboxFlags records what SELECT told the client.
func (s *session) setMailboxFlags(flags []imap.Flag) {
	s.mailboxFlags = append(s.mailboxFlags[:0], flags...)
	s.flagLists = nil
}

// announceFlags writes FLAGS and PERMANENTFLAGS if flags has a keyword
// the client has not been told of.
func (s *session) announceFlags(flags []string) {
	var added bool
	for _, f := range flags {
		if f == "" || f[0] == '\\' {
			continue // system flags are always listed
		}
		if !slices.Contains(s.mailboxFlags, imap.Flag(f)) {
			s.mailboxFlags = append(s.mailboxFlags, imap.Flag(f))
			added = true
		}
	}
	if !added {
		return
	}
	s.enc.Atom("* FLAGS ").Flags(s.mailboxFlags).CRLF()
	if s.sel != nil && !s.sel.readOnly {
		// Keywords are stored, so clients may make up new ones.
		s.enc.Atom("* OK [PERMANENTFLAGS ").Flags(append(s.mailboxFlags, imap.FlagWildcard))
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
	if s.flagLists == nil || len(s.flagLists) > 4096 {
		// Bounded: a long session sees new lists as flags change.
		s.flagLists = make(map[*string]int)
	}
	for i := range snap.Messages {
		fl := snap.Messages[i].Flags
		if len(fl) == 0 {
			continue
		}
		if n, ok := s.flagLists[&fl[0]]; ok && n == len(fl) {
			continue
		}
		s.flagLists[&fl[0]] = len(fl)
		s.announceFlags(fl)
	}
}
