package main

import (
	"time"

	"github.com/emersion/go-imap/v2"
)

// Append stores an APPENDed message (RFC 3501 6.3.11, RFC 4315
// APPENDUID). The reader has already refused a literal larger than
// AppendLimit with NO [TOOBIG] (RFC 7889).
func (s *session) Append(name string, r imap.LiteralReader, options *imap.AppendOptions) (*imap.AppendData, error) {
	dst, err := s.destination(name)
	if err != nil {
		return nil, err
	}
	if err := s.checkSpace(dst.Dir()); err != nil {
		return nil, err
	}
	if err := s.checkQuota("append", r.Size()); err != nil { // RFC 9208 6
		return nil, err
	}
	date := options.Time
	if date.IsZero() {
		date = time.Now()
	}
	// RFC 3516 4.3: binary parts are stored re-encoded (binaryappend.go).
	body, stop := appendReader(r)
	uid, err := dst.Append(body, storeFlags(options.Flags), date)
	stop()
	if err != nil {
		return nil, storeError(s.log, "append", err)
	}
	s.changed(dst.Dir())
	snap, err := dst.Sync()
	if err != nil {
		return nil, storeError(s.log, "append", err)
	}
	return &imap.AppendData{UID: imap.UID(uid), UIDValidity: snap.UIDValidity}, nil
}
