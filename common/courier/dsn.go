package courier

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"tern/common/maillog"
	"tern/common/queue"
	"tern/common/smtpserver"
	"tern/common/trace"
)

// The actions of RFC 3464 2.3.3 that tern reports.
const (
	actionFailed    = "failed"
	actionDelayed   = "delayed"
	actionDelivered = "delivered"
	actionRelayed   = "relayed"
)

// notice is one recipient's line in a delivery status notification.
type notice struct {
	i      int // index in the envelope's recipients
	action string
}

// wantsNotices reports whether e's sender may get any notice at all.
// RFC 3461 6.2 and RFC 5321 6.1: none for the null sender, so never a
// notice about a notice.
func wantsNotices(e *queue.Envelope) bool {
	return e.From != "" && !e.IsDSN
}

// bounce settles the failed recipients of e: one DSN (RFC 3464) for all
// of them that asked for one is queued to the sender, then they are
// marked bounced. No DSN for NOTIFY without FAILURE (RFC 3461 4.1).
func (cr *Courier) bounce(e *queue.Envelope, data io.ReadSeeker) {
	var failed []int
	for i, r := range e.Recipients {
		if r.State == queue.Failed {
			failed = append(failed, i)
		}
	}
	if len(failed) == 0 {
		return
	}
	var report []notice
	if wantsNotices(e) {
		for _, i := range failed {
			if e.Recipients[i].WantsNotify("FAILURE") {
				report = append(report, notice{i, actionFailed})
			}
		}
	}
	if len(report) > 0 {
		if err := cr.notify(e, report, rewind(data)); err != nil {
			// Leave them failed: the next attempt tries the DSN again.
			return
		}
	}
	for _, i := range failed {
		e.Recipients[i].State = queue.Bounced
	}
}

// notifySuccess queues the "delivered" and "relayed" notices owed for
// the recipients in done (RFC 3461 5.2.2, 5.2.3: only to those who asked
// with NOTIFY=SUCCESS). A failure to queue is logged and not retried:
// the message itself is delivered.
func (cr *Courier) notifySuccess(e *queue.Envelope, done []notice, data io.Reader) {
	if !wantsNotices(e) {
		return
	}
	var report []notice
	for _, n := range done {
		if e.Recipients[n.i].WantsNotify("SUCCESS") {
			report = append(report, n)
		}
	}
	if len(report) > 0 {
		cr.notify(e, report, data)
	}
}

// warnDelay sends the one delay notice of e (RFC 3461 4.1 NOTIFY=DELAY)
// once it has waited smtpd.delay_warning, for the recipients still
// pending that asked for it, and records that it is sent.
func (cr *Courier) warnDelay(e *queue.Envelope, data io.ReadSeeker) {
	after := cr.cfg().SMTPD.DelayWarning.D()
	if after <= 0 || e.Warned || time.Since(e.Arrival) < after {
		return
	}
	var report []notice
	if wantsNotices(e) {
		for _, i := range e.Pending() {
			if e.Recipients[i].WantsNotify("DELAY") {
				report = append(report, notice{i, actionDelayed})
			}
		}
	}
	if len(report) > 0 {
		if err := cr.notify(e, report, rewind(data)); err != nil {
			return // tried again at the next attempt
		}
	}
	e.Warned = true
}

// notify queues one DSN to e's sender reporting the recipients in report.
func (cr *Courier) notify(e *queue.Envelope, report []notice, data io.Reader) error {
	msg := cr.buildDSN(e, report, data)
	dsn := &queue.Envelope{
		From:  "",
		IsDSN: true,
		Body:  "8BITMIME",
		// RFC 6531 3.4: a UTF-8 address travels with SMTPUTF8; RFC 6533
		// 4: so does a notice about a message that came with it, which
		// may hold UTF-8 (needsUTF8 lets an all-ASCII one go without).
		UTF8:       utf8Notice(e),
		Recipients: []queue.Recipient{{Addr: e.From, State: queue.Pending}},
	}
	id, err := cr.queue.Enqueue(dsn, bytes.NewReader(msg))
	if err != nil {
		cr.log.Error("queue DSN", "id", e.ID, "action", report[0].action, "err", err)
		return err
	}
	// Each failed recipient was logged as bounced when it failed; the
	// notice is its own event, so a bounce is never counted twice.
	maillog.DSN(cr.log, e.ID, id, string(report[0].action), e.From, len(report))
	cr.Wake()
	return nil
}

// buildDSN writes the multipart/report of RFC 3464 (RFC 6522 for the
// container): a human-readable part, the delivery-status part with one
// block per recipient, and the original message. A failure notice
// returns the whole message, or only its header for RET=HDRS (RFC 3461
// 4.3); the other notices return only the header: RET governs failure
// notices, and a header identifies the message without sending it back
// whole.
func (cr *Courier) buildDSN(e *queue.Envelope, report []notice, data io.Reader) []byte {
	host := cr.cfg().Hostname
	// RFC 6533 3, 6: a notice with a UTF-8 address or a returned UTF-8
	// header is a message/global-delivery-status with message/global
	// parts when the sender's side took SMTPUTF8; otherwise it stays
	// ASCII, addresses encoded as utf-8-addr-xtext.
	br := bufio.NewReader(data)
	utf8Head, head := utf8Header(br)
	data = io.MultiReader(bytes.NewReader(head), br)
	global := false
	if utf8Notice(e) {
		global = utf8Head
		for _, n := range report {
			global = global || !smtpserver.IsASCII(e.Recipients[n.i].Addr)
		}
	}
	statusType, messageType, headersType := "message/delivery-status", "message/rfc822", "text/rfc822-headers"
	if global {
		statusType, messageType, headersType = "message/global-delivery-status", "message/global", "message/global-headers"
	}
	var rb [12]byte
	rand.Read(rb[:])
	boundary := "=_tern_" + hex.EncodeToString(rb[:])
	now := time.Now()
	action := report[0].action
	subject, intro := "Successful Mail Delivery Report",
		"Your message was successfully delivered to the destination(s) listed below."
	switch action {
	case actionFailed:
		subject, intro = "Undelivered Mail Returned to Sender",
			"Your message could not be delivered to one or more recipients."
	case actionDelayed:
		subject, intro = "Delayed Mail (still being retried)",
			fmt.Sprintf("Your message could not be delivered for %s. It will be retried until %s.",
				now.Sub(e.Arrival).Round(time.Minute), e.Arrival.Add(cr.cfg().SMTPD.QueueLifetime.D()).Format(time.RFC1123Z))
	case actionRelayed:
		intro = "Your message was relayed to the destination(s) listed below, which do not report delivery."
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n", host)
	fmt.Fprintf(&b, "To: <%s>\r\n", e.From)
	fmt.Fprintf(&b, "Subject: %s\r\n", subject)
	fmt.Fprintf(&b, "Date: %s\r\n", now.Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: <%s.%s.%s@%s>\r\n", e.ID, action, hex.EncodeToString(rb[:4]), host)
	// RFC 3834 5: an automatic reply, so that responders do not answer it.
	b.WriteString("Auto-Submitted: auto-replied\r\n")
	b.WriteString("MIME-Version: 1.0\r\n")
	// RFC 6522 3: report-type names the report part's subtype.
	fmt.Fprintf(&b, "Content-Type: multipart/report; report-type=%s;\r\n\tboundary=\"%s\"\r\n\r\n",
		strings.TrimPrefix(statusType, "message/"), boundary)
	b.WriteString("This is a MIME-encapsulated message.\r\n\r\n")

	fmt.Fprintf(&b, "--%s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n", boundary)
	fmt.Fprintf(&b, "This is the mail system at %s.\r\n\r\n%s\r\n\r\n", host, intro)
	for _, n := range report {
		r := e.Recipients[n.i]
		last, _ := r.LastAttempt()
		fmt.Fprintf(&b, "<%s>: %s: %s\r\n", r.Addr, n.action, trace.OneLine(last.Reply))
	}
	b.WriteString("\r\n")

	fmt.Fprintf(&b, "--%s\r\nContent-Type: %s\r\n\r\n", boundary, statusType)
	fmt.Fprintf(&b, "Reporting-MTA: dns; %s\r\n", host)
	if e.EnvID != "" {
		// RFC 3464 2.2.1: the ENVID of RFC 3461 4.4, as given.
		fmt.Fprintf(&b, "Original-Envelope-Id: %s\r\n", trace.OneLine(e.EnvID))
	}
	fmt.Fprintf(&b, "Arrival-Date: %s\r\n", e.Arrival.Format(time.RFC1123Z))
	for _, n := range report {
		r := e.Recipients[n.i]
		last, _ := r.LastAttempt()
		b.WriteString("\r\n")
		if r.ORcpt != "" {
			// RFC 3464 2.3.1: the ORCPT of RFC 3461 4.2.
			typ, addr, _ := strings.Cut(r.ORcpt, ";")
			fmt.Fprintf(&b, "Original-Recipient: %s; %s\r\n", strings.ToLower(trace.OneLine(typ)), trace.OneLine(addr))
		}
		fmt.Fprintf(&b, "Final-Recipient: %s\r\n", dsnAddress(trace.OneLine(r.Addr), global))
		fmt.Fprintf(&b, "Action: %s\r\n", n.action)
		fmt.Fprintf(&b, "Status: %s\r\n", statusOf(last, n.action))
		if last.Host != "" && last.Host != "lmtp" && last.Host != "dns" {
			// RFC 3464 2.3.5: a "dns" name is a host name, without the
			// port a transport map may have added.
			host := last.Host
			if h, _, err := net.SplitHostPort(host); err == nil {
				host = h
			}
			fmt.Fprintf(&b, "Remote-MTA: dns; %s\r\n", trace.OneLine(host))
		}
		if last.Code > 0 {
			fmt.Fprintf(&b, "Diagnostic-Code: smtp; %d %s\r\n", last.Code, trace.OneLine(last.Reply))
		} else if last.Reply != "" {
			fmt.Fprintf(&b, "Diagnostic-Code: X-tern; %s\r\n", trace.OneLine(last.Reply))
		}
		if !last.Time.IsZero() {
			fmt.Fprintf(&b, "Last-Attempt-Date: %s\r\n", last.Time.Format(time.RFC1123Z))
		}
		if n.action == actionDelayed {
			// RFC 3464 2.3.9: when the MTA gives up.
			fmt.Fprintf(&b, "Will-Retry-Until: %s\r\n",
				e.Arrival.Add(cr.cfg().SMTPD.QueueLifetime.D()).Format(time.RFC1123Z))
		}
	}
	b.WriteString("\r\n")

	// RFC 8689 5: a REQUIRETLS message is not sent back whole, since the
	// notice itself may travel without TLS.
	if action != actionFailed || e.Ret == "HDRS" || e.RequireTLS {
		fmt.Fprintf(&b, "--%s\r\nContent-Type: %s\r\n\r\n", boundary, headersType)
		br := bufio.NewReader(data)
		for {
			line, err := br.ReadString('\n')
			b.WriteString(line)
			if err != nil || line == "\r\n" || line == "\n" {
				break
			}
		}
	} else {
		fmt.Fprintf(&b, "--%s\r\nContent-Type: %s\r\n\r\n", boundary, messageType)
		io.Copy(&b, data)
	}
	if !bytes.HasSuffix(b.Bytes(), []byte("\r\n")) {
		b.WriteString("\r\n")
	}
	fmt.Fprintf(&b, "--%s--\r\n", boundary)
	return b.Bytes()
}

// statusOf is the RFC 3463 status of a recipient's report: the status
// code of its last reply ("5.1.1 …") in the class of the action (2 for
// success, 4 for a delay, 5 for a failure), or one made from the reply
// code.
func statusOf(a queue.Attempt, action string) string {
	class := 5
	switch action {
	case actionDelivered, actionRelayed:
		class = 2
	case actionDelayed:
		class = 4
	}
	if f := strings.Fields(a.Reply); len(f) > 0 {
		var x, y, z int
		if n, _ := fmt.Sscanf(f[0], "%d.%d.%d", &x, &y, &z); n == 3 && x >= 2 && x <= 5 {
			return fmt.Sprintf("%d.%d.%d", class, y, z)
		}
	}
	if class == 5 && a.Code == 0 {
		return "4.4.7" // RFC 3463 3.5: delivery time expired
	}
	if class == 4 && a.Code == 0 {
		return "4.4.1" // RFC 3463 3.5: no answer from host
	}
	return fmt.Sprintf("%d.0.0", class)
}

// utf8Notice reports whether a notice about e may be in UTF-8: its
// sender's side took SMTPUTF8 (RFC 6533 4), or its address is UTF-8.
func utf8Notice(e *queue.Envelope) bool {
	return e.UTF8 || !smtpserver.IsASCII(e.From)
}

// dsnAddress is the value of a Final-Recipient field for addr: type
// rfc822 for an ASCII address; RFC 6533 3, type utf-8 for a UTF-8 one,
// as is in a message/global-delivery-status (utf-8-addr-unitext), else
// with every non-ASCII character as \x{HEX} (utf-8-addr-xtext) and the
// characters xtext does not take as +HH (RFC 3461 4).
func dsnAddress(addr string, global bool) string {
	if smtpserver.IsASCII(addr) {
		return "rfc822; " + addr
	}
	if global {
		return "utf-8; " + addr
	}
	var b strings.Builder
	for _, c := range addr {
		switch {
		case c >= 0x80:
			fmt.Fprintf(&b, "\\x{%X}", c)
		case c <= ' ' || c == '+' || c == '=' || c == '\\' || c == 0x7f:
			fmt.Fprintf(&b, "+%02X", c)
		default:
			b.WriteRune(c)
		}
	}
	return "utf-8; " + b.String()
}
