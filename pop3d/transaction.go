package main

import (
	"bufio"
	"errors"
	"fmt"
	"strconv"

	"tern/common/maildir"
	"tern/common/maillog"
)

// Handlers of the TRANSACTION state (RFC 1939 5, 7).

// replyRemoved answers a command on a message that another session (IMAP)
// removed after this one's login.
var replyRemoved = errReply(codeNone, "message was removed by another session")

// replyStoreFailed answers when the store fails; the detail goes to the log.
var replyStoreFailed = errReply(codeSysTemp, "cannot read the maildrop now, try again later")

// messageArg parses the message-number argument of LIST, UIDL, RETR, TOP
// and DELE.
func (s *session) messageArg(arg string) (*dropMessage, uint64, *reply) {
	n, ok := parseNumber(arg)
	if !ok {
		return nil, 0, &replySyntax
	}
	m, r := s.drop.message(n)
	return m, n, r
}

// sizeOf returns the octet count of m; a message removed since login
// counts as 0 so that the listing stays as the client first saw it.
func (s *session) sizeOf(m *dropMessage) (int64, error) {
	n, err := s.drop.size(m)
	if errors.Is(err, maildir.ErrNoMessage) {
		m.size = 0
		return 0, nil
	}
	return n, err
}

func (s *session) storeFailed(what string, err error) reply {
	s.log.Error(what, "user", s.address, "err", err)
	return replyStoreFailed
}

// cmdStat: RFC 1939 5, "+OK nn mm" with the count and total size of the
// messages not marked deleted.
func (s *session) cmdStat(c command) (reply, error) {
	if _, ok := c.args(0, 0); !ok {
		return replySyntax, nil
	}
	count, total, err := s.drop.stat()
	if err != nil {
		return s.storeFailed("stat", err), nil
	}
	return okReply("%d %d", count, total), nil
}

// cmdList: RFC 1939 5, the scan listing of one message or of all messages
// not marked deleted.
func (s *session) cmdList(c command) (reply, error) {
	args, ok := c.args(0, 1)
	if !ok {
		return replySyntax, nil
	}
	if len(args) == 1 {
		m, n, r := s.messageArg(args[0])
		if r != nil {
			return *r, nil
		}
		size, err := s.sizeOf(m)
		if err != nil {
			return s.storeFailed("list", err), nil
		}
		return okReply("%d %d", n, size), nil
	}
	count, total, err := s.drop.stat()
	if err != nil {
		return s.storeFailed("list", err), nil
	}
	lines := make([]string, 0, count)
	for i := range s.drop.msgs {
		m := &s.drop.msgs[i]
		if m.deleted {
			continue
		}
		lines = append(lines, strconv.Itoa(i+1)+" "+strconv.FormatInt(m.size, 10))
	}
	return reply{ok: true, text: fmt.Sprintf("%d messages (%d octets)", count, total), lines: lines, multi: true}, nil
}

// cmdUidl: RFC 1939 7, the unique-id listing of one message or of all
// messages not marked deleted.
func (s *session) cmdUidl(c command) (reply, error) {
	args, ok := c.args(0, 1)
	if !ok {
		return replySyntax, nil
	}
	if len(args) == 1 {
		m, n, r := s.messageArg(args[0])
		if r != nil {
			return *r, nil
		}
		return okReply("%d %s", n, m.uidl), nil
	}
	lines := make([]string, 0, len(s.drop.msgs))
	for i, m := range s.drop.msgs {
		if !m.deleted {
			lines = append(lines, strconv.Itoa(i+1)+" "+m.uidl)
		}
	}
	return reply{ok: true, text: "unique-id listing follows", lines: lines, multi: true}, nil
}

// cmdRetr: RFC 1939 5, the whole message. It leaves \Seen alone unless
// pop3d.mark_seen is set, so that POP3 downloads do not change what IMAP
// clients show as unread.
func (s *session) cmdRetr(c command) (reply, error) {
	args, ok := c.args(1, 1)
	if !ok {
		return replySyntax, nil
	}
	m, _, r := s.messageArg(args[0])
	if r != nil {
		return *r, nil
	}
	return s.sendMessage(m, -1)
}

// cmdTop: RFC 1939 7, the header and the first n lines of the body. It
// never changes flags.
func (s *session) cmdTop(c command) (reply, error) {
	args, ok := c.args(2, 2)
	if !ok {
		return replySyntax, nil
	}
	m, _, r := s.messageArg(args[0])
	if r != nil {
		return *r, nil
	}
	lines, ok := parseNumber(args[1])
	if !ok || lines > uint64(maxTopLines) {
		return replySyntax, nil
	}
	return s.sendMessage(m, int(lines))
}

// maxTopLines caps the line count of TOP so it fits an int; a larger count
// would mean the whole message anyway.
const maxTopLines = 1<<31 - 1

// sendMessage opens m and returns a reply that streams it: the whole
// message when bodyLines < 0, as for RETR, or as TOP asks.
func (s *session) sendMessage(m *dropMessage, bodyLines int) (reply, error) {
	f, err := s.drop.open(m)
	if errors.Is(err, maildir.ErrNoMessage) {
		return replyRemoved, nil
	}
	if err != nil {
		return s.storeFailed("open message", err), nil
	}
	text := "message follows"
	if bodyLines < 0 {
		size, err := s.drop.size(m)
		if err != nil {
			f.Close()
			if errors.Is(err, maildir.ErrNoMessage) {
				return replyRemoved, nil
			}
			return s.storeFailed("size message", err), nil
		}
		text = fmt.Sprintf("%d octets", size)
	}
	return reply{ok: true, text: text, body: func(w *bufio.Writer) error {
		defer f.Close()
		// The message is read in its wire form, the one imapd serves
		// and whose size LIST reports; copyMessage byte-stuffs it.
		wire := maildir.NewWireReader(f)
		defer wire.Close()
		if s.fileReader == nil {
			s.fileReader = bufio.NewReaderSize(wire, 64<<10)
		} else {
			s.fileReader.Reset(wire)
		}
		err := copyMessage(w, s.fileReader, bodyLines)
		s.fileReader.Reset(nil)
		if err != nil {
			return err
		}
		if bodyLines < 0 {
			s.retrieved++
			if s.srv.options().markSeen {
				s.markSeen(m)
			}
		}
		return nil
	}}, nil
}

// markSeen sets \Seen on a retrieved message (pop3d.mark_seen). A failure
// is logged: the client has its message, which is what matters.
func (s *session) markSeen(m *dropMessage) {
	_, _, err := s.drop.folder.SetFlags([]uint32{m.uid}, maildir.FlagsAdd, []string{`\Seen`}, 0)
	if err != nil {
		s.log.Warn("mark seen", "user", s.address, "uid", m.uid, "err", err)
	}
}

// cmdDele: RFC 1939 5, marks a message deleted. Nothing is removed before
// QUIT (RFC 1939 6).
func (s *session) cmdDele(c command) (reply, error) {
	args, ok := c.args(1, 1)
	if !ok {
		return replySyntax, nil
	}
	m, n, r := s.messageArg(args[0])
	if r != nil {
		return *r, nil
	}
	m.deleted = true
	return okReply("message %d deleted", n), nil
}

// cmdNoop: RFC 1939 5.
func (s *session) cmdNoop(c command) (reply, error) {
	if _, ok := c.args(0, 0); !ok {
		return replySyntax, nil
	}
	return okReply(""), nil
}

// cmdRset: RFC 1939 5, unmarks every message marked deleted.
func (s *session) cmdRset(c command) (reply, error) {
	if _, ok := c.args(0, 0); !ok {
		return replySyntax, nil
	}
	s.drop.reset()
	return okReply("maildrop has %d messages", len(s.drop.msgs)), nil
}

// cmdQuit ends the session (RFC 1939 4, 6). From TRANSACTION it enters the
// UPDATE state: the messages marked deleted are removed through the store,
// so IMAP sessions see them expunged, and the lock is released.
func (s *session) cmdQuit(c command) (reply, error) {
	if _, ok := c.args(0, 0); !ok {
		return replySyntax, nil
	}
	if s.state == stateAuthorization {
		return reply{ok: true, text: s.srv.hostname + " POP3 server signing off", quit: true}, nil
	}
	s.state = stateUpdate
	removed, err := s.drop.commit()
	left := s.drop.remaining()
	s.drop.close()
	s.drop = nil
	maillog.Logout(s.log, s.address)
	s.log.Debug("update", "user", s.address, "retrieved", s.retrieved, "deleted", removed)
	if err != nil {
		s.log.Error("update", "user", s.address, "err", err)
		// RFC 1939 6: "-ERR some deleted messages not removed".
		return reply{code: codeSysTemp, text: "some deleted messages not removed", quit: true}, nil
	}
	return reply{ok: true, text: fmt.Sprintf("%s POP3 server signing off (%d messages left)", s.srv.hostname, left), quit: true}, nil
}
