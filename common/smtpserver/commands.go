package smtpserver

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-smtp"
)

// command is one verb: its handler and the states it is valid in (nil:
// any). The dispatcher refuses a command out of its state with 503 before
// the handler runs (RFC 5321 4.1.4).
type command struct {
	handle func(c *Conn, arg string)
	states []state
}

var (
	notInTx     = []state{stateGreet, stateReady}
	commandList = map[string]command{
		"HELO":     {handle: (*Conn).cmdHELO},
		"EHLO":     {handle: (*Conn).cmdEHLO},
		"LHLO":     {handle: (*Conn).cmdLHLO},
		"MAIL":     {handle: (*Conn).cmdMAIL, states: []state{stateReady}},
		"RCPT":     {handle: (*Conn).cmdRCPT, states: []state{stateMail, stateRcpt}},
		"DATA":     {handle: (*Conn).cmdDATA, states: []state{stateRcpt}},
		"BDAT":     {handle: (*Conn).cmdBDAT}, // checks its state itself: the chunk follows even a refusal
		"RSET":     {handle: (*Conn).cmdRSET},
		"NOOP":     {handle: (*Conn).cmdNOOP},
		"QUIT":     {handle: (*Conn).cmdQUIT},
		"VRFY":     {handle: (*Conn).cmdVRFY},
		"AUTH":     {handle: (*Conn).cmdAUTH, states: []state{stateReady}},
		"STARTTLS": {handle: (*Conn).cmdSTARTTLS, states: notInTx},
		// RFC 5321 4.2.4: known commands that are not implemented.
		"EXPN": {handle: (*Conn).cmdNotImplemented},
		"HELP": {handle: (*Conn).cmdNotImplemented},
		"SEND": {handle: (*Conn).cmdNotImplemented},
		"SOML": {handle: (*Conn).cmdNotImplemented},
		"SAML": {handle: (*Conn).cmdNotImplemented},
		"TURN": {handle: (*Conn).cmdNotImplemented},
		"ETRN": {handle: (*Conn).cmdNotImplemented},
	}
)

// httpVerbs start an HTTP request: a browser or a cross-protocol attack.
var httpVerbs = map[string]bool{"GET": true, "POST": true, "HEAD": true, "PUT": true,
	"CONNECT": true, "OPTIONS": true, "DELETE": true}

// dispatch runs one command line.
func (c *Conn) dispatch(line string) {
	if line == "" {
		c.protocolError(500, smtp.EnhancedCode{5, 5, 2}, "Empty command")
		return
	}
	if strings.IndexByte(line, 0) >= 0 {
		c.protocolError(500, smtp.EnhancedCode{5, 5, 2}, "NUL in command")
		return
	}
	verb, arg, _ := strings.Cut(line, " ")
	verb = strings.ToUpper(verb)
	if httpVerbs[verb] {
		c.reply(500, smtp.EnhancedCode{5, 5, 2}, "HTTP request on the SMTP port, closing connection")
		c.quit = true
		c.flushNow()
		c.linger()
		return
	}
	cmd, ok := commandList[verb]
	if !ok {
		// RFC 5321 4.2.4 and RFC 3463 3.6: 500 5.5.1, command unrecognized.
		if len(verb) > 16 || strings.ContainsFunc(verb, func(r rune) bool { return r < 'A' || r > 'Z' }) {
			c.protocolError(500, smtp.EnhancedCode{5, 5, 1}, "Command unrecognized")
		} else {
			c.protocolError(500, smtp.EnhancedCode{5, 5, 1}, "Command "+verb+" unrecognized")
		}
		return
	}
	if cmd.states != nil && !inState(c.state, cmd.states) {
		c.protocolError(503, smtp.EnhancedCode{5, 5, 1}, c.sequenceText(verb))
		return
	}
	cmd.handle(c, arg)
}

func inState(s state, ok []state) bool {
	for _, o := range ok {
		if s == o {
			return true
		}
	}
	return false
}

// sequenceText says why verb is out of sequence (RFC 5321 4.1.4: 503).
func (c *Conn) sequenceText(verb string) string {
	switch {
	case c.state == stateGreet:
		if c.srv.LMTP {
			return "Bad sequence of commands: send LHLO first"
		}
		return "Bad sequence of commands: send EHLO or HELO first"
	case c.state == stateBDAT:
		return "Bad sequence of commands: BDAT transfer in progress"
	case verb == "AUTH" || verb == "STARTTLS":
		return "Bad sequence of commands: " + verb + " is not allowed in a mail transaction"
	case verb == "MAIL":
		return "Bad sequence of commands: sender already given"
	case c.state == stateReady:
		return "Bad sequence of commands: send MAIL first"
	default:
		return "Bad sequence of commands: send RCPT first"
	}
}

func (c *Conn) cmdHELO(arg string) { c.greet("HELO", arg) }
func (c *Conn) cmdEHLO(arg string) { c.greet("EHLO", arg) }
func (c *Conn) cmdLHLO(arg string) { c.greet("LHLO", arg) }

// greet answers HELO, EHLO and LHLO. RFC 5321 4.1.4: a later EHLO resets
// the session as RSET does.
func (c *Conn) greet(verb, arg string) {
	if c.srv.LMTP != (verb == "LHLO") {
		if c.srv.LMTP {
			c.protocolError(500, smtp.EnhancedCode{5, 5, 1}, "This is an LMTP server, use LHLO")
		} else {
			c.protocolError(500, smtp.EnhancedCode{5, 5, 1}, "This is not an LMTP server")
		}
		return
	}
	domain, _, _ := strings.Cut(strings.TrimSpace(arg), " ")
	if domain == "" {
		c.protocolError(501, smtp.EnhancedCode{5, 5, 4}, "Domain or address argument required")
		return
	}
	if c.Session() != nil {
		c.reset()
		c.helo = domain
	} else {
		// The name is known before the session starts, for the backend.
		c.helo = domain
		sess, err := c.srv.Backend.NewSession(c)
		if err != nil {
			c.helo = ""
			c.refused(err)
			return
		}
		c.setSession(sess)
	}
	c.state = stateReady
	c.esmtp = verb != "HELO"
	if !c.esmtp {
		c.reply(250, smtp.NoEnhancedCode, c.srv.Domain+" Hello "+domain)
		return
	}
	caps := []string{c.srv.Domain + " Hello " + domain, "PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES", "CHUNKING"}
	_, isTLS := c.TLSConnectionState()
	if c.srv.TLSConfig != nil && !isTLS {
		caps = append(caps, "STARTTLS")
	}
	if as, ok := c.Session().(smtp.AuthSession); ok && !c.didAuth {
		if mechs := as.AuthMechanisms(); len(mechs) > 0 {
			caps = append(caps, "AUTH "+strings.Join(mechs, " "))
		}
	}
	if c.srv.EnableBINARYMIME {
		caps = append(caps, "BINARYMIME")
	}
	if c.srv.EnableSMTPUTF8 {
		caps = append(caps, "SMTPUTF8")
	}
	if c.srv.EnableDSN {
		caps = append(caps, "DSN")
	}
	if c.srv.EnableREQUIRETLS && isTLS {
		caps = append(caps, "REQUIRETLS")
	}
	if c.srv.MaxMessageBytes > 0 {
		caps = append(caps, fmt.Sprintf("SIZE %d", c.srv.MaxMessageBytes))
	} else {
		caps = append(caps, "SIZE")
	}
	if c.srv.MaxRecipients > 0 {
		// RFC 9422 4.2.
		caps = append(caps, fmt.Sprintf("LIMITS RCPTMAX=%d", c.srv.MaxRecipients))
	}
	c.reply(250, smtp.NoEnhancedCode, strings.Join(caps, "\n"))
}

// cmdMAIL: RFC 5321 4.1.1.2, with the parameters of RFC 1870 (SIZE),
// RFC 6152 and 3030 (BODY), RFC 6531 (SMTPUTF8), RFC 3461 (RET, ENVID),
// RFC 4954 5 (AUTH) and RFC 8689 (REQUIRETLS).
func (c *Conn) cmdMAIL(arg string) {
	rest, ok := cutPrefixFold(arg, "FROM:")
	if !ok {
		c.protocolError(501, smtp.EnhancedCode{5, 5, 2}, "Syntax: MAIL FROM:<address>")
		return
	}
	from, rest, err := parseReversePath(strings.TrimLeft(rest, " "))
	if err != nil {
		c.protocolError(501, smtp.EnhancedCode{5, 1, 7}, "Malformed sender address")
		return
	}
	params, err := parseParams(rest)
	if err != nil {
		c.protocolError(501, smtp.EnhancedCode{5, 5, 4}, "Malformed MAIL parameters")
		return
	}
	if len(params) > 0 && !c.esmtp {
		// RFC 5321 4.1.1.11: parameters are extensions, which a client
		// that said HELO has not been offered.
		c.protocolError(555, smtp.EnhancedCode{5, 5, 4}, "MAIL parameters need EHLO")
		return
	}
	opts := &smtp.MailOptions{}
	binary := false
	for _, p := range params {
		if !c.srv.EnableDSN && (p.key == "RET" || p.key == "ENVID") {
			// RFC 5321 4.1.1.11: a parameter of an extension not
			// offered is not recognized.
			c.protocolError(555, smtp.EnhancedCode{5, 5, 4}, "Unknown MAIL parameter "+p.key)
			return
		}
		switch p.key {
		case "SIZE":
			n, err := strconv.ParseUint(p.value, 10, 63)
			if err != nil && allDigits(p.value) {
				// RFC 1870 6: a size too large to be a number here is
				// still a size over the limit, not a syntax error.
				n, err = 1<<63-1, nil
			}
			if err != nil {
				c.protocolError(501, smtp.EnhancedCode{5, 5, 4}, "Malformed SIZE parameter")
				return
			}
			if c.srv.MaxMessageBytes > 0 && int64(n) > c.srv.MaxMessageBytes {
				// RFC 1870 6.
				c.protocolError(552, smtp.EnhancedCode{5, 3, 4}, "Message exceeds the maximum size")
				return
			}
			opts.Size = int64(n)
		case "BODY":
			switch b := smtp.BodyType(strings.ToUpper(p.value)); b {
			case smtp.Body7Bit, smtp.Body8BitMIME:
				opts.Body = b
			case smtp.BodyBinaryMIME:
				if !c.srv.EnableBINARYMIME {
					c.protocolError(555, smtp.EnhancedCode{5, 5, 4}, "BODY=BINARYMIME is not supported")
					return
				}
				opts.Body, binary = b, true
			default:
				c.protocolError(501, smtp.EnhancedCode{5, 5, 4}, "Unknown BODY value")
				return
			}
		case "SMTPUTF8":
			if c.srv.EnableSMTPUTF8 && p.value != "" {
				// RFC 6531 3.4: SMTPUTF8 takes no value.
				c.protocolError(501, smtp.EnhancedCode{5, 5, 4}, "SMTPUTF8 takes no value")
				return
			}
			if !c.srv.EnableSMTPUTF8 {
				c.protocolError(555, smtp.EnhancedCode{5, 5, 4}, "SMTPUTF8 is not supported")
				return
			}
			opts.UTF8 = true
		case "REQUIRETLS":
			// RFC 8689 4.1: without TLS the session refuses it with
			// 530 5.7.10, which names the reason; the loop checks
			// only that it is offered and takes no value.
			if !c.srv.EnableREQUIRETLS || p.value != "" {
				c.protocolError(555, smtp.EnhancedCode{5, 5, 4}, "REQUIRETLS is not supported here")
				return
			}
			opts.RequireTLS = true
		case "RET":
			r := smtp.DSNReturn(strings.ToUpper(p.value))
			if r != smtp.DSNReturnFull && r != smtp.DSNReturnHeaders {
				c.protocolError(501, smtp.EnhancedCode{5, 5, 4}, "Malformed RET parameter")
				return
			}
			opts.Return = r
		case "ENVID":
			v, err := decodeXtext(p.value)
			if err != nil || v == "" || len(v) > 100 || !printableASCII(v) {
				// RFC 3461 4.4: at most 100 characters of printable ASCII.
				c.protocolError(501, smtp.EnhancedCode{5, 5, 4}, "Malformed ENVID parameter")
				return
			}
			opts.EnvelopeID = v
		case "AUTH":
			v, err := decodeXtext(p.value)
			if err != nil || v == "" {
				c.protocolError(501, smtp.EnhancedCode{5, 5, 4}, "Malformed AUTH parameter")
				return
			}
			if v == "<>" {
				v = ""
			}
			opts.Auth = &v
		default:
			// RFC 5321 4.1.1.11: 555, parameter not recognized.
			c.protocolError(555, smtp.EnhancedCode{5, 5, 4}, "Unknown MAIL parameter "+safeParam(p.key))
			return
		}
	}
	if !opts.UTF8 && !IsASCII(from) {
		// RFC 6531 3.4: a non-ASCII address only in a transaction that
		// MAIL opened with SMTPUTF8.
		c.protocolError(553, smtp.EnhancedCode{5, 6, 7}, "Non-ASCII address needs SMTPUTF8")
		return
	}
	if err := c.Session().Mail(from, opts); err != nil {
		c.refused(err)
		return
	}
	c.state, c.rcpts, c.binarymime, c.utf8 = stateMail, nil, binary, opts.UTF8
	c.reply(250, smtp.EnhancedCode{2, 1, 0}, "Sender <"+from+"> OK")
}

// cmdRCPT: RFC 5321 4.1.1.3, with the DSN parameters of RFC 3461.
func (c *Conn) cmdRCPT(arg string) {
	rest, ok := cutPrefixFold(arg, "TO:")
	if !ok {
		c.protocolError(501, smtp.EnhancedCode{5, 5, 2}, "Syntax: RCPT TO:<address>")
		return
	}
	to, rest, err := parseForwardPath(strings.TrimLeft(rest, " "))
	if err != nil {
		c.protocolError(501, smtp.EnhancedCode{5, 1, 3}, "Malformed recipient address")
		return
	}
	if !c.utf8 && !IsASCII(to) {
		// RFC 6531 3.4: MAIL did not say SMTPUTF8.
		c.protocolError(553, smtp.EnhancedCode{5, 6, 7}, "Non-ASCII address needs SMTPUTF8")
		return
	}
	if c.srv.MaxRecipients > 0 && len(c.rcpts) >= c.srv.MaxRecipients {
		// RFC 5321 4.5.3.1.10: 452 too many recipients.
		c.reply(452, smtp.EnhancedCode{4, 5, 3}, fmt.Sprintf("Too many recipients (at most %d)", c.srv.MaxRecipients))
		return
	}
	params, err := parseParams(rest)
	if err != nil {
		c.protocolError(501, smtp.EnhancedCode{5, 5, 4}, "Malformed RCPT parameters")
		return
	}
	if len(params) > 0 && !c.esmtp {
		// RFC 5321 4.1.1.11: parameters are extensions, which a client
		// that said HELO has not been offered.
		c.protocolError(555, smtp.EnhancedCode{5, 5, 4}, "RCPT parameters need EHLO")
		return
	}
	opts := &smtp.RcptOptions{}
	for _, p := range params {
		if !c.srv.EnableDSN && (p.key == "NOTIFY" || p.key == "ORCPT") {
			// RFC 5321 4.1.1.11: DSN is not offered.
			c.protocolError(555, smtp.EnhancedCode{5, 5, 4}, "Unknown RCPT parameter "+p.key)
			return
		}
		switch p.key {
		case "NOTIFY":
			n, ok := parseNotify(p.value)
			if !ok {
				c.protocolError(501, smtp.EnhancedCode{5, 5, 4}, "Malformed NOTIFY parameter")
				return
			}
			opts.Notify = n
		case "ORCPT":
			// RFC 3461 4.2: the value is at most 500 characters.
			typ, addr, ok := parseORCPT(p.value)
			if !ok || len(p.value) > 500 {
				c.protocolError(501, smtp.EnhancedCode{5, 5, 4}, "Malformed ORCPT parameter")
				return
			}
			opts.OriginalRecipientType, opts.OriginalRecipient = typ, addr
		default:
			c.protocolError(555, smtp.EnhancedCode{5, 5, 4}, "Unknown RCPT parameter "+safeParam(p.key))
			return
		}
	}
	if err := c.Session().Rcpt(to, opts); err != nil {
		c.refused(err)
		return
	}
	c.rcpts = append(c.rcpts, to)
	c.state = stateRcpt
	c.reply(250, smtp.EnhancedCode{2, 1, 5}, "Recipient <"+to+"> OK")
}

// cmdDATA: RFC 5321 4.1.1.4.
func (c *Conn) cmdDATA(arg string) {
	if arg != "" {
		c.protocolError(501, smtp.EnhancedCode{5, 5, 4}, "DATA takes no parameters")
		return
	}
	if c.binarymime {
		// RFC 3030 3: BINARYMIME content goes only with BDAT.
		c.protocolError(503, smtp.EnhancedCode{5, 5, 1}, "Bad sequence of commands: BODY=BINARYMIME needs BDAT")
		return
	}
	c.reply(354, smtp.NoEnhancedCode, "End data with <CR><LF>.<CR><LF>")
	if !c.flushNow() {
		c.quit = true
		return
	}
	c.startData()
	dr := newDotReader(c.r, c.srv.MaxLineLength, c.srv.MaxMessageBytes)
	var results []error
	if c.srv.LMTP {
		st := newStatus(c.rcpts)
		var err error
		if ls, ok := c.Session().(smtp.LMTPSession); ok {
			err = ls.LMTPData(dr, st)
		} else {
			err = c.Session().Data(dr)
		}
		results = st.fill(err)
	} else {
		results = []error{c.Session().Data(dr)}
	}
	if err := dr.drain(); err != nil {
		// The client is gone or silent: nothing to answer.
		c.quit = true
		return
	}
	if err := dr.Err(); err != nil {
		// The refusal of the content replaces whatever the session said:
		// the message was not received whole.
		for i := range results {
			results[i] = err
		}
	}
	c.answerData(results)
	c.reset()
}

// answerData writes the replies to a message: one, or in LMTP one per
// accepted recipient in RCPT order (RFC 2033 4.2).
func (c *Conn) answerData(results []error) {
	c.answer(results, c.srv.LMTP)
}

// answerOne writes one reply to a message, also in LMTP.
func (c *Conn) answerOne(err error) { c.answer([]error{err}, false) }

func (c *Conn) answer(results []error, perRcpt bool) {
	for i, err := range results {
		prefix := ""
		if perRcpt {
			prefix = "<" + c.rcpts[i] + "> "
		}
		if err == nil {
			c.junk = 0
			c.reply(250, smtp.EnhancedCode{2, 0, 0}, prefix+"OK")
			continue
		}
		if se, ok := err.(*smtp.SMTPError); ok {
			if se.Code/100 == 2 {
				c.junk = 0
			}
			se2 := *se
			se2.Message = prefix + se.Message
			err = &se2
		} else if prefix != "" {
			c.srv.log().Warn("delivery error without a reply", "rcpt", c.rcpts[i], "err", err)
			err = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: prefix + "Local error in processing, try again later"}
		}
		c.refused(err)
	}
	// The replies go out before the session's Reset, which may end the
	// connection (a daemon shutting down answers 421 then).
	if !c.flushNow() {
		c.quit = true
	}
}

// bdat is a message being received in BDAT chunks: the session reads it
// from a pipe while chunks arrive.
type bdat struct {
	pw      *io.PipeWriter
	result  chan []error
	size    int64
	lines   lineEnds
	refusal error // the content broke a rule: the message's one answer
}

// cmdBDAT: RFC 3030 2. The chunk follows the command whatever the reply,
// so a refused BDAT still reads its chunk; one whose size cannot be read
// ends the connection, since its bytes must not be taken for commands.
func (c *Conn) cmdBDAT(arg string) {
	f := strings.Fields(arg)
	var size uint64
	var err error
	if len(f) > 0 {
		size, err = strconv.ParseUint(f[0], 10, 63)
	}
	if len(f) == 0 || err != nil {
		c.protocolError(501, smtp.EnhancedCode{5, 5, 4}, "Malformed BDAT size, closing connection")
		c.quit = true
		c.flushNow()
		c.linger()
		return
	}
	if c.srv.MaxMessageBytes > 0 && int64(size) > c.srv.MaxMessageBytes {
		// Reading a chunk this large only to drop it is not worth it.
		c.protocolError(552, smtp.EnhancedCode{5, 3, 4}, "Message exceeds the maximum size, closing connection")
		c.quit = true
		return
	}
	n := int64(size)
	refuse := func(code int, enh smtp.EnhancedCode, text string) {
		if err := c.discard(n); err != nil {
			c.quit = true
			return
		}
		c.protocolError(code, enh, text)
	}
	last := false
	if len(f) == 2 && strings.EqualFold(f[1], "LAST") {
		last = true
	} else if len(f) > 1 {
		refuse(501, smtp.EnhancedCode{5, 5, 4}, "Syntax: BDAT size [LAST]")
		return
	}
	if c.state != stateRcpt && c.state != stateBDAT {
		refuse(503, smtp.EnhancedCode{5, 5, 1}, c.sequenceText("BDAT"))
		return
	}
	if c.bdat != nil && c.srv.MaxMessageBytes > 0 && c.bdat.size+n > c.srv.MaxMessageBytes {
		refuse(552, smtp.EnhancedCode{5, 3, 4}, "Message exceeds the maximum size")
		c.reset()
		return
	}
	if c.bdat == nil {
		c.startBDAT()
	}
	// The rate counts from the first chunk to the last, commands between
	// them included, so that many small chunks do not start it over.
	c.startData()
	b := c.bdat
	var dst io.Writer = b.pw
	if !c.binarymime {
		dst = checkedWriter{w: b.pw, l: &b.lines}
	}
	announcedLast := last
	lr := io.LimitReader(c.r, n)
	if _, err := io.Copy(dst, lr); err != nil {
		if err == replyDataBareLineEnd {
			b.refusal = err
		}
		// The session stopped reading (it has its answer), or the
		// content is refused. The rest of the chunk is still the
		// client's data, never commands.
		if _, err := io.Copy(io.Discard, lr); err != nil {
			c.quit = true
			return
		}
		last = true
	}
	if lr.(*io.LimitedReader).N > 0 {
		c.quit = true // the connection ended inside the chunk
		return
	}
	b.size += n
	if !last {
		c.state = stateBDAT
		c.reply(250, smtp.EnhancedCode{2, 0, 0}, fmt.Sprintf("%d octets received", n))
		return
	}
	if b.refusal == nil && !c.binarymime && !b.lines.complete() {
		b.refusal = replyDataBareLineEnd // the message ends in a bare CR
	}
	if b.refusal != nil {
		b.pw.CloseWithError(b.refusal)
	} else {
		b.pw.Close()
	}
	results := <-b.result
	c.bdat = nil
	if b.refusal != nil {
		for i := range results {
			results[i] = b.refusal
		}
	}
	if c.srv.LMTP && !announcedLast {
		// RFC 2033 4.2 and RFC 3030 2: the replies per recipient follow
		// BDAT LAST only; a chunk before it gets one reply, also when
		// the message ends early with it.
		c.answerOne(firstError(results))
	} else {
		c.answerData(results)
	}
	c.reset()
}

// firstError is the first refusal among a message's results; a session
// that stopped reading early without one has not received the message.
func firstError(results []error) error {
	for _, err := range results {
		if err != nil {
			return err
		}
	}
	return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Message not received whole, try again later"}
}

// startBDAT starts the session's Data (or LMTPData) on a pipe.
func (c *Conn) startBDAT() {
	pr, pw := io.Pipe()
	b := &bdat{pw: pw, result: make(chan []error, 1)}
	sess, rcpts, lmtp := c.Session(), c.rcpts, c.srv.LMTP
	go func() {
		var results []error
		defer func() {
			if v := recover(); v != nil {
				c.srv.log().Error("panic in BDAT session", "panic", v)
				// One result in SMTP, one per recipient in LMTP.
				results = make([]error, 1)
				if lmtp {
					results = make([]error, len(rcpts))
				}
				for i := range results {
					results[i] = errPanic
				}
			}
			pr.CloseWithError(io.ErrClosedPipe)
			b.result <- results
		}()
		if lmtp {
			st := newStatus(rcpts)
			var err error
			if ls, ok := sess.(smtp.LMTPSession); ok {
				err = ls.LMTPData(pr, st)
			} else {
				err = sess.Data(pr)
			}
			results = st.fill(err)
			return
		}
		results = []error{sess.Data(pr)}
	}()
	c.bdat = b
}

var errPanic = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Internal server error"}

// endTransaction stops a BDAT transfer in progress and waits for the
// session to let go of it.
func (c *Conn) endTransaction(why error) {
	if c.bdat == nil {
		return
	}
	c.bdat.pw.CloseWithError(why)
	<-c.bdat.result
	c.bdat = nil
}

// reset ends the transaction (RFC 5321 4.1.1.5).
func (c *Conn) reset() {
	c.endTransaction(smtp.ErrDataReset)
	if s := c.Session(); s != nil {
		s.Reset()
	}
	if c.state != stateGreet {
		c.state = stateReady
	}
	c.rcpts, c.binarymime, c.utf8 = nil, false, false
	c.dataStart = time.Time{}
}

func (c *Conn) cmdRSET(arg string) {
	if strings.TrimSpace(arg) != "" {
		c.protocolError(501, smtp.EnhancedCode{5, 5, 4}, "RSET takes no parameters")
		return
	}
	if c.junkCommand() {
		return
	}
	c.reset()
	c.reply(250, smtp.EnhancedCode{2, 0, 0}, "OK")
}

func (c *Conn) cmdNOOP(string) {
	if c.junkCommand() {
		return
	}
	c.reply(250, smtp.EnhancedCode{2, 0, 0}, "OK")
}

func (c *Conn) cmdQUIT(string) {
	c.reply(221, smtp.EnhancedCode{2, 0, 0}, "Bye")
	c.quit = true
}

// cmdVRFY: RFC 5321 3.5.3, 252: the address is not verified, to give
// away nothing about who exists.
func (c *Conn) cmdVRFY(string) {
	if c.junkCommand() {
		return
	}
	c.reply(252, smtp.EnhancedCode{2, 5, 0}, "Cannot VRFY user, but will accept message")
}

func (c *Conn) cmdNotImplemented(string) {
	c.protocolError(502, smtp.EnhancedCode{5, 5, 1}, "Command not implemented")
}

// cmdAUTH: RFC 4954 4.
func (c *Conn) cmdAUTH(arg string) {
	if c.didAuth {
		c.protocolError(503, smtp.EnhancedCode{5, 5, 1}, "Bad sequence of commands: already authenticated")
		return
	}
	f := strings.Fields(arg)
	if len(f) == 0 || len(f) > 2 {
		c.protocolError(501, smtp.EnhancedCode{5, 5, 4}, "Syntax: AUTH mechanism [initial-response]")
		return
	}
	as, ok := c.Session().(smtp.AuthSession)
	if !ok {
		c.protocolError(502, smtp.EnhancedCode{5, 5, 1}, "AUTH not available")
		return
	}
	var resp []byte
	if len(f) == 2 {
		var ok bool
		if resp, ok = decodeSASL(f[1]); !ok {
			c.protocolError(501, smtp.EnhancedCode{5, 5, 2}, "Invalid base64 data")
			return
		}
	}
	srv, err := as.Auth(strings.ToUpper(f[0]))
	if err != nil {
		c.refused(err)
		return
	}
	for {
		challenge, done, err := srv.Next(resp)
		if err != nil {
			if _, ok := err.(*smtp.SMTPError); !ok {
				err = smtp.ErrAuthFailed
			}
			c.refused(err)
			return
		}
		if done {
			break
		}
		c.reply(334, smtp.NoEnhancedCode, base64.StdEncoding.EncodeToString(challenge))
		if !c.flushNow() {
			c.quit = true
			return
		}
		line, err := c.readLine()
		if errors.Is(err, ErrLineTooLong) {
			// RFC 4954 6: the response does not fit; what is left of
			// it cannot be told from commands, so the session ends.
			c.reply(500, smtp.EnhancedCode{5, 5, 6}, "Authentication Exchange line is too long, closing connection")
			c.flushNow()
			c.linger()
			c.quit = true
			return
		}
		if err != nil {
			c.readFailed(err)
			c.quit = true
			return
		}
		if line == "*" {
			// RFC 4954 4: the client cancelled.
			c.protocolError(501, smtp.EnhancedCode{5, 0, 0}, "Authentication cancelled")
			return
		}
		var ok bool
		if resp, ok = decodeSASL(line); !ok {
			c.protocolError(501, smtp.EnhancedCode{5, 5, 2}, "Invalid base64 data")
			return
		}
	}
	c.didAuth = true
	c.reply(235, smtp.EnhancedCode{2, 7, 0}, "Authentication successful")
}

func decodeSASL(s string) ([]byte, bool) {
	if s == "=" {
		return []byte{}, true
	}
	b, err := base64.StdEncoding.DecodeString(s)
	return b, err == nil
}

// cmdSTARTTLS: RFC 3207 4. The loop does the upgrade on its own reader,
// so that the commands after it are read, as before it, by the strict
// reader.
func (c *Conn) cmdSTARTTLS(arg string) {
	if arg != "" {
		// RFC 3207 4: STARTTLS takes no parameters; 501 if any.
		c.protocolError(501, smtp.EnhancedCode{5, 5, 4}, "STARTTLS takes no parameters")
		return
	}
	raw := c.Conn()
	if _, isTLS := raw.(*tls.Conn); isTLS {
		c.protocolError(503, smtp.EnhancedCode{5, 5, 1}, "Bad sequence of commands: TLS already active")
		return
	}
	if c.srv.TLSConfig == nil {
		c.protocolError(502, smtp.EnhancedCode{5, 5, 1}, "STARTTLS not available")
		return
	}
	c.reply(220, smtp.EnhancedCode{2, 0, 0}, "Ready to start TLS")
	if !c.flushNow() {
		c.quit = true
		return
	}
	if n := c.r.Buffered(); n > 0 {
		// RFC 3207 4.2: anything the client sent behind STARTTLS, before
		// the handshake, is not to be trusted; it is thrown away.
		c.srv.log().Info("discarded input pipelined behind STARTTLS", "client", raw.RemoteAddr().String(), "bytes", n)
	}
	tc := tls.Server(raw, c.srv.TLSConfig)
	c.mu.Lock()
	c.nc = tc
	c.mu.Unlock()
	c.r = bufio.NewReaderSize(deadlineReader{c}, 4096)
	c.w = bufio.NewWriterSize(tc, 4096)
	if !c.handshake(tc) {
		// A failed handshake ends the connection: carrying on in
		// plaintext would let an attacker strip TLS.
		c.quit = true
		return
	}
	// RFC 3207 4.2: the server forgets everything it learnt before TLS;
	// the client starts again with EHLO. The backend gets a new session,
	// which sees the TLS state.
	c.reset()
	if s := c.Session(); s != nil {
		s.Logout()
		c.setSession(nil)
	}
	c.state, c.helo, c.esmtp, c.didAuth = stateGreet, "", false, false
}
