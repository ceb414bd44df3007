package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"tern/common/recipient"
)

// mailer sends the messages lmtpd itself passes on: Sieve redirects and
// vacation replies. Local addresses are delivered here directly, into
// INBOX, under the recipient's quota but without the recipient's Sieve
// script, so that two scripts can never bounce a message between them
// forever. Remote addresses need smtpd's queue, which lmtpd has no way to
// reach yet: they fail with errNoRelay, and the caller keeps the message
// (redirect) or logs (vacation).
type mailer struct {
	a *agent
}

// canRelay reports whether remote addresses can be sent to.
func (m *mailer) canRelay() bool { return false }

// forward sends the received message on, as it is, with the original
// envelope sender (RFC 5228 4.2).
func (m *mailer) forward(from, to string, sp *spooled) error {
	return m.deliverLocal(from, to, sp.size, sp.reader)
}

// send sends a message lmtpd made.
func (m *mailer) send(from, to string, msg []byte) error {
	b := msg
	return m.deliverLocal(from, to, int64(len(b)), func() io.Reader { return bytes.NewReader(b) })
}

func (m *mailer) deliverLocal(from, to string, size int64, msg func() io.Reader) error {
	res, err := m.a.rcpts.Resolve(to)
	if errors.Is(err, recipient.ErrNotLocal) {
		return fmt.Errorf("%w: %s", errNoRelay, to)
	}
	if err != nil {
		return err
	}
	if len(res.Remote) > 0 && !m.canRelay() {
		return fmt.Errorf("%w: %s leads to %v", errNoRelay, to, res.Remote)
	}
	for _, t := range res.Local {
		mb, err := m.a.mailbox(t.User)
		if err != nil {
			return err
		}
		if err := m.a.checkQuota(t.User, mb, size); err != nil {
			return err
		}
		key, err := m.a.store(mb, inbox, nil, from, t.User, msg)
		if err != nil {
			return err
		}
		m.a.log.Info("delivered", "event", "delivered", "user", t.User, "from", from, "folder", inbox, "key", key, "via", "lmtpd")
	}
	return nil
}
