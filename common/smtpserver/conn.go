package smtpserver

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"tern/common/maillog"
	"tern/common/serve"
)

// state is where a session is in the protocol (RFC 5321 4.1.4, 3.3).
type state int

const (
	stateGreet state = iota // before HELO/EHLO/LHLO
	stateReady              // greeted, no transaction
	stateMail               // MAIL accepted, no recipient yet
	stateRcpt               // at least one RCPT accepted
	stateBDAT               // BDAT chunks under way (RFC 3030)
)

// Conn is one client connection.
type Conn struct {
	srv *Server

	mu     sync.Mutex // guards nc, sess, closed for Conn, Session and Close
	nc     net.Conn   // the transport: the socket, or TLS over it
	sess   smtp.Session
	closed bool

	r *bufio.Reader
	w *bufio.Writer

	state      state
	helo       string
	esmtp      bool // EHLO or LHLO: the client may use extensions
	didAuth    bool
	errors     int
	junk       int      // NOOP, RSET, VRFY since the last accepted message
	binarymime bool     // BODY=BINARYMIME: only BDAT may carry the message
	utf8       bool     // MAIL said SMTPUTF8: addresses may be UTF-8 (RFC 6531)
	rcpts      []string // accepted recipients, in order (LMTP replies)
	bdat       *bdat
	quit       bool // the loop ends after this command
	// lineDeadline, while a command line is read, is when the whole line
	// must have arrived.
	lineDeadline time.Time
	// dataStart, while a message's data is read (DATA, or the BDAT chunks
	// of a transaction), is when it began; dataBytes counts what was read
	// since, for MinDataRate.
	dataStart time.Time
	dataBytes int64
}

func newConn(s *Server, nc net.Conn) *Conn {
	c := &Conn{srv: s, nc: nc}
	c.r = bufio.NewReaderSize(deadlineReader{c}, 4096)
	c.w = bufio.NewWriterSize(nc, 4096)
	return c
}

// deadlineReader reads from the connection's current transport, renewing
// the read timeout before every read, so that a slow but steady client
// is not cut in the middle of a large message while a silent one is. A
// command line, which is short, must come whole within one timeout: a
// client that sends a byte now and then does not hold the connection
// (slowloris).
// Before it waits for the client it sends the replies written so far:
// replies to pipelined commands go out together (RFC 2920 3.1), and never
// wait behind a read (only the loop's goroutine reads and writes).
type deadlineReader struct{ c *Conn }

func (d deadlineReader) Read(p []byte) (int, error) {
	d.c.w.Flush()
	nc := d.c.Conn()
	c := d.c
	if !c.lineDeadline.IsZero() {
		nc.SetReadDeadline(c.lineDeadline)
	} else if t := c.srv.ReadTimeout; t > 0 {
		dl := time.Now().Add(t)
		if r := c.srv.MinDataRate; r > 0 && !c.dataStart.IsZero() {
			allowed := time.Duration(float64(c.dataBytes) / float64(r) * float64(time.Second))
			dl = minTime(dl, c.dataStart.Add(t+allowed))
		}
		nc.SetReadDeadline(dl)
	}
	n, err := nc.Read(p)
	c.dataBytes += int64(n)
	return n, err
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// startData starts counting a message's data for MinDataRate.
func (c *Conn) startData() {
	if c.dataStart.IsZero() {
		c.dataStart, c.dataBytes = time.Now(), 0
	}
}

// Conn returns the connection the session runs on: after STARTTLS, or on
// implicit TLS, the *tls.Conn.
func (c *Conn) Conn() net.Conn {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nc
}

// Hostname is the name the client gave in HELO, EHLO or LHLO.
func (c *Conn) Hostname() string { return c.helo }

// TLSConnectionState returns the TLS state, and false when not TLS.
func (c *Conn) TLSConnectionState() (tls.ConnectionState, bool) {
	tc, ok := c.Conn().(*tls.Conn)
	if !ok {
		return tls.ConnectionState{}, false
	}
	return tc.ConnectionState(), true
}

// Session returns the current session, nil before the greeting.
func (c *Conn) Session() smtp.Session {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sess
}

func (c *Conn) setSession(s smtp.Session) {
	c.mu.Lock()
	c.sess = s
	c.mu.Unlock()
}

// Close closes the connection; the loop then ends the session.
func (c *Conn) Close() error {
	c.mu.Lock()
	c.closed = true
	nc := c.nc
	c.mu.Unlock()
	return nc.Close()
}

// serve runs the session from the greeting to the end.
func (c *Conn) serve() {
	defer func() {
		if v := recover(); v != nil {
			c.srv.log().Error("panic serving SMTP connection", "client", c.nc.RemoteAddr().String(),
				"panic", v, "stack", string(debug.Stack()))
			c.reply(421, smtp.EnhancedCode{4, 3, 0}, "Internal server error, closing connection")
			c.flushNow()
		}
		c.endTransaction(smtp.ErrDataReset)
		if s := c.Session(); s != nil {
			s.Logout()
			c.setSession(nil)
		}
		c.Close()
	}()
	if tc, ok := c.nc.(*tls.Conn); ok {
		// Implicit TLS (RFC 8314 3.3): the handshake comes first; a failed
		// one ends the connection with nothing said in plaintext.
		if !c.handshake(tc) {
			return
		}
	}
	proto := "ESMTP"
	if c.srv.LMTP {
		proto = "LMTP"
	}
	c.reply(220, smtp.NoEnhancedCode, c.srv.Domain+" "+proto+" Service ready")
	for !c.quit {
		line, err := c.readLine()
		if err != nil {
			c.readFailed(err)
			return
		}
		c.dispatch(line)
	}
	c.flushNow()
}

// readLine reads the next command line, all of it within the read
// timeout.
func (c *Conn) readLine() (string, error) {
	if t := c.srv.ReadTimeout; t > 0 {
		c.lineDeadline = time.Now().Add(t)
		defer func() { c.lineDeadline = time.Time{} }()
	}
	return readCommandLine(c.r, c.srv.MaxLineLength)
}

// readFailed answers what can still be answered after a failed read of a
// command line; the connection is closed after it.
func (c *Conn) readFailed(err error) {
	var ne net.Error
	switch {
	case errors.Is(err, ErrBareLF):
		c.reply(500, smtp.EnhancedCode{5, 5, 2}, "bare LF in command (RFC 5321 2.3.8), closing connection")
	case errors.Is(err, ErrBareCR):
		c.reply(500, smtp.EnhancedCode{5, 5, 2}, "bare CR in command (RFC 5321 2.3.8), closing connection")
	case errors.Is(err, ErrLineTooLong):
		// RFC 5321 4.5.3.1.4: "500 Line too long".
		c.reply(500, smtp.EnhancedCode{5, 5, 2}, "Line too long, closing connection")
	case errors.Is(err, serve.ErrShutdown):
		// RFC 5321 3.8: a server that must shut down answers 421.
		c.reply(421, smtp.EnhancedCode{4, 3, 2}, c.srv.Domain+" Service shutting down, try again later")
	case errors.As(err, &ne) && ne.Timeout():
		// RFC 5321 4.5.3.2.7: the server may close an idle session.
		c.reply(421, smtp.EnhancedCode{4, 4, 2}, "Idle timeout, closing connection")
	default:
		return // the client went away
	}
	c.flushNow()
	c.linger()
}

// linger ends the connection gently after a command that ends it: the
// server's side is shut (TLS close_notify, or TCP FIN where the connection
// can say so) and what the client still sends is read and dropped for a
// moment, so that closing with unread input does not reset the connection
// before the client has read the reply.
func (c *Conn) linger() {
	nc := c.Conn()
	if cw, ok := nc.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	nc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	io.CopyN(io.Discard, nc, 64<<10)
}

// reply writes one reply: lines of text joined by "\n" become a
// multi-line reply. An enhanced code (RFC 2034) goes on every line of
// 2xx, 4xx and 5xx replies, X.0.0 when none is given; NoEnhancedCode
// leaves it out. Every line is checked for CR and LF (RFC 5321 2.3.8), so
// nothing the client sent can split a reply.
func (c *Conn) reply(code int, enh smtp.EnhancedCode, text string) {
	if enh == smtp.EnhancedCodeNotSet {
		switch code / 100 {
		case 2, 4, 5:
			enh = smtp.EnhancedCode{code / 100, 0, 0}
		default:
			enh = smtp.NoEnhancedCode
		}
	}
	if d := c.srv.WriteTimeout; d > 0 {
		c.Conn().SetWriteDeadline(time.Now().Add(d))
	}
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		sep := byte('-')
		if i == len(lines)-1 {
			sep = ' '
		}
		fmt.Fprintf(c.w, "%03d%c", code, sep)
		if enh != smtp.NoEnhancedCode {
			fmt.Fprintf(c.w, "%d.%d.%d ", enh[0], enh[1], enh[2])
		}
		c.w.WriteString(safeLine(l))
		c.w.WriteString("\r\n")
	}
	// RFC 5321 3.8: 421 means the server closes the connection.
	if code == 421 {
		c.quit = true
	}
}

// replyErr writes a session's error: an *smtp.SMTPError as it is, any
// other error as a local problem whose detail is not the client's.
func (c *Conn) replyErr(err error) {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		c.reply(se.Code, se.EnhancedCode, se.Message)
		return
	}
	c.srv.log().Warn("session error without a reply", "client", c.nc.RemoteAddr().String(), "err", err)
	c.reply(451, smtp.EnhancedCode{4, 3, 0}, "Local error in processing, try again later")
}

// safeLine keeps a reply line to printable text: a CR, LF or other
// control byte (from a client's echoed argument) becomes '?'.
func safeLine(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] == 0x7f {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if b[j] < ' ' || b[j] == 0x7f {
					b[j] = '?'
				}
			}
			return string(b)
		}
	}
	return s
}

// flushNow sends what was written at once.
func (c *Conn) flushNow() bool { return c.w.Flush() == nil }

// protocolError answers a command the loop refuses itself, and counts it.
func (c *Conn) protocolError(code int, enh smtp.EnhancedCode, text string) {
	if c.tooManyErrors(code) {
		return
	}
	c.reply(code, enh, text)
}

// refused answers a session's refusal, counted when the server says so.
func (c *Conn) refused(err error) {
	var se *smtp.SMTPError
	if c.srv.CountRefusals && errors.As(err, &se) && c.tooManyErrors(se.Code) {
		return
	}
	c.replyErr(err)
}

// tooManyErrors counts a permanent refusal. The one past MaxErrors is
// answered 421 in its place, and the session ends (RFC 5321 4.5.3.1 lets
// a server limit what it tolerates; 3.8: 421 closes).
func (c *Conn) tooManyErrors(code int) bool {
	if code < 500 {
		return false
	}
	return c.overLimit(&c.errors, c.srv.MaxErrors, "errors")
}

// junkCommand counts a command that moves no mail (NOOP, RSET, VRFY).
// They are never refused, so the error cutoff does not see them; without
// this bound a client could hold a session open with them for as long as
// it likes (RFC 5321 4.5.3.1). The count starts over with each accepted
// message, so a sender that resets between many messages on one
// connection is not cut.
func (c *Conn) junkCommand() bool {
	return c.overLimit(&c.junk, c.srv.MaxJunkCommands, "commands without a message")
}

// overLimit adds one to *n; past limit (0 = none) it answers 421 and the
// session ends.
func (c *Conn) overLimit(n *int, limit int, what string) bool {
	*n++
	if limit <= 0 || *n <= limit {
		return false
	}
	maillog.Rejected(c.srv.log().With("ip", c.nc.RemoteAddr().String()),
		maillog.Rejection{Stage: "session", Code: 421, Reason: fmt.Sprintf("too many %s (%d)", what, *n)})
	c.reply(421, smtp.EnhancedCode{4, 7, 0}, "Too many "+what+", closing connection")
	c.quit = true
	return true
}

// handshake runs a TLS handshake under the read and write timeouts. The
// read deadline is set with SetReadDeadline, which a daemon's connection
// may shorten (smtpd's login.timeout before login).
func (c *Conn) handshake(tc *tls.Conn) bool {
	if d := c.srv.ReadTimeout; d > 0 {
		tc.SetReadDeadline(time.Now().Add(d))
	}
	if d := c.srv.WriteTimeout; d > 0 {
		tc.SetWriteDeadline(time.Now().Add(d))
	}
	if err := tc.Handshake(); err != nil {
		c.srv.log().Info("TLS handshake failed, closing", "client", tc.RemoteAddr().String(), "err", err)
		return false
	}
	return true
}

// discard reads and drops n bytes: a BDAT chunk that is refused still
// follows its command (RFC 3030 2).
func (c *Conn) discard(n int64) error {
	_, err := io.CopyN(io.Discard, c.r, n)
	return err
}
