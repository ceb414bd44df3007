package main

import (
	"github.com/emersion/go-imap/v2"

	"tern/common/maildir"
)

// Store is STORE (RFC 3501 6.4.6); options (nil: none) carry RFC 7162
// 3.1.3's UNCHANGEDSINCE, and modified lists the UIDs that failed it.
func (s *session) Store(w *FetchWriter, numSet imap.NumSet, flags *imap.StoreFlags, options *imap.StoreOptions) (modified []uint32, err error) {
	v := s.sel
	defer v.endCommand(&err)
	if v.readOnly {
		return nil, errReadOnly
	}
	uids, err := v.resolve(numSet)
	if err != nil {
		return nil, err
	}
	if len(uids) == 0 {
		return nil, nil
	}
	var unchangedSince uint64
	if options != nil {
		if options.UnchangedSince == 0 {
			// RFC 7162 3.1.3: UNCHANGEDSINCE 0 fails for every
			// message, since every modseq is above 0.
			for _, uid := range uids {
				if _, ok := v.message(uid); ok {
					modified = append(modified, uid)
				}
			}
			return modified, nil
		}
		unchangedSince = options.UnchangedSince
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
	changed, failed, err := v.folder.SetFlags(uids, op, storeFlags(flags.Flags), unchangedSince)
	if err != nil {
		return nil, storeError(s.log, "store", err)
	}
	if len(changed) > 0 {
		s.changed(v.folder.Dir())
	}
	if err := v.sync(); err != nil {
		return nil, storeError(s.log, "store", err)
	}
	// RFC 3501 6.4.6: without .SILENT the new flags of each message come
	// back as FETCH; messages whose flags did not change get them too.
	byUID := make(map[uint32]maildir.Message, len(changed))
	for _, m := range changed {
		byUID[m.UID] = m
		v.markTold(m)
	}
	isFailed := make(map[uint32]bool, len(failed))
	for _, uid := range failed {
		isFailed[uid] = true
	}
	if flags.Silent {
		if s.condstore {
			// RFC 7162 3.1.3: even .SILENT answers the new MODSEQ of
			// each message changed.
			for _, m := range changed {
				if seq := v.seqOf(m.UID); seq != 0 {
					rw := w.CreateMessage(seq)
					rw.WriteUID(imap.UID(m.UID))
					rw.WriteModSeq(m.ModSeq)
					if err := rw.Close(); err != nil {
						return nil, err
					}
				}
			}
		}
		return failed, nil
	}
	for _, uid := range uids {
		if isFailed[uid] {
			continue
		}
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
		if s.condstore {
			rw.WriteModSeq(m.ModSeq) // RFC 7162 3.1.3
		}
		if err := rw.Close(); err != nil {
			return nil, err
		}
	}
	return failed, nil
}
