package main

import (
	"errors"
	"slices"

	"github.com/emersion/go-imap/v2"
)

// systemFlags are the flags every mailbox supports (RFC 3501 2.3.2).
var systemFlags = []imap.Flag{
	imap.FlagSeen, imap.FlagAnswered, imap.FlagFlagged, imap.FlagDeleted, imap.FlagDraft,
}

// Select opens a mailbox for SELECT and EXAMINE (RFC 3501
// 6.3.1, 6.3.2).
func (s *session) Select(name string, options *imap.SelectOptions) (*imap.SelectData, error) {
	s.unselect()
	f, err := s.mbox.Folder(name)
	if err != nil {
		return nil, storeError(s.log, "select", err)
	}
	v, err := newView(name, f, options.ReadOnly, s.srv.uidShare)
	if err != nil {
		return nil, storeError(s.log, "select", err)
	}
	v.rev2 = s.rev2
	s.sel = v

	// RFC 3501 7.2.6: FLAGS lists the flags in use: the system flags
	// and the keywords found on messages (collected by newView, which
	// then knows what the client was told).
	flags := v.flagList()
	var firstUnseen uint32
	// The store shares one flag list among the messages with the same
	// flags, so each distinct list is looked at once.
	hasSeen := make(map[flagListID]bool)
	for i := range v.snap.Messages {
		fl := v.snap.Messages[i].Flags
		isSeen := false
		if len(fl) > 0 {
			id := flagListID{&fl[0], len(fl)}
			var done bool
			if isSeen, done = hasSeen[id]; !done {
				isSeen = slices.Contains(fl, string(imap.FlagSeen))
				hasSeen[id] = isSeen
			}
		}
		if !isSeen && firstUnseen == 0 {
			firstUnseen = uint32(i + 1)
			break
		}
	}
	// Keywords are stored by the store, so clients may make up new ones.
	permanent := append(append([]imap.Flag(nil), flags...), imap.FlagWildcard)
	if options.ReadOnly {
		permanent = nil
	}
	return &imap.SelectData{
		Flags:             flags,
		PermanentFlags:    permanent,
		NumMessages:       uint32(len(v.uids)),
		NumRecent:         v.numRecent(),
		FirstUnseenSeqNum: firstUnseen,
		UIDNext:           imap.UID(v.snap.UIDNext),
		UIDValidity:       v.snap.UIDValidity,
	}, nil
}

// Unselect closes the selected mailbox: CLOSE (after its silent
// expunge) and UNSELECT (RFC 3691).
func (s *session) Unselect() error {
	s.unselect()
	return nil
}

// Poll tells the client what changed after each command (RFC 3501 7:
// unilateral responses).
func (s *session) Poll(w *UpdateWriter, allowExpunge bool) error {
	return s.updateOrBye(w, allowExpunge)
}

// updateOrBye writes the updates; a selected mailbox that vanished ends
// the session with BYE (storeError).
func (s *session) updateOrBye(w updateWriter, allowExpunge bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sel == nil {
		return nil
	}
	err := s.sel.update(w, allowExpunge)
	if errors.Is(err, errMailboxGone) {
		s.log.Info("selected mailbox vanished", "mailbox", s.sel.name)
		s.sel.close()
		s.sel = nil
	}
	return storeErrorOrNil(s, "poll", err)
}

func storeErrorOrNil(s *session, what string, err error) error {
	if err == nil {
		return nil
	}
	return storeError(s.log, what, err)
}

// changed tells the other sessions of this process that a folder changed.
func (s *session) changed(dir string) { s.srv.hub.notify(dir) }
