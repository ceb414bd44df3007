package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"tern/common/maillog"
	"tern/common/queue"
	"tern/common/trace"
)

// receive takes the message of a transaction: it writes the spool (Received
// header first, RFC 5321 4.4), hands local recipients to lmtpd,
// and queues whatever is not delivered yet. It returns nil (250) only when
// every recipient's copy is durable.
func (s *session) receive(r io.Reader) error {
	// A message no larger than smtpd.memory_buffer stays in memory: most
	// go to lmtpd at once, and only one that has to be queued is written
	// to the queue, durably, before its 250.
	s.srv.receiving.Add(1)
	defer s.srv.receiving.Add(-1) // after the spool is discarded or committed
	sp := s.srv.queue.NewBufferedSpool(int64(s.srv.cfg().SMTPD.MemoryBuffer))
	committed := false
	defer func() {
		if !committed {
			sp.Discard()
		}
	}()
	var err error
	var filtered filterResult
	if s.filtering() {
		filtered, err = s.receiveFiltered(sp, r)
	} else {
		err = s.copyMessage(sp, r, sp.ID())
	}
	if err != nil {
		var se *smtp.SMTPError
		if errors.As(err, &se) {
			maillog.Rejected(s.log, maillog.Rejection{Stage: "data", ID: sp.ID(), From: s.from, Code: se.Code, Reason: se.Message})
			return se
		}
		s.log.Error("receive message", "id", sp.ID(), "err", err)
		return replyLocalError
	}
	if filtered.discard {
		// A milter's discard: the client is told 250, nothing is kept.
		return nil
	}
	env := s.envelope()
	// The spool's id is the queue id if the message is queued; it keys
	// the mail log of a direct delivery to lmtpd too.
	env.ID = sp.ID()
	maillog.Received(s.log, sp.ID(), s.from, s.authUser, len(s.rcpts), sp.Size())
	if filtered.quarantine != "" {
		return s.quarantine(sp, env, filtered.quarantine, &committed)
	}

	// Local recipients go to lmtpd now; what it cannot take stays queued.
	var local []int
	remote := false
	for i := range env.Recipients {
		if s.rcpts[i].local {
			local = append(local, i)
		} else {
			remote = true
		}
	}
	if len(local) > 0 {
		// RFC 3461 5.2.3: with a "delivered" notice for NOTIFY=SUCCESS.
		s.srv.courier.DeliverLocal(env, local, sp.Reader)
	}
	if len(env.Pending()) == 0 && !hasFailed(env) {
		// Every copy is in its Maildir. The default text would say
		// "queued"; the id keys the mail log lines of this message.
		return &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: "OK: delivered as " + env.ID}
	}
	// A single-recipient failure can be told to the client directly
	// instead of bouncing later (no backscatter).
	if len(env.Recipients) == 1 && env.Recipients[0].State == queue.Failed {
		a, _ := env.Recipients[0].LastAttempt()
		return replyFromAttempt(a)
	}
	if !remote && len(env.Pending()) > 0 {
		// lmtpd could not take it just now: wait before asking again.
		env.Tries = 1
		env.NextAttempt = time.Now().Add(s.srv.cfg().SMTPD.LocalRetry.D())
	}
	if err := sp.Commit(env); err != nil {
		s.log.Error("queue message", "id", sp.ID(), "err", err)
		return replyLocalError
	}
	committed = true
	maillog.Queued(s.log, env.ID, len(env.Pending()))
	s.srv.courier.Wake()
	return &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: "OK: queued as " + env.ID}
}

func hasFailed(e *queue.Envelope) bool {
	for _, r := range e.Recipients {
		if r.State == queue.Failed {
			return true
		}
	}
	return false
}

// replyFromAttempt turns a permanent failure from lmtpd into our reply.
// RFC 3463 2: the enhanced status code lmtpd gave (recorded at the start
// of the reply text) stays the reply's code, not text after a 5.0.0.
func replyFromAttempt(a queue.Attempt) error {
	if a.Code >= 500 && a.Code < 600 {
		enh, text := smtp.EnhancedCodeNotSet, a.Reply
		first, rest, _ := strings.Cut(text, " ")
		if e, ok := parseEnhanced(first, a.Code/100); ok {
			enh, text = e, rest
		}
		return &smtp.SMTPError{Code: a.Code, EnhancedCode: enh, Message: "Delivery failed: " + trace.Reply(text)}
	}
	return replyLocalError
}

// envelope builds the queue envelope of the current transaction.
func (s *session) envelope() *queue.Envelope {
	e := &queue.Envelope{
		Arrival:  time.Now(),
		From:     s.from,
		Body:     string(s.mailOpts.Body),
		UTF8:     s.mailOpts.UTF8,
		Ret:      string(s.mailOpts.Return),
		EnvID:    s.mailOpts.EnvelopeID,
		AuthUser: s.authUser,
		Client:   s.ip,
		Helo:     s.conn.Hostname(),
	}
	// RFC 8689 4: REQUIRETLS travels with the message.
	e.RequireTLS = s.mailOpts.RequireTLS
	for _, r := range s.rcpts {
		qr := queue.Recipient{Addr: r.addr, State: queue.Pending}
		for _, n := range r.opts.Notify {
			qr.Notify = append(qr.Notify, string(n))
		}
		if r.opts.OriginalRecipient != "" {
			qr.ORcpt = string(r.opts.OriginalRecipientType) + ";" + r.opts.OriginalRecipient
		}
		e.Recipients = append(e.Recipients, qr)
	}
	return e
}

// copyMessage writes the Received header and the message to w, checking
// the header on the way: the Received count (loop detection) and, on
// submission, the Date and Message-ID fields to add (RFC 6409 8.1, 8.3).
func (s *session) copyMessage(w io.Writer, r io.Reader, id string) error {
	bw := bufio.NewWriter(w)
	trace := s.receivedHeader(id)
	if s.peer != nil {
		trace = s.localReceivedHeader(id)
	}
	if _, err := bw.WriteString(trace); err != nil {
		return err
	}
	br := bufio.NewReader(r)
	received, hasDate, hasMsgID, hasFrom := 0, false, false, false
	inHeader := true
	for inHeader {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A header line longer than the buffer: keep copying it.
			if _, werr := bw.Write(line); werr != nil {
				return werr
			}
			continue
		}
		if err != nil && err != io.EOF {
			return err
		}
		if len(line) == 0 && err == io.EOF {
			break
		}
		isField := len(line) > 0 && line[0] != ' ' && line[0] != '\t' && bytes.IndexByte(line, ':') > 0
		switch {
		case isField:
			name := strings.ToLower(strings.TrimSpace(string(line[:bytes.IndexByte(line, ':')])))
			switch name {
			case "received":
				received++
				if received >= s.srv.cfg().SMTPD.MaxReceivedHeaders {
					return replyLoop
				}
			case "date":
				hasDate = true
			case "message-id":
				hasMsgID = true
			case "from":
				hasFrom = true
			}
		case len(line) > 0 && (line[0] == ' ' || line[0] == '\t'):
			// A folded continuation of the previous field.
		default:
			// The empty line, or the first line that is not a field:
			// the header ends before it.
			inHeader = false
			if s.kind != kindMX {
				s.writeFixups(bw, hasDate, hasMsgID, hasFrom, id)
			}
		}
		if _, werr := bw.Write(line); werr != nil {
			return werr
		}
		if err == io.EOF {
			break
		}
	}
	if inHeader && s.kind != kindMX {
		s.writeFixups(bw, hasDate, hasMsgID, hasFrom, id)
	}
	if _, err := io.Copy(bw, br); err != nil {
		return err
	}
	return bw.Flush()
}

// writeFixups adds what RFC 6409 8 lets a submission server add.
// A message from the local submission socket also gets the From: field
// RFC 5322 3.6 requires, naming the envelope sender, when it has none
// (scripts often pipe a bare body into sendmail).
func (s *session) writeFixups(w *bufio.Writer, hasDate, hasMsgID, hasFrom bool, id string) {
	if !hasFrom && s.peer != nil {
		from := s.from
		if from == "" {
			from = "MAILER-DAEMON@" + s.srv.cfg().Hostname
		}
		fmt.Fprintf(w, "From: <%s>\r\n", trace.Comment(from))
	}
	if !hasDate {
		fmt.Fprintf(w, "Date: %s\r\n", time.Now().Format(time.RFC1123Z))
	}
	if !hasMsgID {
		fmt.Fprintf(w, "Message-ID: <%s@%s>\r\n", id, s.srv.cfg().Hostname)
	}
}

// receivedHeader is the trace field of RFC 5321 4.4, with the protocol
// names of RFC 3848 (ESMTPS when TLS, ESMTPA/ESMTPSA when authenticated).
func (s *session) receivedHeader(id string) string {
	proto := "ESMTP"
	if s.isTLS() {
		proto += "S"
	}
	if s.authUser != "" {
		proto += "A"
	}
	return trace.Received(trace.Hop{Helo: s.conn.Hostname(), IP: s.ip, By: s.srv.cfg().Hostname,
		Proto: proto, ID: id, For: s.soleRecipient()}, time.Now())
}

// soleRecipient is the recipient a trace field names: the only one, or
// none when there are several (RFC 5321 4.4: "for" names one).
func (s *session) soleRecipient() string {
	if len(s.rcpts) == 1 {
		return s.rcpts[0].addr
	}
	return ""
}
