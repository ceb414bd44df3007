package main

import (
	"errors"
	"fmt"

	"tern/common/maildir"
	"tern/common/quota"
)

// quotaFor returns the storage quota of a user in bytes, 0 for none: the
// rule shared with imapd's GETQUOTA (common/quota).
func (a *agent) quotaFor(user string) int64 {
	return quota.Limit(a.users, int64(a.cfg().LMTPD.Quota), user, a.log)
}

// checkQuota refuses a message that would take the user over quota.
func (a *agent) checkQuota(user string, mb *maildir.Mailbox, size int64) error {
	err := quota.Check(mb, user, a.quotaFor(user), size)
	if errors.Is(err, quota.ErrOver) {
		return fmt.Errorf("%w: %v", errOverQuota, err)
	}
	return err
}
