package main

import (
	"slices"
	"sort"
	"strings"

	"github.com/emersion/go-imap/v2"
)

// flagRecent is RFC 3501 2.3.2's session flag. It is never stored with a
// message: the store only records which UIDs some session has claimed
// (maildir.Folder.ClaimRecent), and each view remembers its own.
const flagRecent imap.Flag = "\\Recent"

// The \Recent and mailbox-flags state of a view, for the IMAP server layer:
//
//   - SELECT: newView claims the recent messages when read-write; the
//     SELECT answer's RECENT is v.numRecent(), its FLAGS v.flagList().
//   - FETCH FLAGS, STORE answers and flag updates: v.withRecent(uid, flags)
//     adds \Recent for the messages recent in this session (IMAP4rev1 only:
//     RFC 9051 removed it, so a view with rev2 set adds nothing).
//   - SEARCH NEW / OLD / RECENT: a criterion on the flag \Recent, which the
//     search matches through v.isRecent.
//   - v.update claims new messages as they arrive and writes "* n RECENT"
//     after "* n EXISTS", and "* FLAGS" before the first FETCH that carries
//     a keyword the client was not yet told of. A command that itself
//     answers with such a keyword (FETCH, STORE) announces it first
//     (flags.go: announceFlags, through v.newKeywords).

// claimRecent takes the folder's unclaimed messages as this session's
// recent ones and moves the view to the store's snapshot after the claim.
// A read-only view claims nothing (RFC 3501 6.3.2: EXAMINE must not
// change the \Recent state).
func (v *view) claimRecent() error {
	if v.readOnly || v.snap.FirstRecent >= v.snap.UIDNext {
		return nil
	}
	snap, uids, err := v.folder.ClaimRecent()
	if err != nil {
		return err
	}
	if snap.UIDValidity != v.uidValidity {
		return errMailboxGone
	}
	v.snap = snap
	v.recent = append(v.recent, uids...)
	return nil
}

// isRecent reports whether uid is \Recent in this session.
func (v *view) isRecent(uid uint32) bool {
	if v.readOnly {
		return uid >= v.snap.FirstRecent
	}
	_, ok := slices.BinarySearch(v.recent, uid)
	return ok
}

// numRecent is the RECENT count of SELECT, EXAMINE and the "* n RECENT"
// update: the messages of the view that are recent in this session.
func (v *view) numRecent() uint32 {
	if v.readOnly {
		i := sort.Search(len(v.uids), func(i int) bool { return v.uids[i] >= v.snap.FirstRecent })
		return uint32(len(v.uids) - i)
	}
	var n uint32
	for _, uid := range v.recent {
		if v.seqOf(uid) != 0 {
			n++
		}
	}
	return n
}

// withRecent returns flags, plus \Recent when uid is recent in this
// IMAP4rev1 session. flags itself is never modified (it may be shared).
func (v *view) withRecent(uid uint32, flags []imap.Flag) []imap.Flag {
	if v.rev2 || !v.isRecent(uid) {
		return flags
	}
	return append(slices.Clip(flags), flagRecent)
}

// mailboxFlags is the FLAGS list of the mailbox (RFC 3501 7.2.6): the
// system flags, the keywords defined for the folder and every keyword in
// use, which the view then counts as told.
func (v *view) mailboxFlags() []imap.Flag {
	if v.keywords == nil {
		v.keywords = make(map[string]bool)
	}
	for _, k := range v.snap.Keywords {
		if k != "" && !strings.HasPrefix(k, "\\") {
			v.keywords[k] = true
		}
	}
	var seenList map[flagListID]bool
	for i := range v.snap.Messages {
		fl := v.snap.Messages[i].Flags
		if len(fl) == 0 {
			continue
		}
		// The store shares one flag list among the messages with the same
		// flags: each distinct list is looked at once.
		if seenList == nil {
			seenList = make(map[flagListID]bool)
		}
		if id := (flagListID{&fl[0], len(fl)}); seenList[id] {
			continue
		} else {
			seenList[id] = true
		}
		for _, f := range fl {
			if !strings.HasPrefix(f, "\\") {
				v.keywords[f] = true
			}
		}
	}
	return v.flagList()
}

// flagListID names one of the store's shared flag lists. Lists may share
// a backing array with different lengths, so the length is part of it.
type flagListID struct {
	first *string
	n     int
}

func (v *view) flagList() []imap.Flag {
	flags := append([]imap.Flag(nil), systemFlags...)
	kws := make([]string, 0, len(v.keywords))
	for k := range v.keywords {
		kws = append(kws, k)
	}
	slices.Sort(kws)
	for _, k := range kws {
		flags = append(flags, imap.Flag(k))
	}
	return flags
}

// newKeywords records the keywords of flags that the client has not been
// told of in a FLAGS response and, when there are any, returns the new
// FLAGS list to send before flags are (RFC 3501 7.2.6: FLAGS lists the
// flags applicable to the mailbox; a client may reject others). It returns
// nil when the client already knows them all.
func (v *view) newKeywords(flags []string) []imap.Flag {
	added := false
	for _, f := range flags {
		if strings.HasPrefix(f, "\\") || v.keywords[f] {
			continue
		}
		if v.keywords == nil {
			v.keywords = make(map[string]bool)
		}
		v.keywords[f] = true
		added = true
	}
	if !added {
		return nil
	}
	return v.flagList()
}
