package main

import (
	"errors"

	"github.com/emersion/go-imap/v2"

	"tern/common/maildir"
)

// destination opens the target folder of COPY, MOVE or APPEND. RFC 3501
// 6.4.7: a missing one gets [TRYCREATE] so the client can create it.
func (s *session) destination(name string) (*maildir.Folder, error) {
	f, err := s.mbox.Folder(name)
	if errors.Is(err, maildir.ErrNotFound) {
		return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeTryCreate,
			Text: "No such mailbox"}
	}
	if err != nil {
		return nil, storeError(s.log, "open destination", err)
	}
	return f, nil
}

// Copy is COPY (RFC 3501 6.4.7, RFC 4315 COPYUID).
func (s *session) Copy(numSet imap.NumSet, dest string) (*imap.CopyData, error) {
	v := s.sel
	uids, err := v.resolve(numSet)
	if err != nil {
		return nil, err
	}
	dst, err := s.destination(dest)
	if err != nil {
		return nil, err
	}
	if len(uids) == 0 {
		return nil, nil
	}
	// RFC 9208 6: a COPY over quota copies nothing.
	var size int64
	for _, uid := range uids {
		if m, ok := v.message(uid); ok {
			size += m.Size
		}
	}
	if err := s.checkQuota("copy", size); err != nil {
		return nil, err
	}
	src, dstUIDs, err := v.folder.Copy(uids, dst)
	if err != nil {
		return nil, storeError(s.log, "copy", err)
	}
	s.changed(dst.Dir())
	return s.copyData(dst, src, dstUIDs)
}

func (s *session) copyData(dst *maildir.Folder, src, dstUIDs []uint32) (*imap.CopyData, error) {
	if len(src) == 0 {
		return nil, nil
	}
	snap, err := dst.Sync()
	if err != nil {
		return nil, storeError(s.log, "copy", err)
	}
	data := &imap.CopyData{UIDValidity: snap.UIDValidity}
	for i := range src {
		data.SourceUIDs.AddNum(imap.UID(src[i]))
		data.DestUIDs.AddNum(imap.UID(dstUIDs[i]))
	}
	return data, nil
}

// Move is MOVE (RFC 6851): COPYUID first, then
// the EXPUNGEs of the moved messages.
func (s *session) Move(w *MoveWriter, numSet imap.NumSet, dest string) (err error) {
	v := s.sel
	defer v.endCommand(&err)
	if v.readOnly {
		return errReadOnly
	}
	uids, err := v.resolve(numSet)
	if err != nil {
		return err
	}
	dst, err := s.destination(dest)
	if err != nil {
		return err
	}
	if len(uids) == 0 {
		return nil
	}
	src, dstUIDs, err := v.folder.Move(uids, dst)
	if err != nil {
		return storeError(s.log, "move", err)
	}
	s.changed(dst.Dir())
	s.changed(v.folder.Dir())
	data, err := s.copyData(dst, src, dstUIDs)
	if err != nil {
		return err
	}
	if data != nil {
		if err := w.WriteCopyData(data); err != nil {
			return err
		}
	}
	if err := v.sync(); err != nil {
		return storeError(s.log, "move", err)
	}
	return v.reportExpunges(w)
}
