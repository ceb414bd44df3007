package main

import (
	"fmt"
	"strings"

	"github.com/emersion/go-imap/v2"

	"tern/common/maildir"
)

// Create: CREATE (RFC 3501 6.3.3). A trailing
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
	if err := s.mbox.Create(name); err != nil {
		return storeError(s.log, "create", err)
	}
	s.notifyListChanged("", "")
	return nil
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

// Delete: DELETE (RFC 3501 6.3.4).
func (s *session) Delete(name string) error {
	if maildir.IsInbox(name) {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot,
			Text: "INBOX cannot be deleted"}
	}
	if err := s.mbox.Delete(name); err != nil {
		return storeError(s.log, "delete", err)
	}
	s.notifyListChanged("", "")
	return nil
}

// Rename: RENAME (RFC 3501 6.3.5); renaming INBOX
// moves its messages into the new folder and leaves INBOX empty.
func (s *session) Rename(oldName, newName string, options *imap.RenameOptions) error {
	if err := s.mbox.Rename(oldName, newName); err != nil {
		return storeError(s.log, "rename", err)
	}
	s.notifyListChanged(oldName, newName)
	return nil
}

// Subscribe: SUBSCRIBE (RFC 3501 6.3.6).
func (s *session) Subscribe(name string) error {
	if err := s.mbox.Subscribe(name); err != nil {
		return storeError(s.log, "subscribe", err)
	}
	s.notifyListChanged("", "")
	return nil
}

// Unsubscribe: UNSUBSCRIBE (RFC 3501 6.3.7).
func (s *session) Unsubscribe(name string) error {
	if err := s.mbox.Unsubscribe(name); err != nil {
		return storeError(s.log, "unsubscribe", err)
	}
	s.notifyListChanged("", "")
	return nil
}

// Status: STATUS (RFC 3501 6.3.10, RFC 8438
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
	var size, deletedSize int64
	for _, m := range snap.Messages {
		if options.Size {
			// RFC 8438 3: at least the sum of the RFC822.SIZEs.
			n, err := f.WireSize(m.UID, m.Key)
			if err != nil {
				n = m.Size
			}
			size += n
		}
		var isSeen bool
		for _, fl := range m.Flags {
			switch imap.Flag(fl) {
			case imap.FlagSeen:
				isSeen = true
			case imap.FlagDeleted:
				deleted++
				deletedSize += m.Size
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
		// RFC 3501 6.3.10: the messages no session has claimed as recent.
		recent = snap.NumRecent()
		data.NumRecent = &recent
	}
	if options.HighestModSeq {
		data.HighestModSeq = snap.HighestModSeq // RFC 7162 3.1.6
	}
	if options.DeletedStorage {
		// RFC 9208 4.2: what EXPUNGE would give back, in STORAGE's
		// units and by the sizes the quota counts.
		n := kib(deletedSize)
		data.DeletedStorage = &n
	}
	if options.AppendLimit {
		limit := s.AppendLimit()
		data.AppendLimit = &limit
	}
	return data, nil
}
