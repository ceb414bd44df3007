package main

import (
	"errors"
	"log/slog"

	"github.com/emersion/go-imap/v2"

	"tern/common/maildir"
)

// storeError converts an error of the store into the reply a client sees.
// This is the one place where that happens: known conditions get their
// response code (RFC 5530), anything else is logged with its detail and the
// client gets a generic NO [SERVERBUG] with no internals.
func storeError(log *slog.Logger, what string, err error) error {
	if err == nil {
		return nil
	}
	var ie *imap.Error
	if errors.As(err, &ie) {
		return ie
	}
	no := func(code imap.ResponseCode, text string) error {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: code, Text: text}
	}
	switch {
	case errors.Is(err, maildir.ErrNotFound):
		return no(imap.ResponseCodeNonExistent, "No such mailbox")
	case errors.Is(err, maildir.ErrExists):
		return no(imap.ResponseCodeAlreadyExists, "Mailbox already exists")
	case errors.Is(err, maildir.ErrInvalidName):
		return no(imap.ResponseCodeCannot, "Invalid mailbox name")
	case errors.Is(err, maildir.ErrHasChildren):
		// RFC 3501 6.3.4: a mailbox with inferiors cannot simply vanish.
		return no(imap.ResponseCodeHasChildren, "Mailbox has children; delete them first")
	case errors.Is(err, maildir.ErrNoMessage):
		return no("EXPUNGEISSUED", "Message was expunged")
	case errors.Is(err, maildir.ErrInvalidFlag):
		return &imap.Error{Type: imap.StatusResponseTypeBad, Code: imap.ResponseCodeClientBug, Text: "Invalid flag"}
	case errors.Is(err, maildir.ErrLocked):
		return no(imap.ResponseCodeInUse, "Mailbox is in use, try again")
	case errors.Is(err, errMailboxGone):
		return &imap.Error{Type: imap.StatusResponseTypeBye, Text: "Selected mailbox was deleted or recreated"}
	}
	log.Error("store failed", "op", what, "err", err)
	return no(imap.ResponseCodeServerBug, "Internal error, try again later")
}

// errReadOnly answers a change attempted in a mailbox opened with EXAMINE
// (RFC 3501 6.3.2).
var errReadOnly = &imap.Error{
	Type: imap.StatusResponseTypeNo,
	Code: imap.ResponseCodeCannot,
	Text: "Mailbox is read-only",
}

// flagCache converts the flag lists of one command's messages. The store
// shares one slice among all messages with the same flags, so a mailbox
// has only a handful of distinct lists and each is converted once.
type flagCache map[*string][]imap.Flag

func (c flagCache) convert(flags []string) []imap.Flag {
	if len(flags) == 0 {
		return []imap.Flag{}
	}
	if out, ok := c[&flags[0]]; ok && len(out) == len(flags) {
		return out
	}
	out := imapFlags(flags)
	c[&flags[0]] = out
	return out
}

// imapFlags converts the store's flags to the protocol's.
func imapFlags(flags []string) []imap.Flag {
	out := make([]imap.Flag, len(flags))
	for i, f := range flags {
		out[i] = imap.Flag(f)
	}
	return out
}

// storeFlags converts flags from a command to the store's, dropping \Recent,
// which RFC 3501 2.3.2 says a client cannot set and RFC 9051 removed.
func storeFlags(flags []imap.Flag) []string {
	out := make([]string, 0, len(flags))
	for _, f := range flags {
		if imap.Flag(f) == "\\Recent" {
			continue
		}
		out = append(out, string(f))
	}
	return out
}
