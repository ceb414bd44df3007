package main

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"time"

	"tern/common/listen"
	"tern/common/maillog"
	"tern/common/serve"
)

// state is a POP3 session state (RFC 1939 3).
type state uint8

const (
	stateAuthorization state = 1 << iota // before a successful login
	stateTransaction                     // logged in, maildrop locked
	stateUpdate                          // after QUIT in TRANSACTION; no command is valid
)

func (s state) String() string {
	switch s {
	case stateAuthorization:
		return "AUTHORIZATION"
	case stateTransaction:
		return "TRANSACTION"
	case stateUpdate:
		return "UPDATE"
	}
	return "?"
}

// handler runs one command. It returns the reply to send, or an error when
// the connection can no longer be used (the session then ends at once).
type handler func(s *session, c command) (reply, error)

// commandSpec says in which states a command is valid and which handler
// runs it.
type commandSpec struct {
	states state // bit set of the states in which the command is valid
	run    handler
}

// commands is the command table. The dispatcher checks the state here
// before any handler runs, so a handler never sees a command out of state.
// RFC 1939 4-7, RFC 2449 5 (CAPA), RFC 2595 4 (STLS), RFC 5034 4 (AUTH).
var commands = map[string]commandSpec{
	"CAPA": {stateAuthorization | stateTransaction, (*session).cmdCapa},
	"QUIT": {stateAuthorization | stateTransaction, (*session).cmdQuit},
	"STLS": {stateAuthorization, (*session).cmdStls},
	"USER": {stateAuthorization, (*session).cmdUser},
	"PASS": {stateAuthorization, (*session).cmdPass},
	"AUTH": {stateAuthorization, (*session).cmdAuth},
	"STAT": {stateTransaction, (*session).cmdStat},
	"LIST": {stateTransaction, (*session).cmdList},
	"UIDL": {stateTransaction, (*session).cmdUidl},
	"RETR": {stateTransaction, (*session).cmdRetr},
	"TOP":  {stateTransaction, (*session).cmdTop},
	"DELE": {stateTransaction, (*session).cmdDele},
	"NOOP": {stateTransaction, (*session).cmdNoop},
	"RSET": {stateTransaction, (*session).cmdRset},
}

// Why a session ended early, for the closing reply and the log.
var (
	errShutdown = errors.New("pop3d: server shutting down")
	errIdle     = errors.New("pop3d: idle timeout")
)

// session is one POP3 connection.
type session struct {
	srv    *server
	log    *slog.Logger
	raw    *serve.Conn // the connection; deadlines set here reach TLS too
	conn   net.Conn    // raw, or the TLS connection over it
	r      *bufio.Reader
	w      *bufio.Writer
	remote net.Addr
	ip     string
	tls    bool
	buf    []byte // the current command line

	fileReader *bufio.Reader // reused for every message sent

	state    state
	user     string // name given by USER, waiting for PASS
	address  string // the logged-in user
	drop     *maildrop
	failures int // failed logins
	errors   int // bad commands

	retrieved int // messages sent by RETR, for the log
}

func newSession(srv *server, c *serve.Conn) *session {
	s := &session{
		srv:    srv,
		raw:    c,
		conn:   c.Stream(),
		remote: c.RemoteAddr(),
		ip:     c.Client(),
		tls:    c.TLS() != nil,
		buf:    make([]byte, 0, maxCommandLine),
		state:  stateAuthorization,
		log:    c.Log,
	}
	s.setConn(s.conn)
	return s
}

// setConn puts the reader and writer on c (after a TLS handshake). Bytes
// the client sent before the handshake and that sit in the old reader are
// dropped with it, so that nothing injected in plaintext by a man in the
// middle is acted on inside the TLS session (the STARTTLS command
// injection flaw; RFC 2595 4 starts the session over after STLS).
func (s *session) setConn(c net.Conn) {
	s.conn = c
	s.r = bufio.NewReaderSize(c, 4096)
	s.w = bufio.NewWriterSize(serve.DeadlineWriter{Conn: c, Timeout: s.srv.options().idleTimeout}, 64<<10)
}

// plaintextAllowed says whether USER/PASS and AUTH PLAIN/LOGIN may be used:
// over TLS, or on loopback where nothing crosses a network.
func (s *session) plaintextAllowed() bool {
	return s.tls || listen.IsLoopback(s.remote)
}

// serve runs the session until QUIT, an error, the idle timeout or
// shutdown. It never removes messages itself except through QUIT.
func (s *session) serve() {
	defer s.close()
	s.log.Debug("connected", "tls", s.tls)
	// RFC 1939 4: the greeting is a positive response. There is no APOP
	// timestamp: APOP is not offered.
	if err := s.send(okReply("%s POP3 server ready", s.srv.hostname)); err != nil {
		return
	}
	for {
		line, err := s.readLine(maxCommandLine)
		if err != nil {
			if !s.lineError(err) {
				return
			}
			continue
		}
		cmd, err := parseCommand(line)
		if err != nil {
			if !s.fail(errReply(codeNone, "malformed command")) {
				return
			}
			continue
		}
		if cmd.verb == "PASS" || cmd.verb == "AUTH" {
			s.log.Debug("command", "verb", cmd.verb, "state", s.state) // never the credentials
		} else {
			s.log.Debug("command", "verb", cmd.verb, "arg", cmd.arg, "state", s.state)
		}
		spec, ok := commands[cmd.verb]
		if !ok {
			if !s.fail(errReply(codeNone, "unknown command")) {
				return
			}
			continue
		}
		if spec.states&s.state == 0 {
			if !s.fail(errReply(codeNone, "%s is not valid in the %s state", cmd.verb, s.state)) {
				return
			}
			continue
		}
		r, err := spec.run(s, cmd)
		if err != nil {
			if errors.Is(err, errShutdown) || errors.Is(err, errIdle) {
				s.lineError(err)
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
			s.log.Debug("write failed", "err", err)
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

// readLine reads one line with the idle timeout, and returns errShutdown
// as soon as the server is stopping (common/serve ends the wait).
func (s *session) readLine(max int) ([]byte, error) {
	s.raw.SetReadDeadline(time.Now().Add(s.srv.options().idleTimeout))
	if s.buf == nil || cap(s.buf) < max {
		s.buf = make([]byte, 0, max)
	}
	line, err := readLine(s.r, s.buf, max)
	if errors.Is(err, serve.ErrShutdown) {
		return nil, errShutdown
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded) {
		return nil, errIdle
	}
	return line, err
}

// lineError answers a failed read and reports whether the session goes on.
func (s *session) lineError(err error) bool {
	switch {
	case errors.Is(err, errLineTooLong):
		return s.fail(errReply(codeNone, "line too long (the limit is %d octets with CRLF)", maxCommandLine))
	case errors.Is(err, errBareLF):
		return s.fail(errReply(codeNone, "lines must end with CRLF"))
	case errors.Is(err, errShutdown):
		// RFC 1939 3: a session that ends without QUIT enters no UPDATE
		// state, so nothing marked is removed.
		s.sendClosing(errReply(codeSysTemp, "server shutting down, no messages removed"))
	case errors.Is(err, errIdle):
		// RFC 1939 3: the autologout timer ends the session without the
		// UPDATE state. The line tells a human at a terminal what happened.
		s.log.Debug("idle timeout")
		s.sendClosing(errReply(codeNone, "idle for too long, closing; no messages removed"))
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		s.log.Debug("client closed the connection")
	default:
		s.log.Debug("read failed", "err", err)
	}
	return false
}

// fail sends an error reply for a bad command and counts it; past the
// limit the session is closed. It reports whether the session goes on.
func (s *session) fail(r reply) bool {
	s.errors++
	if s.errors >= s.srv.options().maxErrors {
		r.text += "; too many errors, closing"
		s.sendClosing(r)
		return false
	}
	return s.send(r) == nil
}

// send writes a reply and flushes it unless another whole pipelined
// command is already waiting (RFC 2449 6.6: replies may then be sent
// together). Part of a line is not enough: the client may be waiting for
// this reply before it sends the rest.
func (s *session) send(r reply) error {
	if err := writeReply(s.w, r); err != nil {
		return err
	}
	if r.then == nil && !r.quit && s.commandWaiting() {
		return nil
	}
	return s.w.Flush()
}

// commandWaiting reports whether a whole line is already buffered.
func (s *session) commandWaiting() bool {
	n := s.r.Buffered()
	if n == 0 {
		return false
	}
	b, _ := s.r.Peek(n) // buffered bytes only: no read
	return bytes.IndexByte(b, '\n') >= 0
}

// sendClosing sends a last reply with a short write deadline, so a client
// that does not read cannot hold the session open.
func (s *session) sendClosing(r reply) {
	s.raw.SetWriteDeadline(time.Now().Add(closingWriteTimeout))
	writeReply(s.w, r)
	s.w.Flush()
}

// closingWriteTimeout bounds the write of a last reply before closing.
const closingWriteTimeout = time.Second

// close ends the session: the maildrop lock is released without removing
// anything (only QUIT removes) and the connection is closed.
func (s *session) close() {
	if s.drop != nil {
		s.drop.close()
		s.drop = nil
		maillog.Logout(s.log, s.address)
		s.log.Debug("no update", "user", s.address, "retrieved", s.retrieved)
	}
	// A TLS close writes an alert: bound it like any last write.
	s.raw.SetWriteDeadline(time.Now().Add(closingWriteTimeout))
	s.conn.Close()
	s.raw.Close()
}
