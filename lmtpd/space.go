package main

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/emersion/go-smtp"

	"tern/common/config"
	"tern/common/maildir"
)

// replyNoSpace is the answer when a Maildir's file system is below its
// reserve or full: RFC 5321 4.2.2 452 and RFC 3463 3.5 X.3.1 (mail system
// full). It is temporary, so the sender keeps the message and retries.
var replyNoSpace = &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 3, 1},
	Message: "Insufficient system storage, try again later"}

// isNoSpace reports whether err means a full file system: the reserve of
// [storage], or the kernel's ENOSPC and EDQUOT once the reserve is gone.
func isNoSpace(err error) bool {
	return errors.Is(err, maildir.ErrNoSpace) || errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// checkSpace refuses a recipient while the file system of any of its
// users' Maildirs, or of the spool, is below the [storage] reserve. It runs
// at RCPT and again before each copy is written, so a message is refused
// before anything is written rather than cut short by a full disk.
func (a *agent) checkSpace(users ...string) error {
	s := a.cfg().Storage
	if err := maildir.CheckSpace(a.spoolDir, int64(s.MinFreeSpace), s.MinFreeInodes); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	for _, u := range users {
		root, err := config.Expand(a.cfg().Maildir, u)
		if err != nil {
			return err
		}
		if err := maildir.CheckSpace(root, int64(s.MinFreeSpace), s.MinFreeInodes); err != nil {
			return fmt.Errorf("maildir of %s: %w", u, err)
		}
	}
	return nil
}
