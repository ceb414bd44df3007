package main

import (
	"crypto/sha256"
	"errors"
	"sort"

	"tern/common/maildir"
)

// NOTIFY's metadata events (RFC 5465 5.6 MailboxMetadataChange, 5.7
// ServerMetadataChange; REQUIRED of a server that advertises METADATA and
// METADATA-SERVER): when entries of a mailbox a filter covers, or of the
// server, change, the session sends an unsolicited METADATA response with
// the names of the entries that changed, never their values (RFC 5464
// 4.4, 4.4.2: "* METADATA INBOX /private/comment").
//
// Where the changes come from: the entries are files beside the Maildir
// (common/maildir/metadata.go), replaced whole at each change. A session
// keeps, for each file it watches, the file's stamp (inode, size, mtime)
// and a hash of each entry's value; comparing tells which entries
// changed. A SETMETADATA by a session of this process wakes the user's
// NOTIFY sessions at once (watchHub.userChanged), which then read every
// watched file (a stamp could repeat). Other processes' changes are found
// by a stat of each watched file every imapd.idle_recheck, on the timer
// that compares the mailbox lists; a file is read only when its stamp
// changed. The cost is bounded: the mailboxes watched for metadata count,
// with those watched for messages, against imapd.notify_max_mailboxes.
//
// Without NOTIFY, tern sends no unsolicited METADATA: RFC 5464 4.1 makes
// them a MAY, to be sent only after ENABLE METADATA, which tern does not
// enable.

// metaSeen is one metadata file as last seen.
type metaSeen struct {
	stamp   string
	entries map[string][sha256.Size]byte
}

// metadataEvents says whether any filter asks for a metadata event.
func (sp *notifySpec) metadataEvents() bool {
	for _, f := range sp.filters {
		if f.events.mailboxMetadata || f.events.serverMetadata {
			return true
		}
	}
	return false
}

// metaNames are the keys of the metadata files to watch: the existing
// mailboxes a filter asks MailboxMetadataChange of, and "" (the server)
// when one asks ServerMetadataChange.
func (st *notifyState) metaNames() map[string]bool {
	out := make(map[string]bool)
	for _, f := range st.spec.filters {
		if f.events.serverMetadata {
			out[""] = true
		}
	}
	for name := range st.names {
		if st.spec.eventsFor(name, st.subs).mailboxMetadata {
			out[name] = true
		}
	}
	return out
}

// watchCount is how many mailboxes NOTIFY watches, for messages or for
// metadata, against imapd.notify_max_mailboxes.
func (st *notifyState) watchCount(watched []string) int {
	n := len(watched)
	for name := range st.metaNames() {
		if name != "" && !containsSorted(watched, name) {
			n++
		}
	}
	return n
}

// containsSorted says whether the sorted names hold name.
func containsSorted(names []string, name string) bool {
	i := sort.SearchStrings(names, name)
	return i < len(names) && names[i] == name
}

// metaTrack brings the watched metadata files to what the filters now
// cover: new ones are read as they are (no event), gone ones dropped.
// With wmu held.
func (s *session) metaTrack() error {
	st := s.notify
	want := st.metaNames()
	if st.meta == nil {
		st.meta = make(map[string]*metaSeen)
	}
	for name := range st.meta {
		if !want[name] {
			delete(st.meta, name)
		}
	}
	for name := range want {
		if st.meta[name] != nil {
			continue
		}
		seen, err := s.metaRead(name)
		if errors.Is(err, maildir.ErrNotFound) {
			continue // gone since the list was read
		}
		if err != nil {
			return storeError(s.log, "notify metadata", err)
		}
		st.meta[name] = seen
	}
	return nil
}

// metaRead reads a metadata file's stamp, then its entries: a change
// between the two leaves an old stamp, so the next look reads again.
func (s *session) metaRead(name string) (*metaSeen, error) {
	stamp, err := s.mbox.MetadataStamp(name)
	if err != nil {
		return nil, err
	}
	seen := &metaSeen{stamp: stamp, entries: map[string][sha256.Size]byte{}}
	if stamp == "" {
		return seen, nil
	}
	entries, err := s.mbox.Metadata(name)
	if err != nil {
		return nil, err
	}
	for k, v := range entries {
		seen.entries[k] = sha256.Sum256(v)
	}
	return seen, nil
}

// metaCheck stats each watched metadata file and writes a METADATA
// response naming the entries set, changed or removed since the last
// look (RFC 5465 5.6, 5.7; RFC 5464 4.4.2). With wmu held.
func (s *session) metaCheck() error {
	st := s.notify
	names := make([]string, 0, len(st.meta))
	for name := range st.meta {
		names = append(names, name)
	}
	sort.Strings(names) // the server's ("") first
	// A stamp could repeat (an inode reused within the file system's
	// timestamp granularity, at the same size); a change made in this
	// process is certain, so the files are read then.
	force := st.metaForce.Swap(false)
	for _, name := range names {
		was := st.meta[name]
		stamp, err := s.mbox.MetadataStamp(name)
		if errors.Is(err, maildir.ErrNotFound) {
			// Deleted or renamed: the list comparison takes it out.
			st.listDirty.Store(true)
			continue
		}
		if err != nil {
			return storeError(s.log, "notify metadata", err)
		}
		if stamp == was.stamp && !force {
			continue
		}
		now, err := s.metaRead(name)
		if errors.Is(err, maildir.ErrNotFound) {
			st.listDirty.Store(true)
			continue
		}
		if err != nil {
			return storeError(s.log, "notify metadata", err)
		}
		st.meta[name] = now
		var changed []string
		for k, h := range now.entries {
			if old, ok := was.entries[k]; !ok || old != h {
				changed = append(changed, k)
			}
		}
		for k := range was.entries {
			if _, ok := now.entries[k]; !ok {
				changed = append(changed, k) // removed (SETMETADATA NIL)
			}
		}
		if len(changed) == 0 {
			continue
		}
		sort.Strings(changed)
		// RFC 5464 5: metadata-resp = "METADATA" SP mailbox SP entry-list,
		// entry-list = entry *(SP entry); "" is the server.
		s.enc.Atom("* METADATA ").Mailbox(name)
		for _, k := range changed {
			s.enc.SP().AString(k)
		}
		s.enc.CRLF()
	}
	return nil
}

// notifyMetadataSet is called after this session's SETMETADATA on mailbox
// ("" for the server): the user's other NOTIFY sessions of this process
// look at once, and this one takes the change in without telling (RFC
// 5465 5: SHOULD NOT notify the client of its own changes).
func (s *session) notifyMetadataSet(mailbox string) {
	s.srv.hub.userChanged(s.user, mailboxEvent{from: s, metadata: true})
	st := s.notify
	if st == nil {
		return
	}
	if maildir.IsInbox(mailbox) {
		mailbox = "INBOX"
	}
	if st.meta[mailbox] == nil {
		return
	}
	if seen, err := s.metaRead(mailbox); err == nil {
		st.meta[mailbox] = seen
	}
}
