package main

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

	"tern/common/queue"
	"tern/common/smtpserver"
)

// bounce settles the failed recipients of e: one DSN (RFC 3464) for all
// of them that asked for one is queued to the sender, then they are
// marked bounced. RFC 3461 5.2 and RFC 5321 6.1: no DSN for the null
// sender (so never a DSN about a DSN), nor for NOTIFY without FAILURE.
func (rn *runner) bounce(e *queue.Envelope, data io.ReadSeeker) {
	var failed []int
	for i, r := range e.Recipients {
		if r.State == queue.Failed {
			failed = append(failed, i)
		}
	}
	if len(failed) == 0 {
		return
	}
	var report []int
	if e.From != "" && !e.IsDSN {
		for _, i := range failed {
			if e.Recipients[i].WantsNotify("FAILURE") {
				report = append(report, i)
			}
		}
	}
	if len(report) > 0 {
		msg := rn.buildDSN(e, report, rewind(data))
		dsn := &queue.Envelope{
			From:  "",
			IsDSN: true,
			Body:  "8BITMIME",
			// RFC 6531 3.4: a UTF-8 address travels with SMTPUTF8.
			UTF8:       !smtpserver.IsASCII(e.From),
			Recipients: []queue.Recipient{{Addr: e.From, State: queue.Pending}},
		}
		id, err := rn.srv.queue.Enqueue(dsn, bytes.NewReader(msg))
		if err != nil {
			// Leave them failed: the next attempt tries the DSN again.
			rn.srv.log.Error("queue DSN", "id", e.ID, "err", err)
			return
		}
		rn.srv.log.Info("DSN queued", "event", "bounced", "id", e.ID, "dsn", id, "to", e.From, "rcpts", len(report))
		rn.wake()
	}
	for _, i := range failed {
		e.Recipients[i].State = queue.Bounced
	}
}

// buildDSN writes the multipart/report of RFC 3464 (RFC 6522 for the
// container): a human-readable part, the delivery-status part with one
// block per recipient, and the original message, or only its header for
// RET=HDRS (RFC 3461 4.3).
func (rn *runner) buildDSN(e *queue.Envelope, idx []int, data io.Reader) []byte {
	host := rn.srv.cfg.Hostname
	var rb [12]byte
	rand.Read(rb[:])
	boundary := "=_tern_" + hex.EncodeToString(rb[:])
	now := time.Now()
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n", host)
	fmt.Fprintf(&b, "To: <%s>\r\n", e.From)
	b.WriteString("Subject: Undelivered Mail Returned to Sender\r\n")
	fmt.Fprintf(&b, "Date: %s\r\n", now.Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: <%s.dsn@%s>\r\n", e.ID, host)
	// RFC 3834 5: an automatic reply, so that responders do not answer it.
	b.WriteString("Auto-Submitted: auto-replied\r\n")
	b.WriteString("MIME-Version: 1.0\r\n")
	fmt.Fprintf(&b, "Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"%s\"\r\n\r\n", boundary)
	b.WriteString("This is a MIME-encapsulated message.\r\n\r\n")

	fmt.Fprintf(&b, "--%s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n", boundary)
	fmt.Fprintf(&b, "This is the mail system at %s.\r\n\r\n", host)
	b.WriteString("Your message could not be delivered to one or more recipients.\r\n\r\n")
	for _, i := range idx {
		r := e.Recipients[i]
		last, _ := r.LastAttempt()
		fmt.Fprintf(&b, "<%s>: %s\r\n", r.Addr, oneLine(last.Reply))
	}
	b.WriteString("\r\n")

	fmt.Fprintf(&b, "--%s\r\nContent-Type: message/delivery-status\r\n\r\n", boundary)
	fmt.Fprintf(&b, "Reporting-MTA: dns; %s\r\n", host)
	if e.EnvID != "" {
		fmt.Fprintf(&b, "Original-Envelope-Id: %s\r\n", oneLine(e.EnvID))
	}
	fmt.Fprintf(&b, "Arrival-Date: %s\r\n", e.Arrival.Format(time.RFC1123Z))
	for _, i := range idx {
		r := e.Recipients[i]
		last, _ := r.LastAttempt()
		b.WriteString("\r\n")
		if r.ORcpt != "" {
			fmt.Fprintf(&b, "Original-Recipient: %s\r\n", oneLine(r.ORcpt))
		}
		fmt.Fprintf(&b, "Final-Recipient: rfc822; %s\r\n", oneLine(r.Addr))
		b.WriteString("Action: failed\r\n")
		fmt.Fprintf(&b, "Status: %s\r\n", statusOf(last))
		if last.Host != "" && last.Host != "lmtp" && last.Host != "dns" {
			// RFC 3464 2.3.5: a "dns" name is a host name, without the
			// port a transport map may have added.
			host := last.Host
			if h, _, err := net.SplitHostPort(host); err == nil {
				host = h
			}
			fmt.Fprintf(&b, "Remote-MTA: dns; %s\r\n", oneLine(host))
		}
		if last.Code > 0 {
			fmt.Fprintf(&b, "Diagnostic-Code: smtp; %d %s\r\n", last.Code, oneLine(last.Reply))
		} else if last.Reply != "" {
			fmt.Fprintf(&b, "Diagnostic-Code: X-tern; %s\r\n", oneLine(last.Reply))
		}
		fmt.Fprintf(&b, "Last-Attempt-Date: %s\r\n", last.Time.Format(time.RFC1123Z))
	}
	b.WriteString("\r\n")

	if e.Ret == "HDRS" {
		fmt.Fprintf(&b, "--%s\r\nContent-Type: text/rfc822-headers\r\n\r\n", boundary)
		br := bufio.NewReader(data)
		for {
			line, err := br.ReadString('\n')
			b.WriteString(line)
			if err != nil || line == "\r\n" {
				break
			}
		}
	} else {
		fmt.Fprintf(&b, "--%s\r\nContent-Type: message/rfc822\r\n\r\n", boundary)
		io.Copy(&b, data)
	}
	if !bytes.HasSuffix(b.Bytes(), []byte("\r\n")) {
		b.WriteString("\r\n")
	}
	fmt.Fprintf(&b, "--%s--\r\n", boundary)
	return b.Bytes()
}

// statusOf extracts the RFC 3463 status of a reply ("5.1.1 …"), or makes
// one from the reply code.
func statusOf(a queue.Attempt) string {
	if f := strings.Fields(a.Reply); len(f) > 0 {
		var x, y, z int
		if n, _ := fmt.Sscanf(f[0], "%d.%d.%d", &x, &y, &z); n == 3 && (x == 4 || x == 5) {
			return fmt.Sprintf("5.%d.%d", y, z)
		}
	}
	if a.Code == 0 {
		return "4.4.7" // RFC 3463 3.5: delivery time expired
	}
	return "5.0.0"
}

func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, s)
}
