package main

import (
	"github.com/emersion/go-imap/v2"

	"tern/common/maildir"
)

// Store is STORE (RFC 3501 6.4.6).
func (s *session) Store(w *FetchWriter, numSet imap.NumSet, flags *imap.StoreFlags, options *imap.StoreOptions) (err error) {
	v := s.sel
	defer v.endCommand(&err)
	if v.readOnly {
		return errReadOnly
	}
	uids, err := v.resolve(numSet)
	if err != nil {
		return err
	}
	if len(uids) == 0 {
		return nil
	}
	var op maildir.FlagOp
	switch flags.Op {
	case imap.StoreFlagsSet:
		op = maildir.FlagsSet
	case imap.StoreFlagsAdd:
		op = maildir.FlagsAdd
	case imap.StoreFlagsDel:
		op = maildir.FlagsRemove
	}
	changed, _, err := v.folder.SetFlags(uids, op, storeFlags(flags.Flags), options.UnchangedSince)
	if err != nil {
		return storeError(s.log, "store", err)
	}
	if len(changed) > 0 {
		s.changed(v.folder.Dir())
	}
	if err := v.sync(); err != nil {
		return storeError(s.log, "store", err)
	}
	// RFC 3501 6.4.6: without .SILENT the new flags of each message come
	// back as FETCH; messages whose flags did not change get them too.
	byUID := make(map[uint32]maildir.Message, len(changed))
	for _, m := range changed {
		byUID[m.UID] = m
		v.markTold(m)
	}
	if flags.Silent {
		return nil
	}
	for _, uid := range uids {
		m, ok := byUID[uid]
		if !ok {
			cur, found := v.message(uid)
			if !found {
				continue
			}
			m = *cur
		}
		seq := v.seqOf(uid)
		if seq == 0 {
			continue
		}
		// A keyword new to the client is announced before the FETCH
		// that carries it (flags.go).
		s.announceFlags(m.Flags)
		rw := w.CreateMessage(seq)
		rw.WriteUID(imap.UID(uid))
		rw.WriteFlags(v.withRecent(uid, imapFlags(m.Flags)))
		if err := rw.Close(); err != nil {
			return err
		}
	}
	return nil
}
