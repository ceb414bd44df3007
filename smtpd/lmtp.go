package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/emersion/go-smtp"

	"tern/common/listen"
	"tern/common/queue"
)

// deliverLocal hands the recipients idx of e to lmtpd in one LMTP
// transaction and records each one's result in e: 2xx delivered, 5xx
// failed, 4xx or no answer stays pending (RFC 2033 4.2: one reply per
// recipient after the data).
func (rn *runner) deliverLocal(e *queue.Envelope, idx []int, r io.Reader) {
	cfg := rn.srv.cfg
	record := func(i int, code int, reply string) {
		rc := &e.Recipients[i]
		rc.AddAttempt(queue.Attempt{Time: time.Now(), Host: "lmtp", Code: code, Reply: reply})
		switch {
		case code >= 200 && code < 300:
			rc.State = queue.Delivered
			rn.srv.log.Info("delivered", "event", "delivered", "id", e.ID, "to", rc.Addr, "via", "lmtp")
		case code >= 500:
			rc.State = queue.Failed
			rn.srv.log.Info("delivery failed", "event", "bounced", "id", e.ID, "to", rc.Addr, "via", "lmtp", "reply", reply)
		default:
			rn.srv.log.Info("delivery deferred", "event", "deferred", "id", e.ID, "to", rc.Addr, "via", "lmtp", "reply", reply)
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

	ctx, cancel := context.WithTimeout(context.Background(), cfg.SMTPD.ConnectTimeout.D())
	conn, err := listen.Dial(ctx, cfg.SMTPD.LMTP)
	cancel()
	if err != nil {
		fail(fmt.Errorf("connect to lmtpd: %w", err))
		return
	}
	c := smtp.NewClientLMTP(conn)
	defer c.Close()
	if err := c.Hello(cfg.Hostname); err != nil {
		fail(err)
		return
	}
	opts := &smtp.MailOptions{Body: smtp.BodyType(e.Body), UTF8: e.UTF8}
	if err := c.Mail(e.From, opts); err != nil {
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
		c.Quit()
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
	errors.As(err, &perRcpt)
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
	c.Quit()
}
