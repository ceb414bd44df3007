package main

import (
	"time"

	"github.com/emersion/go-imap/v2"

	"tern/common/maildir"
	"tern/imapd/wire"
)

// OBJECTID (RFC 8474) and SAVEDATE (RFC 8514). The ids and save dates
// come from the store (common/maildir/objectid.go, tern-maildir(5)):
// MAILBOXID from the folder's tern-mailboxid, EMAILID derived from the
// message's file key or kept in its index line, the save date in the
// index line. THREADID is NIL (RFC 8474 5.2 allows a server that does not
// keep threads to answer NIL), so SEARCH THREADID matches nothing.

const codeMailboxID imap.ResponseCode = "MAILBOXID"

// mailboxID returns the MAILBOXID of the named mailbox, or "" when it
// cannot be had (the error is logged; the answer then goes without it).
func (s *session) mailboxID(name string) string {
	f, err := s.mbox.Folder(name)
	if err != nil {
		return ""
	}
	id, err := f.MailboxID()
	if err != nil {
		s.log.Warn("mailbox id", "mailbox", name, "err", err)
		return ""
	}
	return id
}

// selectMailboxID writes SELECT's and EXAMINE's "OK [MAILBOXID (id)]"
// (RFC 8474 4.1).
func (s *session) selectMailboxID() {
	id, err := s.sel.folder.MailboxID()
	if err != nil {
		s.log.Warn("mailbox id", "mailbox", s.sel.name, "err", err)
		return
	}
	s.enc.Atom("* OK [MAILBOXID (").Atom(id).Atom(")] Ok").CRLF()
}

// createdReply is CREATE's tagged OK with the new mailbox's MAILBOXID
// (RFC 8474 4.1).
func (s *session) createdReply(name string) reply {
	if id := s.mailboxID(name); id != "" {
		return reply{code: codeMailboxID, arg: "(" + id + ")", text: "CREATE completed"}
	}
	return reply{}
}

// writeObjectItems writes the EMAILID, THREADID and SAVEDATE items a
// FETCH asked for.
func (w *FetchResponseWriter) writeObjectItems(m *maildir.Message) {
	if w.req.EmailID {
		w.sep()
		w.e.Atom("EMAILID (").Atom(m.EmailID()).Byte(')') // RFC 8474 7
	}
	if w.req.ThreadID {
		w.sep()
		w.e.Atom("THREADID NIL") // RFC 8474 5.2
	}
	if w.req.SaveDate {
		w.sep()
		w.e.Atom("SAVEDATE ").DateTime(m.SaveDate) // RFC 8514 4.1
	}
}

// matchObjectCriterion matches the criteria that travel as header names
// (wire.SearchEmailID and the others); handled is false for a real header.
func matchObjectCriterion(m *maildir.Message, hf imap.SearchCriteriaHeaderField) (handled, ok bool) {
	switch hf.Key {
	case wire.SearchEmailID:
		return true, m.EmailID() == hf.Value
	case wire.SearchThreadID:
		return true, false // every THREADID is NIL
	case wire.SearchSavedBefore, wire.SearchSavedSince:
		// RFC 8514 4.2: dates are compared without the time of day,
		// as BEFORE and SINCE compare the internal date.
		day, err := time.Parse(time.DateOnly, hf.Value)
		if err != nil {
			return true, false
		}
		if hf.Key == wire.SearchSavedBefore {
			return true, matchDate(m.SaveDate, time.Time{}, day)
		}
		return true, matchDate(m.SaveDate, day, time.Time{})
	}
	return false, false
}
