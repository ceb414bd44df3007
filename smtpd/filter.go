package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/emersion/go-smtp"

	"tern/common/config"
	"tern/common/mailauth"
	"tern/common/maillog"
	"tern/common/queue"
	"tern/common/trace"
)

// Filters: what happens to a message between the end of DATA and the
// 250. The client's data is first spooled as received (scratch); the
// filters then read it and the message that is queued or delivered is
// written anew:
//
//  1. Authentication-Results fields carrying our authserv-id are removed
//     from the header, whoever wrote them (RFC 8601 5).
//  2. On the MX listeners (inbound_auth), SPF, DKIM and DMARC are checked
//     (common/mailauth) and the results added as one
//     Authentication-Results field; DMARC p=reject failures and, if so
//     configured, SPF fails are refused here.
//  3. The milters run in order (milter.go), each seeing the message as the
//     ones before it left it; any of them may refuse, discard or
//     quarantine it, or change the header, body and recipients.
//  4. Mail submitted by an authenticated or local user from a local domain
//     is DKIM-signed (sign.go), last, so the signature covers the message
//     as it leaves.
//
// Unchanged header fields and the body are copied byte for byte, so
// existing DKIM signatures stay valid.

// filterResult is what the filters decided beyond the message itself.
type filterResult struct {
	discard    bool   // accept (250) and drop: a milter's SMFIR_DISCARD
	quarantine string // hold in the queue, with the milter's reason
}

// filtering reports whether a message of this session passes through the
// filters at all; when it does not, it is spooled directly.
func (s *session) filtering() bool {
	return len(s.milters()) > 0 || s.inboundAuth() || s.signing()
}

// inboundAuth: SPF, DKIM and DMARC are checked for mail from other
// servers, which is what they describe.
func (s *session) inboundAuth() bool {
	return s.kind == kindMX && s.srv.cfg().SMTPD.InboundAuth
}

// milters are the milter addresses that apply to this session.
func (s *session) milters() []string {
	if s.kind != kindMX && !s.srv.cfg().SMTPD.MilterSubmission {
		return nil
	}
	return s.srv.cfg().SMTPD.Milters
}

// receiveFiltered spools the client's data into a scratch file, runs the
// filters over it and writes the result to sp.
func (s *session) receiveFiltered(sp *queue.Spool, r io.Reader) (filterResult, error) {
	scratch, err := s.srv.queue.NewSpool()
	if err != nil {
		return filterResult{}, fmt.Errorf("scratch spool: %w", err)
	}
	defer scratch.Discard()
	if err := s.copyMessage(scratch, r, sp.ID()); err != nil {
		return filterResult{}, err
	}
	msg, ok := scratch.Reader().(io.ReaderAt)
	if !ok {
		return filterResult{}, errors.New("smtpd: spool reader cannot seek")
	}
	size := scratch.Size()
	h, bodyAt, err := readHeader(io.NewSectionReader(msg, 0, size), int(s.srv.cfg().SMTPD.MaxHeaderSize))
	if errors.Is(err, errHeaderTooBig) {
		return filterResult{}, replyHeaderTooBig
	}
	if err != nil {
		return filterResult{}, fmt.Errorf("read header: %w", err)
	}
	m := &message{h: h, body: io.NewSectionReader(msg, bodyAt, size-bodyAt)}

	// RFC 8601 5: results claiming to be ours that arrive from outside
	// are forged; they go before anything reads the header.
	id := strings.ToLower(s.srv.cfg().AuthservIDOrHost())
	m.h = m.h.remove(func(f field) bool {
		return strings.EqualFold(f.name, "Authentication-Results") && mailauth.AuthservID(f.value()) == id
	})

	ctx := context.Background()
	if s.inboundAuth() {
		if err := s.checkAuth(ctx, m, io.NewSectionReader(msg, 0, size)); err != nil {
			return filterResult{}, err
		}
	}
	var res filterResult
	if ms := s.milters(); len(ms) > 0 {
		res, err = s.runMilters(ctx, ms, m, sp.ID())
		if err != nil || res.discard {
			return res, err
		}
	}
	if s.signing() {
		s.sign(m)
	}
	if _, err := sp.Write(m.h.bytes()); err != nil {
		return res, err
	}
	if _, err := io.WriteString(sp, "\r\n"); err != nil {
		return res, err
	}
	if _, err := io.Copy(sp, m.bodyReader()); err != nil {
		return res, err
	}
	return res, nil
}

// message is a message being filtered: its header in memory, its body in
// the scratch spool or, once a milter replaced it, in memory.
type message struct {
	h        header
	body     *io.SectionReader
	newBody  []byte
	replaced bool
}

// bodyReader reads the body from its start.
func (m *message) bodyReader() io.Reader {
	if m.replaced {
		return bytes.NewReader(m.newBody)
	}
	return io.NewSectionReader(m.body, 0, m.body.Size())
}

// checkAuth runs SPF, DKIM and DMARC, adds the Authentication-Results
// field, and refuses what the policy keys say to refuse.
func (s *session) checkAuth(ctx context.Context, m *message, whole io.Reader) error {
	cfg := s.srv.cfg()
	froms := m.h.values("From")
	in := mailauth.Input{
		IP:         net.ParseIP(s.ip),
		Helo:       s.conn.Hostname(),
		MailFrom:   s.from,
		FromFields: froms,
		DKIMFields: m.h.values("DKIM-Signature"),
	}
	r := s.srv.checker.Check(ctx, in, whole)
	s.log.Info("mail authentication", "spf", string(r.SPF.Result), "dkim", len(r.DKIM),
		"dmarc", r.DMARC.Result, "from_domain", r.DMARC.FromDomain, "disposition", string(r.DMARC.Disposition))
	// RFC 5322 3.6: exactly one From field. RFC 7489 6.6.1: a message
	// with several cannot be evaluated, and is a way around DMARC.
	if len(froms) > 1 {
		return replyMultipleFrom
	}
	if r.SPF.Result == "fail" && cfg.SMTPD.SPFFail == "reject" {
		// RFC 7372 3.2: 5.7.23, SPF validation failed.
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 23},
			Message: "SPF validation failed for " + trace.Comment(r.SPF.Domain)}
	}
	if r.DMARC.Result == "fail" {
		switch {
		case r.DMARC.Disposition == "reject" && cfg.SMTPD.DMARCReject:
			// RFC 7489 6.6.4 and 10.3: refuse during the SMTP transaction
			// rather than bounce later.
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1},
				Message: "Rejected by the DMARC policy of " + trace.Comment(r.DMARC.FromDomain)}
		case r.DMARC.Disposition == "reject" || r.DMARC.Disposition == "quarantine":
			// Quarantine means the spam folder (RFC 7489 6.3): lmtpd files
			// a message with its spam header into Junk.
			if cfg.LMTPD.SpamHeader != "" {
				m.h = append(m.h, newField(cfg.LMTPD.SpamHeader, cfg.LMTPD.SpamValue))
			}
		}
	}
	// RFC 8601 5: the field goes on top, like a trace field.
	m.h = m.h.insert(0, field{name: "Authentication-Results", raw: []byte(r.Field(cfg.AuthservIDOrHost()))})
	return nil
}

// newChecker builds the mail authentication checker of the configuration.
func newChecker(cfg *config.Config, r *net.Resolver) *mailauth.Checker {
	return &mailauth.Checker{Resolver: r, Timeout: cfg.DNS.Timeout.D(), MaxVerifications: cfg.DKIM.MaxVerifications}
}

var (
	replyMultipleFrom = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1},
		Message: "More than one From field (RFC 5322 3.6)"}
	// RFC 3463 4.7.1 and 5.7.1: delivery not authorized; what sendmail
	// and Postfix answer for a milter's bare reject and tempfail.
	replyMilterReject = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1},
		Message: "Message rejected by content filter"}
	replyMilterTempfail = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 1},
		Message: "Message deferred by content filter, try again later"}
	replyMilterDown = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 1},
		Message: "Content filter unavailable, try again later"}
)

// quarantine queues the message held, as a milter asked: nothing is
// delivered until an admin releases it (`mailq -release ID`) or deletes
// it. Each recipient's history records why, so `mailq` shows it.
func (s *session) quarantine(sp *queue.Spool, env *queue.Envelope, reason string, committed *bool) error {
	env.Held = true
	for i := range env.Recipients {
		env.Recipients[i].AddAttempt(queue.Attempt{Time: env.Arrival, Host: "milter",
			Reply: "quarantined: " + trace.Reply(reason)})
	}
	if err := sp.Commit(env); err != nil {
		s.log.Error("queue message", "id", sp.ID(), "err", err)
		return replyLocalError
	}
	*committed = true
	maillog.Quarantined(s.log, env.ID, reason)
	return &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: "OK: queued as " + env.ID}
}
