package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"

	"github.com/emersion/go-milter"
	"github.com/emersion/go-smtp"

	"tern/common/config"
	"tern/common/mailaddr"
	"tern/common/maillog"
	"tern/common/trace"
)

// The milter client (sendmail's mail filter protocol, as Postfix speaks
// it). Each message is shown to each milter of smtpd.milters in turn, on
// a connection of its own, at the end of DATA: connect, HELO, MAIL, each
// RCPT, the header fields, the body, end of message. Every stage is sent
// then, with the macros rspamd and clamav-milter read, so a milter sees
// the same transaction it would see live; the difference is only that a
// verdict given at an early stage reaches the client after DATA.
//
// What a milter answers is honoured:
//   - continue: on to the next stage; accept: this milter is done with
//     the message (the next milter still runs);
//   - reject, tempfail and a reply code: the message is refused with that
//     reply (554 5.7.1 and 451 4.7.1 for the bare ones); at RCPT only that
//     recipient is dropped;
//   - discard: 250 to the client, and the message is dropped;
//   - at the end: header fields added, inserted, changed or deleted, the
//     body replaced, recipients added or removed, the sender changed, and
//     quarantine, which holds the message in the queue (mailq shows it
//     held; `mailq -release ID` lets it go);
//   - a milter that cannot be reached, times out or breaks the protocol:
//     smtpd.milter_default_action, 451 4.7.1 ("tempfail") or skipping it
//     ("accept").

// milterActions are the changes smtpd lets milters make (SMFIF_*).
const milterActions = milter.OptAddHeader | milter.OptChangeBody | milter.OptAddRcpt |
	milter.OptRemoveRcpt | milter.OptChangeHeader | milter.OptQuarantine | milter.OptChangeFrom

// milterProtocol are the protocol steps smtpd lets milters skip or not
// answer (SMFIP_*); a milter asking for one not offered would refuse to
// talk (libmilter checks).
const milterProtocol = milter.OptNoConnect | milter.OptNoHelo | milter.OptNoMailFrom | milter.OptNoRcptTo |
	milter.OptNoBody | milter.OptNoHeaders | milter.OptNoEOH | milter.OptNoUnknown | milter.OptNoData |
	milter.OptSkip | milter.OptRcptRej | milter.OptNoHeaderReply | milter.OptNoConnReply |
	milter.OptNoHeloReply | milter.OptNoMailReply | milter.OptNoRcptReply | milter.OptNoDataReply |
	milter.OptNoUnknownReply | milter.OptNoEOHReply | milter.OptNoBodyReply | milter.OptHeaderLeadingSpace

// runMilters shows the message to each milter in turn and applies what
// they decide.
func (s *session) runMilters(ctx context.Context, addrs []string, m *message, id string) (filterResult, error) {
	var res filterResult
	for _, addr := range addrs {
		v, err := s.runMilter(addr, m, id)
		if err != nil {
			s.log.Warn("milter failed", "milter", addr, "id", id, "err", err,
				"action", s.srv.cfg().SMTPD.MilterDefaultAction)
			if s.srv.cfg().SMTPD.MilterDefaultAction == "accept" {
				continue
			}
			return res, replyMilterDown
		}
		if v.reply != nil {
			maillog.Rejected(s.log, maillog.Rejection{Stage: "data", ID: id, From: s.from, Code: v.reply.Code,
				Reason: "milter " + addr + ": " + v.reply.Message})
			return res, v.reply
		}
		if v.discard {
			maillog.Discarded(s.log, id, s.from, "", "milter "+addr)
			return filterResult{discard: true}, nil
		}
		if v.quarantine != "" && res.quarantine == "" {
			res.quarantine = v.quarantine
		}
		s.applyMilterChanges(m, v, addr, id)
		if len(s.rcpts) == 0 {
			// Every recipient was removed or refused: nothing to deliver.
			if v.lastRefusal != nil {
				return res, v.lastRefusal
			}
			maillog.Discarded(s.log, id, s.from, "", "milter "+addr)
			return filterResult{discard: true}, nil
		}
	}
	return res, nil
}

// milterVerdict is one milter's answer for one message.
type milterVerdict struct {
	reply       *smtp.SMTPError // refused with this reply
	discard     bool
	quarantine  string
	mods        []milter.ModifyAction
	dropRcpts   map[string]bool // refused at RCPT by this milter
	lastRefusal *smtp.SMTPError // the reply of the last RCPT refusal
}

// runMilter runs one milter over the message. An error means the milter
// failed (unreachable, timeout, protocol), not that it refused.
func (s *session) runMilter(addr string, m *message, id string) (v milterVerdict, err error) {
	cfg := s.srv.cfg().SMTPD
	network, address, err := config.MilterAddr(addr)
	if err != nil {
		return v, err
	}
	open := func(actions milter.OptAction, protocol milter.OptProtocol) (*milter.ClientSession, error) {
		return milter.NewClientWithOptions(network, address, milter.ClientOptions{
			Dialer:       &net.Dialer{Timeout: cfg.MilterConnectTimeout.D()},
			ReadTimeout:  cfg.MilterTimeout.D(),
			WriteTimeout: cfg.MilterTimeout.D(),
			ActionMask:   actions,
			ProtocolMask: protocol,
		}).Session()
	}
	ms, err := open(milterActions, milterProtocol)
	if errors.Is(err, milter.ErrUnsupportedMilterVersion) {
		// A milter of protocol version 2 to 5 knows only the older
		// actions and steps; offer those again on a new connection.
		ms, err = open(milterActions&0x3f, milterProtocol&0x7f)
	}
	if err != nil {
		return v, err
	}
	defer ms.Close()

	// done reports whether act ends this milter's part; stage names the
	// step, for the bare reject's reply.
	done := func(act *milter.Action, stage string) bool {
		switch act.Code {
		case milter.ActContinue, milter.ActSkip:
			return false
		case milter.ActAccept:
			return true
		case milter.ActDiscard:
			v.discard = true
		default:
			v.reply = milterReply(act, stage)
		}
		return true
	}

	family, port, host := milterPeer(s)
	helo := s.conn.Hostname()
	if err := ms.Macros(milter.CodeConn, "j", s.srv.cfg().Hostname, "{daemon_name}", "tern-smtpd",
		"{client_addr}", s.ip, "{client_name}", host, "_", host+" ["+s.ip+"]"); err != nil {
		return v, err
	}
	act, err := ms.Conn(host, family, port, s.ip)
	if err != nil {
		return v, err
	}
	if done(act, "connect") {
		return v, nil
	}
	act, err = ms.Helo(helo)
	if err != nil {
		return v, err
	}
	if done(act, "helo") {
		return v, nil
	}
	mailMacros := []string{"i", id, "{mail_addr}", s.from}
	if s.authUser != "" {
		mailMacros = append(mailMacros, "{auth_authen}", s.authUser, "{auth_type}", "PLAIN")
	}
	if tlsState, ok := s.conn.TLSConnectionState(); ok {
		mailMacros = append(mailMacros, "{tls_version}", tlsVersionName(tlsState.Version))
	}
	if err := ms.Macros(milter.CodeMail, mailMacros...); err != nil {
		return v, err
	}
	act, err = ms.Mail(s.from, nil)
	if err != nil {
		return v, err
	}
	if done(act, "mail") {
		return v, nil
	}
	v.dropRcpts = map[string]bool{}
	for _, r := range s.rcpts {
		if err := ms.Macros(milter.CodeRcpt, "{rcpt_addr}", r.addr); err != nil {
			return v, err
		}
		act, err := ms.Rcpt(r.addr, nil)
		if err != nil {
			return v, err
		}
		switch act.Code {
		case milter.ActReject, milter.ActTempFail, milter.ActReplyCode:
			// RFC 5321 and the milter protocol: a refusal at RCPT is
			// about this recipient only.
			v.dropRcpts[r.addr] = true
			v.lastRefusal = milterReply(act, "rcpt")
			continue
		}
		if done(act, "rcpt") {
			return v, nil
		}
	}
	if len(v.dropRcpts) == len(s.rcpts) {
		return v, nil // nobody left to show the message for
	}
	leadSpace := ms.ProtocolOption(milter.OptHeaderLeadingSpace)
	for _, f := range m.h {
		val := strings.ReplaceAll(f.value(), "\r\n", "\n")
		if !leadSpace {
			val = strings.TrimLeft(val, " \t")
		}
		act, err := ms.HeaderField(f.name, val)
		if err != nil {
			return v, err
		}
		if done(act, "header") {
			return v, nil
		}
	}
	act, err = ms.HeaderEnd()
	if err != nil {
		return v, err
	}
	if done(act, "header") {
		return v, nil
	}
	buf := make([]byte, milter.MaxBodyChunk)
	body := m.bodyReader()
	for {
		n, rerr := io.ReadFull(body, buf)
		if n > 0 {
			act, err := ms.BodyChunk(buf[:n])
			if err != nil {
				return v, err
			}
			if act.Code == milter.ActSkip {
				break // the milter has seen enough of the body
			}
			if done(act, "body") {
				return v, nil
			}
		}
		if rerr != nil {
			if errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF) {
				break
			}
			return v, fmt.Errorf("read message: %w", rerr)
		}
	}
	if err := ms.Macros(milter.CodeEOB, "i", id); err != nil {
		return v, err
	}
	mods, act, err := ms.End()
	if err != nil {
		return v, err
	}
	if done(act, "end") && (v.reply != nil || v.discard) {
		return v, nil
	}
	for _, mod := range mods {
		if mod.Code == milter.ActQuarantine {
			v.quarantine = strings.TrimSpace(mod.Reason)
			if v.quarantine == "" {
				v.quarantine = "quarantined by " + addr
			}
			continue
		}
		v.mods = append(v.mods, mod)
	}
	return v, nil
}

// applyMilterChanges applies one milter's changes to the message and the
// envelope, in the order the milter sent them.
func (s *session) applyMilterChanges(m *message, v milterVerdict, addr, id string) {
	log := s.log.With("milter", addr, "id", id)
	if len(v.dropRcpts) > 0 {
		kept := s.rcpts[:0]
		for _, r := range s.rcpts {
			if v.dropRcpts[r.addr] {
				maillog.Rejected(s.log, maillog.Rejection{Stage: "data", ID: id, From: s.from, To: r.addr, Reason: "milter " + addr + " removed the recipient"})
				continue
			}
			kept = append(kept, r)
		}
		s.rcpts = kept
	}
	replacing := false
	for _, mod := range v.mods {
		switch mod.Code {
		case milter.ActAddHeader:
			if validFieldName(mod.HeaderName) {
				m.h = append(m.h, newField(mod.HeaderName, mod.HeaderValue))
			}
		case milter.ActInsertHeader:
			if validFieldName(mod.HeaderName) {
				m.h = m.h.insert(int(mod.HeaderIndex), newField(mod.HeaderName, mod.HeaderValue))
			}
		case milter.ActChangeHeader:
			if validFieldName(mod.HeaderName) {
				m.h = m.h.change(mod.HeaderName, int(mod.HeaderIndex), mod.HeaderValue)
			}
		case milter.ActReplBody:
			// The new body comes in chunks; the first one starts over.
			if !replacing {
				m.newBody, replacing = nil, true
			}
			m.newBody = append(m.newBody, mod.Body...)
			m.replaced = true
		}
	}
	if replacing {
		// Milters write line ends as sendmail keeps them (LF); the
		// message keeps CRLF (RFC 5321 2.3.8).
		m.newBody = toCRLF(m.newBody)
	}
	// The envelope changes, after the message's.
	for _, mod := range v.mods {
		switch mod.Code {
		case milter.ActChangeFrom:
			from := strings.Trim(strings.TrimSpace(mod.From), "<>")
			if from != "" {
				if _, _, err := mailaddr.Split(from); err != nil {
					log.Warn("milter gave a malformed sender, ignored", "from", from)
					continue
				}
			}
			log.Info("milter changed sender", "from", s.from, "to", from)
			s.from = from
		case milter.ActAddRcpt:
			s.milterAddRcpt(strings.Trim(strings.TrimSpace(mod.Rcpt), "<>"), log)
		case milter.ActDelRcpt:
			addr := strings.Trim(strings.TrimSpace(mod.Rcpt), "<>")
			kept := s.rcpts[:0]
			for _, r := range s.rcpts {
				if strings.EqualFold(r.addr, addr) {
					log.Info("milter removed recipient", "to", r.addr)
					continue
				}
				kept = append(kept, r)
			}
			s.rcpts = kept
		}
	}
}

// milterAddRcpt adds a recipient a milter asked for: a local one must
// exist; a remote one is taken, since the milter is the admin's own.
func (s *session) milterAddRcpt(addr string, log interface{ Info(string, ...any) }) {
	local, domain, err := mailaddr.Split(addr)
	if err != nil {
		log.Info("milter added a malformed recipient, ignored", "to", addr)
		return
	}
	addr = local + "@" + domain
	for _, r := range s.rcpts {
		if strings.EqualFold(r.addr, addr) {
			return
		}
	}
	r := rcpt{addr: addr}
	if s.srv.cfg().IsLocalDomain(domain) {
		if _, err := s.srv.rcpts.Resolve(addr); err != nil {
			log.Info("milter added an unknown local recipient, ignored", "to", addr, "err", err)
			return
		}
		r.local = true
	}
	log.Info("milter added recipient", "to", addr)
	s.rcpts = append(s.rcpts, r)
}

// milterPeer describes the client for the milter's connect step.
func milterPeer(s *session) (milter.ProtoFamily, uint16, string) {
	host := s.conn.Hostname()
	if host == "" {
		host = "unknown"
	}
	switch a := s.conn.Conn().RemoteAddr().(type) {
	case *net.TCPAddr:
		if a.IP.To4() != nil {
			return milter.FamilyInet, uint16(a.Port), host
		}
		return milter.FamilyInet6, uint16(a.Port), host
	case *net.UnixAddr:
		return milter.FamilyUnix, 0, "localhost"
	}
	return milter.FamilyUnknown, 0, host
}

func tlsVersionName(v uint16) string {
	switch v {
	case 0x0304:
		return "TLSv1.3"
	case 0x0303:
		return "TLSv1.2"
	}
	return "TLS"
}

// milterReply turns a milter's refusal into the reply to the client.
func milterReply(act *milter.Action, stage string) *smtp.SMTPError {
	switch act.Code {
	case milter.ActTempFail:
		return replyMilterTempfail
	case milter.ActReplyCode:
		if r := parseMilterReply(act.SMTPCode, act.SMTPText); r != nil {
			return r
		}
		if act.SMTPCode >= 400 && act.SMTPCode < 500 {
			return replyMilterTempfail
		}
		return replyMilterReject
	}
	if stage == "rcpt" {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Recipient rejected by content filter"}
	}
	return replyMilterReject
}

// parseMilterReply reads the reply a milter set (smfi_setreply,
// smfi_setmlreply): a 4xx or 5xx code, then text that may start with an
// enhanced status code (RFC 3463) and may span lines, each after the
// first repeating "code-" or "code ". It returns nil for a reply that is
// not a refusal, so that a milter cannot make smtpd answer 2xx or 3xx
// where it means to refuse.
func parseMilterReply(code int, text string) *smtp.SMTPError {
	if code < 400 || code > 599 {
		return nil
	}
	prefix := strconv.Itoa(code)
	lines := strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n")
	var out []string
	enh := smtp.EnhancedCodeNotSet
	for i, l := range lines {
		if i > 0 {
			l = strings.TrimPrefix(l, prefix)
			if len(l) > 0 && (l[0] == '-' || l[0] == ' ') {
				l = l[1:]
			}
		}
		// The enhanced code's class must match the reply's (RFC 3463 2).
		first, rest, _ := strings.Cut(l, " ")
		if e, ok := parseEnhanced(first, code/100); ok {
			if i == 0 {
				enh = e
			}
			l = rest
		}
		l = trace.Reply(l)
		if strings.TrimSpace(l) == "" && len(lines) > 1 {
			continue
		}
		out = append(out, l)
	}
	// RFC 2034 4: every line of a multi-line reply carries the enhanced
	// code; the protocol library writes it on the last line only.
	if enh != smtp.EnhancedCodeNotSet {
		for i := 0; i < len(out)-1; i++ {
			out[i] = fmt.Sprintf("%d.%d.%d %s", enh[0], enh[1], enh[2], out[i])
		}
	}
	msg := strings.Join(out, "\n")
	if strings.TrimSpace(msg) == "" {
		msg = "Message rejected by content filter"
		if code < 500 {
			msg = "Message deferred by content filter, try again later"
		}
	}
	return &smtp.SMTPError{Code: code, EnhancedCode: enh, Message: msg}
}

// parseEnhanced reads "c.s.d" (RFC 3463 2) with class c.
func parseEnhanced(s string, class int) (smtp.EnhancedCode, bool) {
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return smtp.EnhancedCode{}, false
	}
	var e smtp.EnhancedCode
	for i, p := range parts {
		if p == "" || len(p) > 3 {
			return smtp.EnhancedCode{}, false
		}
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return smtp.EnhancedCode{}, false
		}
		e[i] = n
	}
	if e[0] != class {
		return smtp.EnhancedCode{}, false
	}
	return e, true
}

// toCRLF makes every line end in CRLF: a bare LF or a bare CR becomes
// CRLF.
func toCRLF(b []byte) []byte {
	out := make([]byte, 0, len(b)+len(b)/32)
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case c == '\r' && i+1 < len(b) && b[i+1] == '\n':
			out = append(out, '\r', '\n')
			i++
		case c == '\r' || c == '\n':
			out = append(out, '\r', '\n')
		default:
			out = append(out, c)
		}
	}
	return out
}
