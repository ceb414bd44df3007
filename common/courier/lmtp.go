package courier

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/emersion/go-smtp"

	"tern/common/maillog"
	"tern/common/queue"
)

// deliverLocal hands the recipients idx of e to lmtpd in one LMTP
// transaction, on a pooled connection, and records each one's result in
// e: 2xx delivered, 5xx failed, 4xx or no answer stays pending (RFC 2033
// 4.2: one reply per recipient after the data).
func (cr *Courier) deliverLocal(e *queue.Envelope, idx []int, r io.Reader) {
	record := func(i int, code int, reply string) {
		rc := &e.Recipients[i]
		rc.AddAttempt(queue.Attempt{Time: time.Now(), Host: "lmtp", Code: code, Reply: reply})
		switch {
		case code >= 200 && code < 300:
			rc.State = queue.Delivered
			maillog.Delivered(cr.log, maillog.Msg{ID: e.ID, From: e.From, To: rc.Addr, Via: "lmtp"}, deliveryDuration(e))
		case code >= 500:
			rc.State = queue.Failed
			maillog.Bounced(cr.log, maillog.Msg{ID: e.ID, From: e.From, To: rc.Addr, Via: "lmtp"}, reply)
		default:
			maillog.Deferred(cr.log, maillog.Msg{ID: e.ID, From: e.From, To: rc.Addr, Via: "lmtp"}, reply)
		}
	}
	fail := func(err error) {
		code, text := 0, err.Error()
		var se *smtp.SMTPError
		if errors.As(err, &se) {
			code, text = se.Code, replyText(se)
		}
		if code >= 500 {
			code = 451 // a session-level refusal is lmtpd's trouble, not the recipient's
		}
		for _, i := range idx {
			record(i, code, text)
		}
	}

	c, err := cr.lmtp.get()
	if err != nil {
		fail(err)
		return
	}
	// RFC 6531 3.4: a non-ASCII address travels only with SMTPUTF8, which
	// a message made here (a DSN) may not have been marked with. lmtpd
	// announces it; another LMTP server (smtpd.lmtp) may not, and then a
	// message that needs it is returned at once, as by SMTP (outbound.go).
	smtputf8, _ := c.Extension("SMTPUTF8")
	need := addressNeedsUTF8(e, idx)
	if !need.needed() && !smtputf8 && e.UTF8 {
		// Rare (lmtpd announces it), so the message is read into memory
		// to be looked at and then sent.
		msg, err := io.ReadAll(r)
		if err != nil {
			c.Close()
			fail(err)
			return
		}
		need, r = needsUTF8(e, idx, bytes.NewReader(msg)), bytes.NewReader(msg)
	}
	if need.needed() && !smtputf8 {
		for _, i := range idx {
			record(i, need.code, need.refused("lmtp").Error())
		}
		cr.lmtp.put(c) // nothing was sent on it
		return
	}
	opts := &smtp.MailOptions{Body: smtp.BodyType(e.Body), UTF8: smtputf8 && (e.UTF8 || need.needed())}
	err = c.Mail(e.From, opts)
	if err != nil && c.reused {
		// lmtpd may have closed a connection that waited in the pool
		// (its read timeout, or 421 at its shutdown). Nothing of the
		// message was sent yet, so a new connection is safe.
		c.Close()
		if c, err = cr.lmtp.dial(); err != nil {
			fail(err)
			return
		}
		err = c.Mail(e.From, opts)
	}
	// Only a connection whose transaction ended cleanly goes back to the
	// pool; on any other path it is closed.
	pooled := false
	defer func() {
		if !pooled {
			c.Close()
		}
	}()
	if err != nil {
		fail(err)
		return
	}
	var accepted []int
	for _, i := range idx {
		if err := c.Rcpt(e.Recipients[i].Addr, nil); err != nil {
			var se *smtp.SMTPError
			if errors.As(err, &se) {
				record(i, se.Code, replyText(se))
				continue
			}
			fail(err)
			return
		}
		accepted = append(accepted, i)
	}
	if len(accepted) == 0 {
		// RFC 5321 4.1.1.5: RSET ends the transaction, and the
		// connection is ready for the next message.
		if c.Reset() == nil {
			pooled = true
			cr.lmtp.put(c)
		}
		return
	}
	idx = accepted
	w, err := c.Data()
	if err != nil {
		fail(err)
		return
	}
	if _, err := io.Copy(w, r); err != nil {
		fail(fmt.Errorf("send to lmtpd: %w", err))
		return
	}
	resp, err := w.CloseWithLMTPResponse()
	var perRcpt smtp.LMTPDataError
	if err == nil || errors.As(err, &perRcpt) {
		// Every recipient was answered: the transaction is over.
		pooled = true
		cr.lmtp.put(c)
	}
	for _, i := range idx {
		addr := e.Recipients[i].Addr
		if ok := resp[addr]; ok != nil {
			record(i, 250, ok.StatusText)
		} else if se := perRcpt[addr]; se != nil {
			record(i, se.Code, replyText(se))
		} else {
			// No answer for this recipient: nothing is known to be
			// delivered, so it stays pending.
			record(i, 0, fmt.Sprintf("no answer from lmtpd: %v", err))
		}
	}
}

// DeliverLocal hands the recipients idx of e (all in local domains) to
// lmtpd now, records each one's result in e, and queues the "delivered"
// notices owed (RFC 3461 5.2.3). It is the receiver's direct path: smtpd
// answers 250 to a message every copy of which lmtpd took without
// queueing it at all, and queues what is still pending and calls Wake.
// data gives a fresh reader of the message each time it is called.
func (cr *Courier) DeliverLocal(e *queue.Envelope, idx []int, data func() io.Reader) {
	cr.deliverLocal(e, idx, data())
	cr.notifySuccess(e, appendDelivered(nil, e, idx, actionDelivered), data())
}

// Close closes the idle connections to lmtpd, once Run has returned.
func (cr *Courier) Close() { cr.lmtp.close() }
