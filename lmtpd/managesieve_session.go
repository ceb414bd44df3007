package main

import (
	"bufio"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-sasl"

	"tern/common/auth"
	"tern/common/authguard"
	"tern/common/listen"
	"tern/common/maillog"
	"tern/common/serve"
)

// msState is a ManageSieve session state (RFC 5804 2).
type msState uint8

const (
	msNonAuth msState = 1 << iota // before AUTHENTICATE succeeds
	msAuth                        // logged in
)

// msHandler runs one command; an error ends the session at once.
type msHandler func(s *msSession, args []msArg) (msReply, error)

type msCommand struct {
	states msState
	run    msHandler
}

// msCommands is the command table: the dispatcher checks the state before
// any handler runs. RFC 5804 2.1-2.14.
var msCommands = map[string]msCommand{
	"CAPABILITY":     {msNonAuth | msAuth, (*msSession).cmdCapability},
	"LOGOUT":         {msNonAuth | msAuth, (*msSession).cmdLogout},
	"NOOP":           {msNonAuth | msAuth, (*msSession).cmdNoop},
	"STARTTLS":       {msNonAuth, (*msSession).cmdStarttls},
	"AUTHENTICATE":   {msNonAuth, (*msSession).cmdAuthenticate},
	"UNAUTHENTICATE": {msAuth, (*msSession).cmdUnauthenticate},
	"HAVESPACE":      {msAuth, (*msSession).cmdHavespace},
	"PUTSCRIPT":      {msAuth, (*msSession).cmdPutscript},
	"CHECKSCRIPT":    {msAuth, (*msSession).cmdCheckscript},
	"LISTSCRIPTS":    {msAuth, (*msSession).cmdListscripts},
	"SETACTIVE":      {msAuth, (*msSession).cmdSetactive},
	"GETSCRIPT":      {msAuth, (*msSession).cmdGetscript},
	"DELETESCRIPT":   {msAuth, (*msSession).cmdDeletescript},
	"RENAMESCRIPT":   {msAuth, (*msSession).cmdRenamescript},
}

var (
	errMSShutdown = errors.New("managesieve: server shutting down")
	errMSIdle     = errors.New("managesieve: idle timeout")
)

// msSession is one ManageSieve connection.
type msSession struct {
	srv      *msServer
	log      *slog.Logger
	raw      *serve.Conn
	conn     net.Conn
	r        *bufio.Reader
	w        *bufio.Writer
	ip       string
	loopback bool
	tls      bool

	state    msState
	user     string
	store    *sieveStore
	failures int
	errors   int
}

func newMSSession(srv *msServer, c *serve.Conn) *msSession {
	s := &msSession{srv: srv, raw: c, state: msNonAuth, loopback: listen.IsLoopback(c.RemoteAddr()),
		ip: c.Client(), log: c.Log}
	s.setConn(c)
	return s
}

// setConn puts the reader and writer on c. Bytes sent before a TLS
// handshake are dropped with the old reader, so nothing injected in
// plaintext runs inside TLS.
func (s *msSession) setConn(c net.Conn) {
	s.conn = c
	s.r = bufio.NewReaderSize(c, 4096)
	s.w = bufio.NewWriterSize(c, 16<<10)
}

// plaintextAllowed: PLAIN and LOGIN send the password as it is, so only
// over TLS or on loopback (RFC 5804 2.1 and 1.7).
func (s *msSession) plaintextAllowed() bool { return s.tls || s.loopback }

// timeout is the wait for the client; before login common/serve caps it
// at [login] timeout.
func (s *msSession) timeout() time.Duration {
	return s.srv.cfg.ManageSieve.IdleTimeout.D()
}

func (s *msSession) serve() {
	defer func() {
		s.raw.SetWriteDeadline(time.Now().Add(time.Second))
		s.conn.Close()
		s.raw.Close()
		if s.user != "" {
			maillog.Logout(s.log, s.user)
		}
	}()
	s.log.Debug("connected")
	// RFC 5804 1.7: the greeting is the capability response.
	if err := s.send(s.capabilities()); err != nil {
		return
	}
	for {
		verb, args, err := s.read()
		if err != nil {
			if !s.readError(err) {
				return
			}
			continue
		}
		if verb == "AUTHENTICATE" {
			s.log.Debug("command", "verb", verb) // never the credentials
		} else {
			s.log.Debug("command", "verb", verb, "args", len(args))
		}
		cmd, ok := msCommands[verb]
		if !ok {
			if !s.fail(msReply{kind: "NO", text: "unknown command", bad: true}) {
				return
			}
			continue
		}
		if cmd.states&s.state == 0 {
			if !s.fail(msReply{kind: "NO", text: verb + " is not valid now", bad: true}) {
				return
			}
			continue
		}
		r, err := cmd.run(s, args)
		if err != nil {
			if errors.Is(err, errMSShutdown) || errors.Is(err, errMSIdle) {
				s.readError(err)
			} else {
				s.log.Debug("session ended", "err", err)
			}
			return
		}
		if r.bad {
			if !s.fail(r) {
				return
			}
			continue
		}
		if err := s.send(r); err != nil {
			return
		}
		if r.then != nil {
			if err := r.then(); err != nil {
				s.log.Debug("session ended", "err", err)
				return
			}
		}
		if r.quit {
			return
		}
	}
}

// read reads a command with the state's timeout; errMSShutdown as soon as
// the server stops (common/serve ends the wait).
func (s *msSession) read() (string, []msArg, error) {
	s.raw.SetReadDeadline(time.Now().Add(s.timeout()))
	verb, args, err := readCommand(s.r, s.srv.cfg.ManageSieve.MaxLineLength, int64(s.srv.cfg.LMTPD.SieveMaxSize))
	if errors.Is(err, serve.ErrShutdown) {
		return "", nil, errMSShutdown
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return "", nil, errMSIdle
	}
	return verb, args, err
}

// readError answers a failed read; it reports whether the session goes on.
func (s *msSession) readError(err error) bool {
	switch {
	case errors.Is(err, errMSLineTooLong):
		return s.fail(msReply{kind: "NO", text: "line too long", bad: true})
	case errors.Is(err, errMSHuge):
		// The literal was not read: the stream is out of step.
		s.sendLast(msReply{kind: "BYE", code: "QUOTA/MAXSIZE", text: "literal too big"})
		return false
	case errors.Is(err, errMSTooBig):
		return s.send(msNO("QUOTA/MAXSIZE", "script too big")) == nil
	case errors.Is(err, errMSSyntax):
		return s.fail(msSyntax)
	case errors.Is(err, errMSShutdown):
		s.sendLast(msReply{kind: "BYE", code: "TRYLATER", text: "server shutting down"})
	case errors.Is(err, errMSIdle):
		s.sendLast(msReply{kind: "BYE", text: "idle for too long"})
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
	default:
		s.log.Debug("read failed", "err", err)
	}
	return false
}

// fail counts a bad command; past managesieve.max_errors the session ends.
func (s *msSession) fail(r msReply) bool {
	s.errors++
	if s.errors >= s.srv.cfg.ManageSieve.MaxErrors {
		s.sendLast(msReply{kind: "BYE", text: r.text + "; too many errors"})
		return false
	}
	return s.send(r) == nil
}

func (s *msSession) send(r msReply) error {
	s.raw.SetWriteDeadline(time.Now().Add(s.srv.cfg.ManageSieve.IdleTimeout.D()))
	if _, err := s.w.WriteString(r.String()); err != nil {
		return err
	}
	return s.w.Flush()
}

func (s *msSession) sendLast(r msReply) {
	s.raw.SetWriteDeadline(time.Now().Add(time.Second))
	s.w.WriteString(r.String())
	s.w.Flush()
}

// capabilities is the capability response (RFC 5804 1.7), ending in OK.
// Mechanisms are listed only where they may be used, so that no client
// sends a password in the clear to learn that it was refused.
func (s *msSession) capabilities() msReply {
	var b strings.Builder
	line := func(name, value string, has bool) {
		b.WriteString(msString(name))
		if has {
			b.WriteString(" " + msString(value))
		}
		b.WriteString("\r\n")
	}
	line("IMPLEMENTATION", "tern", true)
	mechs := ""
	if s.state == msNonAuth && s.plaintextAllowed() {
		mechs = "PLAIN LOGIN"
	}
	line("SASL", mechs, true)
	line("SIEVE", strings.Join(append(append([]string{}, sieveExtensions...), "reject", "ereject"), " "), true)
	if s.srv.tls != nil && !s.tls && s.state == msNonAuth {
		line("STARTTLS", "", false)
	}
	if s.state == msAuth {
		line("OWNER", s.user, true)
	}
	line("UNAUTHENTICATE", "", false)
	line("VERSION", "1.0", true)
	b.WriteString("OK")
	// The lines go out as the reply's kind so that String adds the CRLF.
	return msReply{kind: b.String()}
}

func nArgs(args []msArg, min, max int) bool {
	if len(args) < min || len(args) > max {
		return false
	}
	for _, a := range args {
		if a.isNum {
			return false
		}
	}
	return true
}

func (s *msSession) cmdCapability(args []msArg) (msReply, error) {
	if len(args) != 0 {
		return msSyntax, nil
	}
	return s.capabilities(), nil
}

func (s *msSession) cmdLogout(args []msArg) (msReply, error) {
	// RFC 5804 2.3: OK, then the server closes the connection.
	return msReply{kind: "OK", text: "logout", quit: true}, nil
}

// cmdNoop answers NOOP, echoing its tag (RFC 5804 2.13).
func (s *msSession) cmdNoop(args []msArg) (msReply, error) {
	if !nArgs(args, 0, 1) {
		return msSyntax, nil
	}
	r := msOK("done")
	if len(args) == 1 {
		r.code = "TAG " + msString(args[0].s)
	}
	return r, nil
}

// cmdStarttls starts TLS (RFC 5804 2.2); the capabilities are sent again
// after the handshake.
func (s *msSession) cmdStarttls(args []msArg) (msReply, error) {
	if len(args) != 0 {
		return msSyntax, nil
	}
	if s.tls || s.srv.tls == nil {
		return msNO("", "TLS is not available"), nil
	}
	return msReply{kind: "OK", text: "begin TLS negotiation", then: s.startTLS}, nil
}

func (s *msSession) startTLS() error {
	tc, err := s.raw.StartTLS(s.srv.tls)
	if err != nil {
		return fmt.Errorf("tls handshake: %w", err)
	}
	s.setConn(tc)
	s.tls = true
	s.log.Debug("tls started")
	// RFC 5804 2.2: after the handshake the server re-issues the
	// capability response.
	return s.send(s.capabilities())
}

// cmdAuthenticate runs a SASL exchange (RFC 5804 2.1): challenges are
// strings, each answered by a string, "*" cancels.
func (s *msSession) cmdAuthenticate(args []msArg) (msReply, error) {
	if !nArgs(args, 1, 2) {
		return msSyntax, nil
	}
	if !s.plaintextAllowed() {
		// RFC 5804 1.3: ENCRYPT-NEEDED, try again after STARTTLS.
		return msNO("ENCRYPT-NEEDED", "use STARTTLS first"), nil
	}
	var address string
	onSuccess := func(a string) error { address = a; return nil }
	var mech sasl.Server
	switch strings.ToUpper(args[0].s) {
	case "PLAIN":
		mech = s.srv.users.NewPlainServer(onSuccess)
	case "LOGIN":
		mech = s.srv.users.NewLoginServer(onSuccess)
	default:
		return msNO("", "unsupported SASL mechanism"), nil
	}
	var resp []byte
	if len(args) == 2 {
		var err error
		if resp, err = base64.StdEncoding.DecodeString(args[1].s); err != nil {
			return s.authFailed("", fmt.Errorf("%w: initial response", auth.ErrMalformed)), nil
		}
	}
	// The brake exempts an account that logged in from this address
	// lately; the account is the one the initial response names, if any.
	account := s.srv.users.Canonical(authguard.SASLAccount(args[0].s, resp))
	if s.srv.guard.Before(s.srv.conns.Context(), s.ip, account, s.log) != nil {
		return msReply{}, errMSShutdown
	}
	for {
		challenge, done, err := mech.Next(resp)
		if err != nil {
			return s.authFailed(account, err), nil
		}
		if done {
			return s.login(address)
		}
		if _, err := s.w.WriteString(msString(base64.StdEncoding.EncodeToString(challenge)) + "\r\n"); err != nil {
			return msReply{}, err
		}
		if err := s.w.Flush(); err != nil {
			return msReply{}, err
		}
		ans, err := s.readResponse()
		if errors.Is(err, errMSSyntax) || errors.Is(err, errMSLineTooLong) {
			return s.authFailed(account, fmt.Errorf("%w: %v", auth.ErrMalformed, err)), nil
		}
		if err != nil {
			return msReply{}, err
		}
		if ans == "*" {
			return msNO("", "authentication cancelled"), nil
		}
		if resp, err = base64.StdEncoding.DecodeString(ans); err != nil {
			return s.authFailed(account, fmt.Errorf("%w: response", auth.ErrMalformed)), nil
		}
	}
}

// readResponse reads a client's SASL response: one string on a line.
func (s *msSession) readResponse() (string, error) {
	s.raw.SetReadDeadline(time.Now().Add(s.timeout()))
	line, err := readMSLine(s.r, s.srv.cfg.ManageSieve.MaxLineLength)
	if errors.Is(err, serve.ErrShutdown) {
		return "", errMSShutdown
	}
	if err != nil {
		return "", err
	}
	if n, ok := strings.CutPrefix(line, "{"); ok {
		n = strings.TrimSuffix(strings.TrimSuffix(n, "}"), "+")
		size, err := strconv.Atoi(n)
		if err != nil || size < 0 || size > s.srv.cfg.ManageSieve.MaxLineLength {
			return "", errMSSyntax
		}
		b := make([]byte, size)
		if _, err := io.ReadFull(s.r, b); err != nil {
			return "", err
		}
		// The literal ends the response line.
		if rest, err := readMSLine(s.r, 2); err != nil || rest != "" {
			return "", errMSSyntax
		}
		return string(b), nil
	}
	v, n, err := unquote(line)
	if err != nil || n != len(line) {
		return "", errMSSyntax
	}
	return v, nil
}

// authFailed counts a failed login for the connection and for the client
// address (common/authguard), logs it for fail2ban, and closes the
// connection past [login] max_failures.
func (s *msSession) authFailed(account string, err error) msReply {
	s.failures++
	ipFailures := s.srv.guard.Failed(s.ip, account, s.log)
	maillog.AuthFailed(s.log, account, auth.Reason(err), s.failures, ipFailures)
	if s.failures >= s.srv.cfg.Login.MaxFailures {
		return msReply{kind: "BYE", text: "authentication failed; too many failures", quit: true}
	}
	return msNO("", "authentication failed")
}

func (s *msSession) login(address string) (msReply, error) {
	st, err := openSieveStore(s.srv.cfg.LMTPD.Sieve, address, int64(s.srv.cfg.LMTPD.SieveMaxSize), s.srv.cfg.ManageSieve.MaxScripts)
	if err != nil {
		s.log.Error("open sieve scripts", "user", address, "err", err)
		return msNO("TRYLATER", "cannot open your scripts now"), nil
	}
	s.srv.guard.Succeeded(s.ip, address, s.log)
	s.user, s.store, s.state = address, st, msAuth
	s.raw.Login("")
	maillog.Login(s.log, address, s.tls)
	return msOK("logged in"), nil
}

// cmdUnauthenticate returns to the non-authenticated state (RFC 5804 2.14).
func (s *msSession) cmdUnauthenticate(args []msArg) (msReply, error) {
	if len(args) != 0 {
		return msSyntax, nil
	}
	maillog.Logout(s.log, s.user)
	s.user, s.store, s.state = "", nil, msNonAuth
	s.raw.Logout()
	return msOK("unauthenticated"), nil
}

// cmdHavespace (RFC 5804 2.5).
func (s *msSession) cmdHavespace(args []msArg) (msReply, error) {
	if len(args) != 2 || args[0].isNum || !args[1].isNum {
		return msSyntax, nil
	}
	if err := s.store.haveSpace(args[0].s, args[1].n); err != nil {
		return msReplyFor(err, s.log), nil
	}
	return msOK("putscript would succeed"), nil
}

// checkScript compiles src with the engine delivery runs. RFC 5804 2.6:
// a script that does not compile is refused with a message a human can
// act on, so it names the line: go-sieve's "L:C: msg" becomes "line L,
// column C: msg", and the messages it gives without a position are placed
// (an unknown extension on the line that requires it, a missing brace at
// the end).
func checkScript(src []byte) error {
	_, err := loadScript(src, false)
	if err == nil {
		return nil
	}
	msg := err.Error()
	if pos, rest, ok := strings.Cut(msg, ": "); ok {
		if l, c, ok := strings.Cut(pos, ":"); ok && isDigits(l) && isDigits(c) {
			return fmt.Errorf("line %s, column %s: %s", l, c, rest)
		}
	}
	lines := strings.Split(string(src), "\n")
	if _, ext, ok := strings.Cut(msg, "unsupported extension: "); ok {
		for i, l := range lines {
			if strings.Contains(l, `"`+ext+`"`) {
				return fmt.Errorf("line %d: %s", i+1, msg)
			}
		}
	}
	return fmt.Errorf("line %d (end of script): %s", len(lines), msg)
}

func isDigits(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") == ""
}

func (s *msSession) cmdPutscript(args []msArg) (msReply, error) {
	if !nArgs(args, 2, 2) {
		return msSyntax, nil
	}
	name, src := args[0].s, []byte(args[1].s)
	if err := checkScriptName(name); err != nil {
		return msReplyFor(err, s.log), nil
	}
	if err := checkScript(src); err != nil {
		return msNO("", "script error: "+err.Error()), nil
	}
	if err := s.store.put(name, src); err != nil {
		return msReplyFor(err, s.log), nil
	}
	maillog.SievePut(s.log, s.user, name, len(src))
	return msOK("script stored"), nil
}

func (s *msSession) cmdCheckscript(args []msArg) (msReply, error) {
	if !nArgs(args, 1, 1) {
		return msSyntax, nil
	}
	if int64(len(args[0].s)) > int64(s.srv.cfg.LMTPD.SieveMaxSize) {
		return msReplyFor(errTooBig, s.log), nil
	}
	if err := checkScript([]byte(args[0].s)); err != nil {
		return msNO("", "script error: "+err.Error()), nil
	}
	return msOK("script is valid"), nil
}

func (s *msSession) cmdListscripts(args []msArg) (msReply, error) {
	if len(args) != 0 {
		return msSyntax, nil
	}
	all, err := s.store.list()
	if err != nil {
		return msReplyFor(err, s.log), nil
	}
	var b strings.Builder
	for _, sc := range all {
		b.WriteString(msString(sc.name))
		if sc.active {
			b.WriteString(" ACTIVE")
		}
		b.WriteString("\r\n")
	}
	b.WriteString("OK")
	return msReply{kind: b.String(), text: "listscripts completed"}, nil
}

func (s *msSession) cmdSetactive(args []msArg) (msReply, error) {
	if !nArgs(args, 1, 1) {
		return msSyntax, nil
	}
	if err := s.store.activate(args[0].s); err != nil {
		return msReplyFor(err, s.log), nil
	}
	maillog.SieveActive(s.log, s.user, args[0].s)
	return msOK("active script set"), nil
}

func (s *msSession) cmdGetscript(args []msArg) (msReply, error) {
	if !nArgs(args, 1, 1) {
		return msSyntax, nil
	}
	src, err := s.store.get(args[0].s)
	if err != nil {
		return msReplyFor(err, s.log), nil
	}
	// RFC 5804 2.9: the script as a literal, then OK.
	return msReply{kind: fmt.Sprintf("{%d}\r\n%s\r\nOK", len(src), src)}, nil
}

func (s *msSession) cmdDeletescript(args []msArg) (msReply, error) {
	if !nArgs(args, 1, 1) {
		return msSyntax, nil
	}
	if err := s.store.remove(args[0].s); err != nil {
		return msReplyFor(err, s.log), nil
	}
	return msOK("script deleted"), nil
}

func (s *msSession) cmdRenamescript(args []msArg) (msReply, error) {
	if !nArgs(args, 2, 2) {
		return msSyntax, nil
	}
	if err := s.store.rename(args[0].s, args[1].s); err != nil {
		return msReplyFor(err, s.log), nil
	}
	return msOK("script renamed"), nil
}
