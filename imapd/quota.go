package main

import (
	"errors"

	"github.com/emersion/go-imap/v2"

	"tern/common/maillog"
	"tern/common/quota"
	"tern/imapd/wire"
)

// QUOTA (RFC 9208) with the one resource tern limits, STORAGE
// (QUOTA=RES-STORAGE, RFC 9208 5.1). A user has one quota root, "", over
// the whole Maildir; its limit and usage are common/quota's, the rule
// lmtpd refuses deliveries by, so a client shows exactly the room that
// delivery leaves. Quotas are set in the users file, so SETQUOTA is
// refused and QUOTASET is not offered.

func init() {
	commands["GETQUOTA"] = commandSpec{authState, (*session).cmdGetQuota}
	commands["GETQUOTAROOT"] = commandSpec{authState, (*session).cmdGetQuotaRoot}
	commands["SETQUOTA"] = commandSpec{authState, (*session).cmdSetQuota}
}

// quotaRoot is the name of a user's only quota root.
const quotaRoot = ""

// errOverQuota: RFC 9208 6, APPEND or COPY that would exceed the limit.
var errOverQuota = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeOverQuota,
	Text: "Mailbox over quota"}

// quotaLimit is the user's storage limit in bytes, 0 for none.
func (s *session) quotaLimit() int64 {
	return quota.Limit(s.srv.users, int64(s.srv.cfg().LMTPD.Quota), s.user, s.log)
}

// kib is a byte count in STORAGE's units of 1024 octets (RFC 9208 5.1),
// rounded up, so that a non-empty mailbox never shows 0 and a full one
// shows its limit.
func kib(n int64) int64 { return (n + 1023) / 1024 }

// writeQuota writes the QUOTA response of the root (RFC 9208 4.3.1).
func (s *session) writeQuota(limit int64) error {
	u, err := quota.Get(s.mbox, limit)
	if err != nil {
		return storeError(s.log, "quota", err)
	}
	s.enc.Atom("* QUOTA ").String(quotaRoot).Atom(" (STORAGE ").Number64(kib(u.Used)).SP().Number64(kib(u.Limit)).Atom(")").CRLF()
	return nil
}

// cmdGetQuota: RFC 9208 4.2. Without a limit the user has no quota root.
func (s *session) cmdGetQuota(c *wire.Command, p *wire.Parser) (reply, error) {
	if !p.SP() {
		return reply{}, wire.Bad("GETQUOTA needs a quota root")
	}
	root, err := p.AString()
	if err != nil {
		return reply{}, err
	}
	if err := p.End(); err != nil {
		return reply{}, err
	}
	limit := s.quotaLimit()
	if root != quotaRoot || limit <= 0 {
		return reply{}, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeNonExistent,
			Text: "No such quota root"}
	}
	return reply{}, s.writeQuota(limit)
}

// cmdGetQuotaRoot: RFC 9208 4.3; every mailbox is under the one root.
func (s *session) cmdGetQuotaRoot(c *wire.Command, p *wire.Parser) (reply, error) {
	if !p.SP() {
		return reply{}, wire.Bad("GETQUOTAROOT needs a mailbox")
	}
	name, err := p.Mailbox()
	if err != nil {
		return reply{}, err
	}
	if err := p.End(); err != nil {
		return reply{}, err
	}
	if _, err := s.mbox.Folder(name); err != nil {
		return reply{}, storeError(s.log, "getquotaroot", err)
	}
	limit := s.quotaLimit()
	s.enc.Atom("* QUOTAROOT ").Mailbox(name)
	if limit <= 0 {
		s.enc.CRLF()
		return reply{}, nil
	}
	s.enc.SP().String(quotaRoot).CRLF()
	return reply{}, s.writeQuota(limit)
}

// cmdSetQuota: RFC 9208 4.1; limits come from the users file.
func (s *session) cmdSetQuota(c *wire.Command, p *wire.Parser) (reply, error) {
	return reply{}, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeNoPerm,
		Text: "Quotas are set by the administrator"}
}

// checkQuota refuses an APPEND or COPY of size bytes that would take the
// user over quota (RFC 9208 6), by lmtpd's rule. MOVE stays within the
// quota root and is never refused.
func (s *session) checkQuota(stage string, size int64) error {
	err := quota.Check(s.mbox, s.user, s.quotaLimit(), size)
	if errors.Is(err, quota.ErrOver) {
		maillog.Rejected(s.log, maillog.Rejection{Stage: stage, Reason: err.Error()})
		return errOverQuota
	}
	if err != nil {
		return storeError(s.log, stage, err)
	}
	return nil
}
