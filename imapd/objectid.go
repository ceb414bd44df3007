package main

import (
	"crypto/sha256"
	"encoding/hex"
	"time"

	"github.com/emersion/go-imap/v2"

	"tern/common/maildir"
	"tern/imapd/wire"
)

// OBJECTID (RFC 8474) and SAVEDATE (RFC 8514). The ids and save dates
// come from the store (common/maildir/objectid.go, tern-maildir(5)):
// MAILBOXID from the folder's tern-mailboxid, EMAILID derived from the
// message's file key or kept in its index line, the save date in the
// index line.
//
// THREADID is derived from the message's header alone, so that it never
// changes for a message (RFC 8474 5.2) and is the same in every mailbox
// and process: "T" and 24 hex digits of the SHA-256 of the thread's first
// message id, which is the first id of References (RFC 5322 3.6.4: the
// parent's References followed by the parent), else In-Reply-To's, else
// the message's own Message-ID. A message and the replies that carry its
// id first thus share a THREADID. A message with none of these is a
// thread of its own, named after its EMAILID. The ids come from the
// header cache SORT and THREAD use (sort.go), so a warm FETCH THREADID or
// SEARCH THREADID reads no file.

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

// threadID is the candidate's THREADID, or "" when its header cannot be
// read.
func (c *candidate) threadID() string {
	h := c.loadSortHeader(c.s.srv.sortKeys.folder(c.dir, c.s.sel.uidValidity))
	if h == nil {
		return ""
	}
	root := "<" + h.sort.messageID + ">"
	switch {
	case len(h.sort.references) > 0:
		root = "<" + h.sort.references[0] + ">"
	case h.sort.messageID == "":
		root = c.m.EmailID()
	}
	sum := sha256.Sum256([]byte(root))
	return "T" + hex.EncodeToString(sum[:12])
}

// writeObjectItems writes the EMAILID, THREADID and SAVEDATE items a
// FETCH asked for.
func (s *session) writeObjectItems(w *FetchResponseWriter, m *maildir.Message) {
	if w.req.EmailID {
		w.sep()
		w.e.Atom("EMAILID (").Atom(m.EmailID()).Byte(')') // RFC 8474 7
	}
	if w.req.ThreadID {
		c := &candidate{s: s, dir: s.sel.folder.Dir()}
		c.reset(m, 0)
		w.sep()
		if id := c.threadID(); id != "" {
			w.e.Atom("THREADID (").Atom(id).Byte(')') // RFC 8474 7
		} else {
			w.e.Atom("THREADID NIL")
		}
	}
	if w.req.SaveDate {
		w.sep()
		w.e.Atom("SAVEDATE ").DateTime(m.SaveDate()) // RFC 8514 4.1
	}
}

// matchObjectCriterion matches the criteria that travel as header names
// (wire.SearchEmailID and the others); handled is false for a real header.
func (c *candidate) matchObjectCriterion(hf imap.SearchCriteriaHeaderField) (handled, ok bool) {
	m := c.m
	switch hf.Key {
	case wire.SearchEmailID:
		return true, m.EmailID() == hf.Value
	case wire.SearchThreadID:
		return true, c.threadID() == hf.Value
	case wire.SearchSavedBefore, wire.SearchSavedSince:
		// RFC 8514 4.2: dates are compared without the time of day,
		// as BEFORE and SINCE compare the internal date.
		day, err := time.Parse(time.DateOnly, hf.Value)
		if err != nil {
			return true, false
		}
		if hf.Key == wire.SearchSavedBefore {
			return true, matchDate(m.SaveDate(), time.Time{}, day)
		}
		return true, matchDate(m.SaveDate(), day, time.Time{})
	}
	return false, false
}
