// Package submit is the one client of smtpd's local submission socket
// (smtpd.local_submit): sendmail(1) hands programs' mail to smtpd through
// it, and lmtpd its alias forwards, Sieve redirects and vacation replies.
// smtpd answers 250 to the data only once the message is durable in its
// queue, so Send returning nil means the message is smtpd's to deliver,
// retry and bounce; nobody but smtpd writes the queue.
//
// The socket needs no password: smtpd knows the caller by its uid
// (SO_PEERCRED) and refuses a sender the uid may not use (smtpd/local.go).
package submit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/emersion/go-smtp"

	"tern/common/listen"
	"tern/common/smtpserver"
)

// ErrUnreachable wraps a failure to connect to the socket: smtpd is not
// running, or local_submit names another path.
var ErrUnreachable = errors.New("cannot reach tern-smtpd")

// Dial connects to the local submission socket addr ("unix:/path" or
// host:port, as smtpd.local_submit), within ctx.
func Dial(ctx context.Context, addr string) (net.Conn, error) {
	c, err := listen.Dial(ctx, addr)
	if err != nil {
		return nil, fmt.Errorf("%w at %s (is it running?): %v", ErrUnreachable, addr, err)
	}
	return c, nil
}

// Message is one submission: its envelope and its data.
type Message struct {
	From string
	To   []string
	// Mail and Rcpt carry DSN parameters (RFC 3461) for smtpd to keep;
	// SMTPUTF8 is set by Send whenever an address needs it.
	Mail smtp.MailOptions
	Rcpt *smtp.RcptOptions
	Data io.Reader
}

// Client is how to reach smtpd.
type Client struct {
	Addr string // smtpd.local_submit
	// Hello is the EHLO name.
	Hello string
	// Timeout bounds the whole exchange, connection included, so that a
	// hung smtpd fails the caller instead of hanging it.
	Timeout time.Duration
	// Debug, when set, gets the SMTP dialogue (sendmail -v).
	Debug io.Writer
}

// StepError is a failed step of the transaction: Step is "connect",
// "greeting", "sender", "recipient", "data" or "message" (the reply to the
// end of the data); Addr the address of the sender or recipient step.
type StepError struct {
	Step string
	Addr string
	Err  error
}

func (e *StepError) Error() string {
	if e.Addr != "" {
		return fmt.Sprintf("%s <%s>: %v", e.Step, e.Addr, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.Step, e.Err)
}

func (e *StepError) Unwrap() error { return e.Err }

// RecipientsError lists every refused recipient of a message that was
// therefore not sent: one refusal cancels the whole message, and all the
// bad recipients are reported at once.
type RecipientsError []*StepError

func (e RecipientsError) Error() string {
	s := ""
	for i, r := range e {
		if i > 0 {
			s += "; "
		}
		s += r.Error()
	}
	return s
}

// Send runs one SMTP transaction with smtpd. It returns nil only once
// smtpd has answered 250 to the data, that is once the message is durable
// in its queue. Every recipient is tried; when any is refused nothing is
// sent and the error is a RecipientsError. Other failures are a
// *StepError, whose Err is the *smtp.SMTPError of a refusal.
func (c *Client) Send(ctx context.Context, m *Message) error {
	if c.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.Timeout)
		defer cancel()
	}
	conn, err := Dial(ctx, c.Addr)
	if err != nil {
		return &StepError{Step: "connect", Err: err}
	}
	if deadline, ok := ctx.Deadline(); ok {
		conn.SetDeadline(deadline)
	}
	sc := smtp.NewClient(conn)
	defer sc.Close()
	if c.Debug != nil {
		sc.DebugWriter = c.Debug
	}
	if err := sc.Hello(c.Hello); err != nil {
		return &StepError{Step: "greeting", Err: err}
	}
	opts := m.Mail
	// RFC 6531 3.4: smtpd takes a non-ASCII address only in a transaction
	// opened with SMTPUTF8.
	opts.UTF8 = opts.UTF8 || !smtpserver.IsASCII(m.From)
	for _, r := range m.To {
		opts.UTF8 = opts.UTF8 || !smtpserver.IsASCII(r)
	}
	if err := sc.Mail(m.From, &opts); err != nil {
		return &StepError{Step: "sender", Addr: m.From, Err: err}
	}
	var bad RecipientsError
	for _, r := range m.To {
		if err := sc.Rcpt(r, m.Rcpt); err != nil {
			bad = append(bad, &StepError{Step: "recipient", Addr: r, Err: err})
		}
	}
	if len(bad) > 0 {
		// RFC 5321 4.1.1.5: RSET drops the transaction.
		sc.Reset()
		sc.Quit()
		return bad
	}
	w, err := sc.Data()
	if err != nil {
		return &StepError{Step: "data", Err: err}
	}
	if _, err := io.Copy(w, m.Data); err != nil {
		w.Close()
		return &StepError{Step: "data", Err: err}
	}
	if err := w.Close(); err != nil {
		return &StepError{Step: "message", Err: err}
	}
	sc.Quit()
	return nil
}
