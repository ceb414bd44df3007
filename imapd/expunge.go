package main

import (
	"github.com/emersion/go-imap/v2"
)

// Expunge is EXPUNGE (RFC 3501 6.4.3), UID
// EXPUNGE (RFC 4315 2.1) and the silent expunge of CLOSE (RFC 3501
// 6.4.2), for which the writer discards.
func (s *session) Expunge(w *ExpungeWriter, uids *imap.UIDSet) (err error) {
	v := s.sel
	defer v.endCommand(&err)
	if v.readOnly {
		// RFC 3501 6.4.2: CLOSE of a mailbox opened with EXAMINE expunges
		// nothing; this serves CLOSE too, so EXPUNGE is
		// likewise a no-op rather than an error.
		return nil
	}
	if err := v.sync(); err != nil {
		return storeError(s.log, "expunge", err)
	}
	var doomed []uint32
	var keys []string
	for _, m := range v.snap.Messages {
		if !hasFlag(m.Flags, imap.FlagDeleted) {
			continue
		}
		if uids != nil && !uids.Contains(imap.UID(m.UID)) {
			continue
		}
		doomed = append(doomed, m.UID)
		keys = append(keys, m.Key)
	}
	if len(doomed) > 0 {
		// The UIDs are the snapshot's: under another UIDVALIDITY (the
		// index recreated since v.sync) they name other messages, and
		// each is removed only while it names the file the snapshot
		// showed with \Deleted.
		if err := v.folder.ExpungeKeys(v.snap.UIDValidity, doomed, keys); err != nil {
			return storeError(s.log, "expunge", err)
		}
		s.changed(v.folder.Dir())
	}
	if err := v.sync(); err != nil {
		return storeError(s.log, "expunge", err)
	}
	// Whatever is gone, whoever removed it, is reported now.
	return v.reportExpunges(w)
}
