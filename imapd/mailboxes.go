package main

import (
	"fmt"
	"strings"

	"github.com/emersion/go-imap/v2"

	"tern/common/maildir"
)

// Create implements imapserver.Session (RFC 3501 6.3.3). A trailing
// separator only declares the intent to create children; the store makes
// the intermediate levels itself.
func (s *session) Create(name string, options *imap.CreateOptions) error {
	name = strings.TrimSuffix(name, string(delim))
	if maildir.IsInbox(name) {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeAlreadyExists,
			Text: "INBOX always exists"}
	}
	// RFC 6154 5.1 (CREATE-SPECIAL-USE): the store gives the special-use
	// attributes by name (Sent is \Sent, and so on), so a CREATE may ask
	// for the attribute its name already has and nothing else. RFC 6154
	// 5.1 says a request that cannot be honoured must create nothing.
	for _, use := range options.SpecialUse {
		if !strings.EqualFold(string(use), maildir.SpecialUse(name)) {
			return &imap.Error{Type: imap.StatusResponseTypeNo, Code: responseCodeUseAttr,
				Text: fmt.Sprintf("Only %s can have %s here", canonicalFolderFor(use), use)}
		}
	}
	return storeError(s.log, "create", s.mbox.Create(name))
}

// responseCodeUseAttr is RFC 6154 6's response code for a special-use
// attribute the server cannot give.
const responseCodeUseAttr imap.ResponseCode = "USEATTR"

// canonicalFolderFor names the folder that carries a special-use
// attribute, for the error text.
func canonicalFolderFor(use imap.MailboxAttr) string {
	for _, name := range []string{"Sent", "Drafts", "Trash", "Junk", "Archive"} {
		if strings.EqualFold(maildir.SpecialUse(name), string(use)) {
			return name
		}
	}
	return "no folder"
}

// Delete implements imapserver.Session (RFC 3501 6.3.4).
func (s *session) Delete(name string) error {
	if maildir.IsInbox(name) {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot,
			Text: "INBOX cannot be deleted"}
	}
	return storeError(s.log, "delete", s.mbox.Delete(name))
}

// Rename implements imapserver.Session (RFC 3501 6.3.5); renaming INBOX
// moves its messages into the new folder and leaves INBOX empty.
func (s *session) Rename(oldName, newName string, options *imap.RenameOptions) error {
	return storeError(s.log, "rename", s.mbox.Rename(oldName, newName))
}

// Subscribe implements imapserver.Session (RFC 3501 6.3.6).
func (s *session) Subscribe(name string) error {
	return storeError(s.log, "subscribe", s.mbox.Subscribe(name))
}

// Unsubscribe implements imapserver.Session (RFC 3501 6.3.7).
func (s *session) Unsubscribe(name string) error {
	return storeError(s.log, "unsubscribe", s.mbox.Unsubscribe(name))
}

// List implements imapserver.Session: LIST (RFC 3501 6.3.8, with RFC 5258
// LIST-EXTENDED, RFC 5819 LIST-STATUS and RFC 6154 SPECIAL-USE) and LSUB
// (RFC 3501 6.3.9), which imapserver passes as SelectSubscribed.
func (s *session) List(w *ListWriter, ref string, patterns []string, options *imap.ListOptions) error {
	// RFC 3501 6.3.8: an empty pattern asks for the hierarchy delimiter
	// and the root name; imapserver drops empty patterns.
	if len(patterns) == 0 {
		return w.WriteList(&imap.ListData{Attrs: []imap.MailboxAttr{imap.MailboxAttrNoSelect}, Delim: delim})
	}
	folders, err := s.mbox.List()
	if err != nil {
		return storeError(s.log, "list", err)
	}
	subs, err := s.mbox.Subscriptions()
	if err != nil {
		return storeError(s.log, "list", err)
	}
	subscribed := make(map[string]bool, len(subs))
	for _, name := range subs {
		subscribed[name] = true
	}
	exists := make(map[string]bool, len(folders))

	match := func(name string) bool {
		for _, p := range patterns {
			if matchList(name, delim, ref, p) {
				return true
			}
		}
		return false
	}
	for _, f := range folders {
		exists[f.Name] = true
		if !match(f.Name) {
			continue
		}
		if options.SelectSubscribed && !subscribed[f.Name] {
			continue
		}
		if options.SelectSpecialUse && f.SpecialUse == "" {
			continue
		}
		data := &imap.ListData{Mailbox: f.Name, Delim: delim}
		// RFC 3348 / RFC 5258 4: children are always reported; clients
		// use them to draw the folder tree.
		if f.HasChildren {
			data.Attrs = append(data.Attrs, imap.MailboxAttrHasChildren)
		} else {
			data.Attrs = append(data.Attrs, imap.MailboxAttrHasNoChildren)
		}
		// RFC 6154 2: special-use attributes may be returned on every
		// LIST; clients that do not ask for them still rely on them.
		if f.SpecialUse != "" {
			data.Attrs = append(data.Attrs, imap.MailboxAttr(f.SpecialUse))
		}
		if (options.ReturnSubscribed || options.SelectSubscribed) && subscribed[f.Name] {
			data.Attrs = append(data.Attrs, imap.MailboxAttrSubscribed)
		}
		if options.ReturnStatus != nil {
			st, err := s.Status(f.Name, options.ReturnStatus)
			if err == nil {
				data.Status = st
			}
		}
		if err := w.WriteList(data); err != nil {
			return err
		}
	}
	// RFC 5258 3.1 / RFC 3501 6.3.9: subscriptions to mailboxes that no
	// longer exist are still listed, marked as such.
	if options.SelectSubscribed {
		for _, name := range subs {
			if exists[name] || !match(name) {
				continue
			}
			attrs := []imap.MailboxAttr{imap.MailboxAttrNonExistent, imap.MailboxAttrSubscribed}
			if !options.ReturnSubscribed && !options.SelectRecursiveMatch && options.ReturnStatus == nil &&
				!options.ReturnSpecialUse && !options.ReturnChildren {
				// LSUB has no \NonExistent; RFC 3501 6.3.9 uses \Noselect.
				attrs = []imap.MailboxAttr{imap.MailboxAttrNoSelect}
			}
			if err := w.WriteList(&imap.ListData{Mailbox: name, Delim: delim, Attrs: attrs}); err != nil {
				return err
			}
		}
	}
	return nil
}

// Status implements imapserver.Session (RFC 3501 6.3.10, RFC 8438
// STATUS=SIZE).
func (s *session) Status(name string, options *imap.StatusOptions) (*imap.StatusData, error) {
	f, err := s.mbox.Folder(name)
	if err != nil {
		return nil, storeError(s.log, "status", err)
	}
	snap, err := f.Sync()
	if err != nil {
		return nil, storeError(s.log, "status", err)
	}
	var unseen, deleted uint32
	var size int64
	for _, m := range snap.Messages {
		size += m.Size
		var isSeen bool
		for _, fl := range m.Flags {
			switch imap.Flag(fl) {
			case imap.FlagSeen:
				isSeen = true
			case imap.FlagDeleted:
				deleted++
			}
		}
		if !isSeen {
			unseen++
		}
	}
	num := uint32(len(snap.Messages))
	var recent uint32
	data := &imap.StatusData{Mailbox: name}
	if options.NumMessages {
		data.NumMessages = &num
	}
	if options.UIDNext {
		data.UIDNext = imap.UID(snap.UIDNext)
	}
	if options.UIDValidity {
		data.UIDValidity = snap.UIDValidity
	}
	if options.NumUnseen {
		data.NumUnseen = &unseen
	}
	if options.NumDeleted {
		data.NumDeleted = &deleted
	}
	if options.Size {
		data.Size = &size
	}
	if options.NumRecent {
		// The store does not keep \Recent (RFC 9051 removed it).
		data.NumRecent = &recent
	}
	if options.HighestModSeq {
		data.HighestModSeq = snap.HighestModSeq // RFC 7162 3.1.6
	}
	if options.AppendLimit {
		limit := s.AppendLimit()
		data.AppendLimit = &limit
	}
	return data, nil
}
