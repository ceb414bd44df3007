package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"tern/common/config"
	"tern/common/maildir"
)

// popLock is the name of the per-mailbox lock that keeps POP3 sessions of
// one user apart (RFC 1939 8: the server should lock the maildrop). IMAP
// sessions do not take it and go on beside a POP3 session.
const popLock = "pop3"

// errInUse reports that another POP3 session holds the maildrop.
var errInUse = errors.New("pop3d: maildrop in use by another POP3 session")

// maildrop is a user's INBOX as one POP3 session sees it: the messages
// present at login, numbered 1 to n for the whole session. RFC 1939 5:
// messages that arrive later are not shown, and numbers never shift. A
// message removed meanwhile by IMAP keeps its number and fails on RETR.
type maildrop struct {
	folder  *maildir.Folder
	release func()
	msgs    []dropMessage
	// validity is the UIDVALIDITY of the msgs' UIDs: QUIT removes by
	// UID only under it (maildir.ErrUIDValidity).
	validity uint32
}

type dropMessage struct {
	uid     uint32
	key     string
	uidl    string
	size    int64 // octets on the wire before byte-stuffing; -1 until known
	deleted bool  // marked by DELE; removed only by QUIT (RFC 1939 6)
}

// openMaildrop locks the INBOX of address for POP3 and takes its snapshot.
func openMaildrop(template, address string) (*maildrop, error) {
	root, err := config.Expand(template, address)
	if err != nil {
		return nil, err
	}
	mb, err := maildir.Open(root)
	if err != nil {
		return nil, fmt.Errorf("open mailbox %q: %w", root, err)
	}
	release, err := mb.TryLock(popLock)
	if errors.Is(err, maildir.ErrLocked) {
		return nil, errInUse
	}
	if err != nil {
		return nil, fmt.Errorf("lock mailbox %q: %w", root, err)
	}
	d, err := snapshotInbox(mb)
	if err != nil {
		release()
		return nil, fmt.Errorf("mailbox %q: %w", root, err)
	}
	d.release = release
	return d, nil
}

func snapshotInbox(mb *maildir.Mailbox) (*maildrop, error) {
	f, err := mb.Folder("INBOX")
	if err != nil {
		return nil, fmt.Errorf("open INBOX: %w", err)
	}
	snap, err := f.Sync()
	if err != nil {
		return nil, fmt.Errorf("sync INBOX: %w", err)
	}
	d := &maildrop{folder: f, msgs: make([]dropMessage, len(snap.Messages)), validity: snap.UIDValidity}
	for i, m := range snap.Messages {
		size := int64(-1)
		if v, ok := m.WireSize(); ok {
			size = v
		}
		d.msgs[i] = dropMessage{uid: m.UID, key: m.Key, uidl: uidlOf(m.Key), size: size}
	}
	return d, nil
}

// close gives up the lock without removing anything: a session that ends
// any way but QUIT in the TRANSACTION state enters no UPDATE state
// (RFC 1939 3, 6).
func (d *maildrop) close() {
	if d.release != nil {
		d.release()
		d.release = nil
	}
}

// message returns message number n (1-based) if it exists and is not marked
// deleted, or the reply to send instead.
func (d *maildrop) message(n uint64) (*dropMessage, *reply) {
	if n < 1 || n > uint64(len(d.msgs)) {
		return nil, &replyNoSuchMessage
	}
	m := &d.msgs[n-1]
	if m.deleted {
		return nil, &replyMessageDeleted
	}
	return m, nil
}

// size returns the octet count of m: the size of its wire form, which is
// what imapd reports too (common/maildir, wire.go).
func (d *maildrop) size(m *dropMessage) (int64, error) {
	if m.size >= 0 {
		return m.size, nil
	}
	n, err := d.folder.WireSize(m.uid, m.key)
	if err != nil {
		return 0, fmt.Errorf("size of %s: %w", m.key, err)
	}
	m.size = n
	return n, nil
}

// stat returns the count and total size of the messages not marked
// deleted (RFC 1939 5, STAT). A message that vanished from disk since
// login counts with size 0 so that numbering stays as the client saw it.
func (d *maildrop) stat() (count int, total int64, err error) {
	for i := range d.msgs {
		m := &d.msgs[i]
		if m.deleted {
			continue
		}
		n, err := d.size(m)
		if errors.Is(err, maildir.ErrNoMessage) {
			m.size, n = 0, 0
		} else if err != nil {
			return 0, 0, err
		}
		count++
		total += n
	}
	return count, total, nil
}

// open opens the file of m for reading. The file must still be m's: if
// the index was recreated since login, m's UID names another message (see
// commit), and serving that under m's number and UIDL would make a client
// keep the wrong mail as m and never fetch m.
func (d *maildrop) open(m *dropMessage) (*os.File, error) {
	f, err := d.folder.Open(m.uid)
	if err != nil {
		return nil, err
	}
	if key, _, _ := strings.Cut(filepath.Base(f.Name()), ":"); key != m.key {
		f.Close()
		return nil, fmt.Errorf("UID %d is %s now, not %s: %w", m.uid, key, m.key, maildir.ErrUIDValidity)
	}
	return f, nil
}

// reset unmarks every message (RFC 1939 5, RSET).
func (d *maildrop) reset() {
	for i := range d.msgs {
		d.msgs[i].deleted = false
	}
}

// deleted returns the UIDs marked deleted.
func (d *maildrop) deletedUIDs() []uint32 {
	var uids []uint32
	for _, m := range d.msgs {
		if m.deleted {
			uids = append(uids, m.uid)
		}
	}
	return uids
}

// commit removes the messages marked deleted (RFC 1939 6, the UPDATE
// state) through the store, so that IMAP sessions see them expunged.
func (d *maildrop) commit() (removed int, err error) {
	uids := d.deletedUIDs()
	if len(uids) == 0 {
		return 0, nil
	}
	var keys []string
	for _, m := range d.msgs {
		if m.deleted {
			keys = append(keys, m.key)
		}
	}
	// The index may have been recreated since login, numbering other
	// messages with these UIDs: then nothing is removed (RFC 1939 6:
	// "-ERR some deleted messages not removed").
	// Each UID is removed only while it still names the file this
	// session listed and the client deleted.
	if err := d.folder.ExpungeKeys(d.validity, uids, keys); err != nil {
		return 0, fmt.Errorf("expunge %d messages: %w", len(uids), err)
	}
	return len(uids), nil
}

// remaining is the number of the session's messages left after the
// UPDATE state (RFC 1939 6, QUIT): those not marked deleted and still in
// the store, since another program may have removed some meanwhile. If
// the folder cannot be synced, the session's own count is given.
func (d *maildrop) remaining() int {
	snap, err := d.folder.Sync()
	n := 0
	for _, m := range d.msgs {
		if m.deleted {
			continue
		}
		if err == nil {
			if _, ok := snap.ByUID(m.uid); !ok {
				continue
			}
		}
		n++
	}
	return n
}
