package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"tern/common/maillog"
	"tern/common/recipient"
	"tern/common/submit"
)

// mailer sends the messages lmtpd passes on: alias targets on other
// domains, Sieve redirects and vacation replies.
//
// Local addresses are delivered here directly, into INBOX, under the
// recipient's quota but without the recipient's Sieve script, so that two
// scripts can never bounce a message between them forever. Remote
// addresses go to smtpd's queue through its local submission socket
// (smtpd.local_submit), which is what sendmail(1) uses too: smtpd answers
// 250 only once the message is durable in its queue, and it retries and
// bounces from there. lmtpd never writes the queue itself, so the queue
// keeps a single writer and lmtpd needs no rights on it. Setting the
// envelope sender there needs lmtpd's Unix user to be trusted by smtpd
// (root, smtpd's own user, or smtpd.trusted_users).
type mailer struct {
	a *agent
}

// submitTimeout bounds one hand-over to smtpd's queue.
const submitTimeout = 2 * time.Minute

// canRelay reports whether remote addresses can be sent to.
func (m *mailer) canRelay() bool { return m.a.cfg().SMTPD.LocalSubmit != "" }

// forward sends the received message on, as it is, with the original
// envelope sender (RFC 5228 4.2).
func (m *mailer) forward(from, to string, sp *spooled) error {
	return m.deliver(from, to, sp.size, sp.reader)
}

// send sends a message lmtpd made.
func (m *mailer) send(from, to string, msg []byte) error {
	return m.deliver(from, to, int64(len(msg)), func() io.Reader { return bytes.NewReader(msg) })
}

// deliver hands one message to one address, local or remote.
func (m *mailer) deliver(from, to string, size int64, msg func() io.Reader) error {
	res, err := m.a.rcpts.Resolve(to)
	if errors.Is(err, recipient.ErrNotLocal) {
		return m.submit(from, []string{to}, msg)
	}
	if err != nil {
		return err
	}
	if err := m.deliverLocal(from, res.Local, size, msg); err != nil {
		return err
	}
	if len(res.Remote) > 0 {
		return m.submit(from, res.Remote, msg)
	}
	return nil
}

func (m *mailer) deliverLocal(from string, targets []recipient.Target, size int64, msg func() io.Reader) error {
	for _, t := range targets {
		mb, err := m.a.mailbox(t.User)
		if err != nil {
			return err
		}
		if err := m.a.checkQuota(t.User, mb, size); err != nil {
			return err
		}
		start := time.Now()
		key, err := m.a.store(mb, inbox, nil, from, t.User, msg)
		if err != nil {
			return err
		}
		log := m.a.log.With("user", t.User)
		maillog.Delivered(log, maillog.Msg{From: from, To: t.User, Via: "maildir", Folder: inbox}, time.Since(start))
		log.Debug("stored", "folder", inbox, "key", key)
	}
	return nil
}

// submit hands a message for remote recipients to smtpd's queue. It
// returns nil only once smtpd has answered 250 to the data, that is once
// the message is durable in the queue.
func (m *mailer) submit(from string, to []string, msg func() io.Reader) error {
	if !m.canRelay() {
		return fmt.Errorf("%w: %v", errNoRelay, to)
	}
	c := &submit.Client{Addr: m.a.cfg().SMTPD.LocalSubmit, Hello: m.a.cfg().Hostname, Timeout: submitTimeout}
	err := c.Send(context.Background(), &submit.Message{From: from, To: to, Data: msg()})
	if errors.Is(err, submit.ErrUnreachable) {
		return fmt.Errorf("%w: %v", errNoRelay, err)
	}
	if err != nil {
		return fmt.Errorf("submit: %w", err)
	}
	maillog.Relayed(m.a.log, from, strings.Join(to, ","))
	return nil
}
