package maildir

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Object identifiers (RFC 8474 OBJECTID).
//
// EMAILID: RFC 8474 5.1 asks that it identify the immutable content and stay
// the same when a message is moved, and allows it to stay the same when
// one is copied. A message's key (the unique part of its file name) never
// changes while it lives in a folder, and MOVE, by tern or by another
// Maildir program that renames the file, keeps it; so the EMAILID is
// derived from the key: "M" and 24 hex digits of its SHA-256. It needs no
// storage, survives a lost index, and is the same in every process. A COPY
// (and a MOVE whose key was taken in the destination) gives the new file a
// new key: there the source's EMAILID is kept in the index line
// (entry.emailID), so a copy shares its original's EMAILID until the
// index is rebuilt, after which it has its own.
//
// MAILBOXID: RFC 8474 4.1: stable across RENAME, never reused for a
// mailbox deleted and created again. It is a random id kept in
// tern-mailboxid inside the folder's directory, which a RENAME carries
// along and a DELETE removes; it is created on first use.

// ValidObjectID reports whether s is an RFC 8474 objectid:
// 1*255(ALPHA / DIGIT / "_" / "-").
func ValidObjectID(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// emailIDFromKey is the EMAILID of a message file whose key is key. RFC
// 8474 5.1 recommends an id that starts with a letter and does not reveal
// anything: a digest of the key says nothing of it.
func emailIDFromKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return "M" + hex.EncodeToString(sum[:12])
}

// storedEmailID is what an index line keeps for a message with key that
// should have the EMAILID id: nothing when id is empty or the one derived
// from key anyway.
func storedEmailID(key, id string) string {
	if id == "" || !ValidObjectID(id) || id == emailIDFromKey(key) {
		return ""
	}
	return id
}

// EmailID is the message's RFC 8474 EMAILID.
func (m *Message) EmailID() string {
	if m.emailID != "" {
		return m.emailID
	}
	return emailIDFromKey(m.Key)
}

const mailboxIDName = "tern-mailboxid"

// MailboxID returns the folder's RFC 8474 MAILBOXID, creating it on first
// use. Two processes creating it at once agree: the id is written to a
// temporary file, fsynced, and linked to its name, which fails for all but
// the first; the others read the first one's.
func (f *Folder) MailboxID() (string, error) {
	p := filepath.Join(f.st.dir, mailboxIDName)
	for attempt := 0; attempt < 3; attempt++ {
		data, err := readFileNoFollow(p)
		if err == nil {
			if id := strings.TrimSpace(string(data)); ValidObjectID(id) {
				return id, nil
			}
			// Damaged: replaced below by a new id (a client that knew
			// the old one sees the folder as new, RFC 8474 4.1).
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				return "", fmt.Errorf("remove damaged %q: %w", p, err)
			}
		} else if !errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("read %q: %w", p, err)
		}
		var b [12]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", err
		}
		id := "F" + hex.EncodeToString(b[:])
		tmp := p + ".tmp." + id
		fh, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|noFollow, 0o600)
		if err != nil {
			return "", fmt.Errorf("create %q: %w", tmp, err)
		}
		_, err = fh.WriteString(id + "\n")
		if err == nil {
			err = fh.Sync()
		}
		if cerr := fh.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(tmp)
			return "", fmt.Errorf("write %q: %w", tmp, err)
		}
		err = os.Link(tmp, p)
		os.Remove(tmp)
		if errors.Is(err, os.ErrExist) {
			continue // another process was first: read its id
		}
		if err != nil {
			return "", fmt.Errorf("create %q: %w", p, err)
		}
		if err := syncDir(f.st.dir); err != nil {
			return "", err
		}
		return id, nil
	}
	return "", fmt.Errorf("create %q: gave up", p)
}
