package main

import (
	"errors"
	"io"
	"log/slog"

	"github.com/emersion/go-smtp"

	"tern/common/binarymime"
	"tern/common/maillog"
	"tern/common/recipient"
	"tern/common/serve"
)

// session is one LMTP session: common/smtpserver runs the protocol state
// machine (LHLO → MAIL → RCPT… → DATA/BDAT, RSET, QUIT) and calls these
// methods once a command is valid in the current state.
type session struct {
	s    *server
	conn *serve.Conn
	log  *slog.Logger

	from string
	utf8 bool
	// binary: BODY=BINARYMIME (RFC 3030 3); the message's binary parts
	// are re-encoded before they are stored.
	binary bool
	rcpts  []rcpt
}

// rcpt is one accepted RCPT, in order.
type rcpt struct {
	addr string // as given in RCPT TO, the key of the status collector
	res  recipient.Result
}

// Mail implements smtp.Session.
func (ss *session) Mail(from string, opts *smtp.MailOptions) error {
	ss.from = from
	ss.utf8 = opts != nil && opts.UTF8
	ss.binary = opts != nil && opts.Body == smtp.BodyBinaryMIME
	ss.rcpts = nil
	ss.log.Debug("MAIL", "from", from)
	return nil
}

// Rcpt implements smtp.Session: the recipient is resolved now, so that an
// unknown one is refused before the message is sent (RFC 2033 4.2 replies
// per recipient only for those accepted here).
func (ss *session) Rcpt(to string, opts *smtp.RcptOptions) error {
	res, err := ss.s.agent.resolve(to)
	if err != nil {
		maillog.Rejected(ss.log, maillog.Rejection{Stage: "rcpt", From: ss.from, To: to, Code: codeOf(err), Reason: err.Error()})
		return err
	}
	users := make([]string, 0, len(res.Local))
	for _, t := range res.Local {
		users = append(users, t.User)
	}
	if err := ss.s.agent.checkSpace(users...); err != nil {
		maillog.Rejected(ss.log, maillog.Rejection{Stage: "rcpt", From: ss.from, To: to, Code: codeOf(err), Reason: err.Error()})
		return replyFor(err)
	}
	ss.rcpts = append(ss.rcpts, rcpt{addr: to, res: res})
	ss.log.Debug("RCPT", "to", to, "local", res.Local, "remote", res.Remote)
	return nil
}

// Data implements smtp.Session. In LMTP mode the server calls LMTPData
// instead; Data only exists to satisfy the interface.
func (ss *session) Data(r io.Reader) error {
	return errors.New("lmtpd: Data called outside LMTP")
}

// LMTPData implements smtp.LMTPSession: the message is received once (in
// memory when small, see spool), then each recipient's copies are
// delivered in RCPT order and its status set as soon as they are durable (RFC 2033 4.2). One recipient's failure never
// affects another's status.
func (ss *session) LMTPData(r io.Reader, status smtp.StatusCollector) error {
	if ss.conn != nil {
		ss.conn.SetBusy(true)
	}
	if ss.binary {
		// As imapd does for a binary APPEND: the Maildir holds
		// line-oriented text that every reader can take, and IMAP
		// BINARY[part] decodes it back to the octets sent (RFC 3516 4.2).
		br, stop := binarymime.Reader(r)
		defer stop()
		r = br
	}
	sp, err := ss.s.agent.spool(r, int64(ss.s.agent.cfg().LMTPD.MemoryBuffer))
	if err != nil {
		maillog.Rejected(ss.log, maillog.Rejection{Stage: "data", From: ss.from, Code: codeOf(err), Reason: err.Error()})
		return replyFor(err)
	}
	defer sp.close()
	env := envelope{from: ss.from, utf8: ss.utf8, log: ss.log}
	if ss.conn != nil {
		env.client = ss.conn.RemoteAddr().String()
	}
	done := map[string]error{}
	for _, rc := range ss.rcpts {
		status.SetStatus(rc.addr, ss.s.agent.deliverRcpt(env, rc, sp, done))
	}
	return nil
}

// Reset implements smtp.Session. The server calls it after every message
// (and for RSET): if the server is stopping, the next read of the loop
// fails and the connection is told 421 (common/serve; RFC 5321 3.8).
func (ss *session) Reset() {
	ss.from, ss.utf8, ss.binary, ss.rcpts = "", false, false, nil
	if ss.conn != nil {
		ss.conn.SetBusy(false)
	}
}

// Logout implements smtp.Session.
func (ss *session) Logout() error {
	ss.log.Debug("session ended")
	return nil
}
