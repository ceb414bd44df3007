package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"

	"tern/common/listen"
	"tern/common/maildir"
	"tern/common/serve"
	"tern/imapd/wire"
)

// state is an IMAP connection state (RFC 9051 3).
type state uint8

const (
	stateNotAuthenticated state = 1 << iota
	stateAuthenticated
	stateSelected
	stateLogout

	anyState  = stateNotAuthenticated | stateAuthenticated | stateSelected
	authState = stateAuthenticated | stateSelected
)

func (s state) String() string {
	switch s {
	case stateNotAuthenticated:
		return "not authenticated"
	case stateAuthenticated:
		return "authenticated"
	case stateSelected:
		return "selected"
	case stateLogout:
		return "logout"
	}
	return "?"
}

// reply is a tagged OK's response code and text; the zero reply is
// "OK <command> completed".
type reply struct {
	code imap.ResponseCode
	arg  string
	text string
}

// handler runs one command. Its error is the tagged reply when it is an
// *imap.Error (BYE ends the session), else the connection is unusable.
type handler func(s *session, c *wire.Command, p *wire.Parser) (reply, error)

// commandSpec says in which states a command is valid and which handler
// runs it.
type commandSpec struct {
	states state
	run    handler
}

// commands is the command table, filled in by the cmd_*.go files (one per
// command family). The dispatcher checks the state here before any handler
// runs, so a handler never sees a command out of state. UID commands are
// keyed "UID FETCH" and so on.
var commands = map[string]commandSpec{}

// errLogout ends the session after the tagged reply (LOGOUT).
var errLogout = errors.New("imapd: logout")

// errAuthFailed is the answer to a wrong password (RFC 5530 3).
var errAuthFailed = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeAuthenticationFailed,
	Text: "Authentication failed"}

// session is one IMAP connection: its connection loop (this file), its
// protocol state, and the backend that translates commands to the store
// (session.go and the files named after commands).
type session struct {
	srv *server
	log *slog.Logger
	ip  string

	raw  *serve.Conn // the connection; deadlines set here reach TLS too
	conn net.Conn    // raw, or the TLS connection over it
	pre  prefixReader
	out  io.Writer     // serve.DeadlineWriter, or the deflater over it (compress.go)
	br   *bufio.Reader // nil while waiting with nothing buffered
	bw   *bufio.Writer // nil between commands
	enc  *wire.Encoder
	rd   *wire.Reader
	tls  bool
	// inflate is the client's compressed stream after COMPRESS (RFC 4978,
	// compress.go); nil before.
	inflate *inflater

	// wmu serialises writes: the command being run holds it, and so do
	// the IDLE updates written by the folder watch (idle.go) and the BYE
	// of shutdown.
	wmu    sync.Mutex
	idling bool       // guarded by wmu
	idle   *idleState // IDLE in progress (idle.go)
	// idlePending coalesces the folder watch's wake-ups.
	idlePending atomic.Bool
	// notify is the NOTIFY SET in effect (notify.go), guarded by wmu;
	// notifyPending coalesces its wake-ups.
	notify        *notifyState
	notifyPending atomic.Bool
	closed        atomic.Bool

	state        state
	utf8         bool // RFC 6855 ENABLE UTF8=ACCEPT
	rev2         bool // RFC 9051 ENABLE IMAP4rev2
	condstore    bool // RFC 7162 3.1 CONDSTORE enabled (condstore.go)
	qresync      bool // RFC 7162 3.2.3 ENABLE QRESYNC
	authFailures int  // failed logins, for login.max_failures
	pipelined    int  // replies buffered without a flush

	user string // canonical address once authenticated
	mbox *maildir.Mailbox
	// streamLeft is the rest of APPEND's literal while a handler reads it.
	streamLeft io.Reader
	// running says a command holds wmu: the reader's continuation
	// requests during APPEND are written under it (continueRequest).
	running bool

	// mu guards sel: the folder watch's IDLE updates use it from their
	// own goroutine.
	mu  sync.Mutex
	sel *view
}

func newSession(srv *server, c *serve.Conn) *session {
	s := &session{srv: srv, raw: c, ip: c.Client(), tls: c.TLS() != nil, state: stateNotAuthenticated, log: c.Log}
	s.setConn(c.Stream())
	return s
}

// setConn puts the reader and writer on c. After STARTTLS the old reader
// goes with everything the client sent before the handshake: RFC 9051
// 6.2.1 (and RFC 3501 6.2.1) forbid acting on a command pipelined behind
// STARTTLS, which a man in the middle could have injected.
func (s *session) setConn(c net.Conn) {
	s.conn = c
	s.out = serve.DeadlineWriter{Conn: c, Timeout: s.srv.cfg().IMAPD.IdleTimeout.D()}
	s.pre = prefixReader{r: c}
	if s.br != nil {
		s.br.Reset(nil)
		readerPool.Put(s.br)
		s.br = nil
	}
	if s.bw != nil {
		s.bw.Reset(s.out)
	}
	if s.enc == nil {
		s.enc = wire.NewEncoder(nil)
		cfg := &s.srv.cfg().IMAPD
		s.rd = wire.NewReader(nil, wire.Limits{
			MaxCommand:        cfg.MaxLineLength,
			MaxAppend:         int64(cfg.MaxLiteralSize),
			MaxAppendMessages: cfg.MaxAppendMessages,
			MaxAppendTotal:    int64(cfg.MaxAppendSize),
			// A refused non-synchronizing literal is read and thrown
			// away up to twice the largest that could be accepted;
			// beyond that the connection ends (RFC 7888 4).
			DiscardCap:  2 * int64(cfg.MaxLiteralSize),
			MaxMetadata: int(cfg.MetadataMaxSize),
		}, s.continueRequest)
		s.rd.Allowed = s.allowed
	}
	s.acquireReader()
}

// The read and write buffers are the bulk of a session's memory. A
// session waiting for a command with nothing buffered, or idling, gives
// them back to these pools, so that ten thousand idle sessions hold a few
// bytes each instead of 20 KiB.
var (
	readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}
	writerPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 16<<10) }}
)

// acquireReader gives the session a read buffer if it has none.
func (s *session) acquireReader() {
	if s.br == nil {
		s.br = readerPool.Get().(*bufio.Reader)
		s.br.Reset(&s.pre)
		s.rd.SetReader(s.br)
	}
}

// waitInput blocks until the client sends something. With nothing
// buffered, the read buffer goes back to the pool for the wait, and the
// first octet is kept in the session until a buffer is taken again.
func (s *session) waitInput() error {
	if s.br != nil && (s.br.Buffered() > 0 || s.rd.Pending()) {
		return nil
	}
	if s.br != nil {
		s.br.Reset(nil)
		readerPool.Put(s.br)
		s.br = nil
	}
	if !s.pre.has {
		if _, err := io.ReadFull(s.pre.r, s.pre.b[:]); err != nil {
			return err
		}
		s.pre.has = true
	}
	s.acquireReader()
	return nil
}

// prefixReader is the connection with one octet read ahead.
type prefixReader struct {
	r   io.Reader
	b   [1]byte
	has bool
}

func (p *prefixReader) Read(b []byte) (int, error) {
	if p.has && len(b) > 0 {
		b[0] = p.b[0]
		p.has = false
		return 1, nil
	}
	return p.r.Read(b)
}

// acquireWriter gives the session a write buffer if it has none; it is
// called with wmu held before anything is written.
func (s *session) acquireWriter() {
	if s.bw == nil {
		s.bw = writerPool.Get().(*bufio.Writer)
		s.bw.Reset(s.out)
		s.enc.W = s.bw
	}
}

// releaseWriter gives an empty write buffer back; with wmu held.
func (s *session) releaseWriter() {
	if s.bw != nil && s.bw.Buffered() == 0 {
		s.bw.Reset(nil)
		writerPool.Put(s.bw)
		s.bw = nil
		s.enc.W = nil
	}
}

// continueRequest asks for a literal (RFC 9051 7.5). The reader calls it
// between commands, without wmu, and during APPEND (RFC 3502, RFC 4469:
// the literals after the first), when the command holds wmu.
func (s *session) continueRequest(text string) error {
	if s.running {
		s.enc.Atom("+ ").Text(text).CRLF()
		return s.bw.Flush()
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.acquireWriter()
	s.enc.Atom("+ ").Text(text).CRLF()
	err := s.bw.Flush()
	s.releaseWriter()
	return err
}

// allowed says whether a command may go on to its literals: a known
// command, valid in this state. Anything else has its literals refused
// before the client is asked for them.
func (s *session) allowed(c *wire.Command) bool {
	spec, ok := commands[c.Name]
	if c.Name == "UID" {
		return s.state == stateSelected
	}
	return ok && spec.states&s.state != 0
}

// readTimeout is the longest wait for the next command: login.timeout
// before login, imapd.idle_timeout after (RFC 9051 5.4: at least 30
// minutes).
func (s *session) readTimeout() time.Duration {
	// Before login common/serve caps it at login.timeout.
	return s.srv.cfg().IMAPD.IdleTimeout.D()
}

// serve runs the session until LOGOUT, an error, a timeout or shutdown.
func (s *session) serve() {
	started := false
	defer func() {
		if !started {
			s.close()
		}
	}()
	defer listen.Recover(s.log, "imap session")
	s.log.Debug("connected", "tls", s.tls)
	s.wmu.Lock()
	s.acquireWriter()
	s.enc.Atom("* OK [CAPABILITY ").Atom(s.capabilities()).Atom("] IMAP server ready").CRLF()
	err := s.bw.Flush()
	s.releaseWriter()
	s.wmu.Unlock()
	if err != nil {
		return
	}
	started = true
	s.loop(false)
}

// loop reads and runs commands. When it must wait for the client with
// nothing buffered, it goes on in a fresh goroutine and this one ends:
// a goroutine's stack grows with what a command did and is not given
// back while it waits, and a new one starts small, so ten thousand
// waiting sessions hold a few KiB each. fresh says this goroutine has
// just been started for such a wait.
func (s *session) loop(fresh bool) {
	handedOff := false
	defer func() {
		if !handedOff {
			s.close()
		}
	}()
	defer listen.Recover(s.log, "imap session")
	for s.state != stateLogout && !s.closed.Load() {
		if s.wouldBlock() && !fresh {
			handedOff = true
			go s.loop(true)
			return
		}
		fresh = false
		if s.idle != nil {
			s.raw.SetReadDeadline(s.idleDeadline())
			err := s.waitInput()
			var line string
			if err == nil {
				line, err = s.rd.ReadLine()
			}
			if !s.idleInput(line, err) {
				return
			}
			continue
		}
		s.raw.SetReadDeadline(time.Now().Add(s.readTimeout()))
		err := s.waitInput()
		var cmd *wire.Command
		if err == nil {
			cmd, err = s.rd.ReadCommand()
		}
		if err != nil {
			s.readFailed(err)
			return
		}
		if !s.run(cmd) {
			return
		}
	}
}

// wouldBlock says whether the next read waits for the client.
func (s *session) wouldBlock() bool {
	if s.pre.has {
		return false
	}
	return s.br == nil || (s.br.Buffered() == 0 && !s.rd.Pending())
}

// readFailed ends a session whose next command could not be read.
func (s *session) readFailed(err error) {
	var ne net.Error
	switch {
	case errors.Is(err, serve.ErrShutdown):
		// RFC 9051 7.1.5: BYE, the server is closing the connection.
		s.bye("Server shutting down")
	case errors.As(err, &ne) && ne.Timeout():
		s.bye("Autologout; idle for too long")
	case errors.Is(err, wire.ErrLineTooLong):
		s.log.Info("line too long to skip, closing", "err", err)
		s.bye("[TOOBIG] Line too long")
	case errors.Is(err, wire.ErrFatal):
		s.log.Info("literal refused, closing", "err", err)
		s.bye("[TOOBIG] Literal too large")
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
	default:
		s.log.Debug("read failed", "err", err)
	}
}

// bye writes an untagged BYE (RFC 9051 7.1.5) and flushes it.
func (s *session) bye(text string) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.byeLocked(text)
}

func (s *session) byeLocked(text string) {
	if s.closed.Load() {
		return
	}
	s.acquireWriter()
	s.raw.SetWriteDeadline(time.Now().Add(time.Second))
	s.enc.Atom("* BYE ").Text(text).CRLF()
	s.bw.Flush()
	s.releaseWriter()
}

// close ends the connection and gives back its slots.
func (s *session) close() {
	s.wmu.Lock()
	s.endIdleLocked()
	s.notifyStop()
	s.closed.Store(true)
	if s.bw != nil {
		s.bw.Reset(nil)
		writerPool.Put(s.bw)
		s.bw = nil
	}
	s.wmu.Unlock()
	if s.br != nil {
		s.br.Reset(nil)
		readerPool.Put(s.br)
		s.br = nil
	}
	s.unselect()
	s.raw.Close()
}

// validTag: RFC 9051 9, tag = 1*<any ASTRING-CHAR except "+">.
func validTag(tag string) bool {
	if tag == "" {
		return false
	}
	for i := 0; i < len(tag); i++ {
		ch := tag[i]
		if ch <= 0x20 || ch >= 0x7f || strings.IndexByte("(){%*\"\\+", ch) >= 0 {
			return false
		}
	}
	return true
}

// run dispatches one command and writes its replies. It returns false
// when the session is over.
func (s *session) run(c *wire.Command) bool {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if c.Stream != nil {
		// A message literal is being read (APPEND): a shutdown lets it
		// be stored before the BYE (common/serve).
		s.raw.SetBusy(true)
		defer s.raw.SetBusy(false)
	}
	s.acquireWriter()
	s.running = true
	ok, err := s.dispatch(c)
	s.running = false
	if err == nil {
		err = s.flush()
	}
	if err == nil {
		s.releaseWriter()
	}
	if errors.Is(err, serve.ErrShutdown) {
		// A read inside the command (AUTHENTICATE's response) was cut.
		s.byeLocked("Server shutting down")
	}
	if err != nil {
		s.log.Debug("session ended", "err", err)
		return false
	}
	return ok
}

// flush sends the buffered replies unless more commands are already
// waiting, up to imapd.max_pipelined replies.
func (s *session) flush() error {
	s.pipelined++
	if s.rd.Buffered() > 0 && s.pipelined < s.srv.cfg().IMAPD.MaxPipelined && s.state != stateLogout {
		return nil
	}
	s.pipelined = 0
	return s.bw.Flush()
}

func (s *session) dispatch(c *wire.Command) (bool, error) {
	if !validTag(c.Tag) {
		if c.Stream != nil {
			return false, errors.New("invalid tag before a literal")
		}
		s.enc.StatusResponse("*", imap.StatusResponseTypeBad, "", "Invalid tag")
		return true, nil
	}
	if c.Refused != nil {
		s.log.Debug("command refused", "name", c.Name, "reply", c.Refused.Text)
		s.tagged(c.Tag, c.Refused)
		return true, nil
	}
	name := c.Name
	p := wire.NewParser(c, s.utf8, s.srv.cfg().IMAPD.MaxNesting)
	if name == "UID" {
		if !p.SP() {
			return s.bad(c, "UID needs a command")
		}
		sub, err := p.Atom()
		if err != nil {
			return s.bad(c, "UID needs a command")
		}
		name = "UID " + strings.ToUpper(sub)
	}
	if name == "LOGIN" || name == "AUTHENTICATE" {
		s.log.Debug("command", "name", name, "state", s.state) // never the credentials
	} else {
		s.log.Debug("command", "name", name, "state", s.state)
	}
	spec, known := commands[name]
	if !known {
		ok, err := s.bad(c, "Unknown command")
		if s.state == stateNotAuthenticated && err == nil {
			// Whatever speaks another protocol here (an HTTP request
			// sent to port 143) is not an IMAP client: end it.
			s.byeLocked("Unknown command before login")
			return false, nil
		}
		return ok, err
	}
	if spec.states&s.state == 0 {
		return s.bad(c, fmt.Sprintf("%s is not valid in the %s state", name, s.state))
	}
	r, err := spec.run(s, c, p)
	if c.Stream != nil {
		// A handler that did not read the literal (a refused APPEND)
		// still must consume it and the end of the command, so that
		// none of it runs as commands.
		if derr := s.finishStream(c, err); derr != nil {
			return false, derr
		}
	}
	if errors.Is(err, errReplied) || errors.Is(err, errIdling) {
		return true, nil
	}
	if errors.Is(err, errLogout) {
		s.state = stateLogout
		s.enc.StatusResponse(c.Tag, imap.StatusResponseTypeOK, "", "LOGOUT completed")
		return false, s.bw.Flush()
	}
	var ie *imap.Error
	if err != nil && !errors.As(err, &ie) {
		return false, err
	}
	if ie != nil && ie.Type == imap.StatusResponseTypeBye {
		s.byeLocked(ie.Text)
		return false, nil
	}
	if s.closed.Load() {
		return false, nil
	}
	if ie == nil || ie.Type == imap.StatusResponseTypeNo {
		// RFC 9051 7: the unilateral updates go out before the tagged
		// reply; RFC 9051 7.5.1: no EXPUNGE during FETCH, STORE, SEARCH.
		// RFC 5256 3: nor during SORT and THREAD.
		noExpunge := name == "FETCH" || name == "STORE" || name == "SEARCH" || name == "SORT" || name == "THREAD"
		if err := s.updates(!noExpunge); err != nil {
			var pe *imap.Error
			if errors.As(err, &pe) && pe.Type == imap.StatusResponseTypeBye {
				return false, nil
			}
			if pe == nil {
				return false, err
			}
		}
	}
	if ie != nil {
		s.tagged(c.Tag, ie)
		if s.authFailures >= s.srv.cfg().Login.MaxFailures && s.state == stateNotAuthenticated {
			// login.max_failures: BYE right after the tagged NO, on
			// every transport (RFC 9051 7.1.5: BYE may come at any time).
			s.byeLocked("Too many failed logins")
			return false, nil
		}
		return true, nil
	}
	text := r.text
	if text == "" {
		text = name + " completed"
	}
	s.enc.Atom(c.Tag).Atom(" OK ")
	if r.code != "" {
		s.enc.Code(r.code, r.arg)
	}
	s.enc.Text(text).CRLF()
	return true, nil
}

func (s *session) bad(c *wire.Command, text string) (bool, error) {
	e := &imap.Error{Type: imap.StatusResponseTypeBad, Text: text}
	if err := s.finishStream(c, e); err != nil {
		return false, err
	}
	s.tagged(c.Tag, e)
	return true, nil
}

// finishStream consumes what is left of a command whose handler stopped
// before the end of a streamed literal (why is its reply): the rest of the
// literal if the client is sending it, then the rest of the command, with
// every further literal refused. A synchronizing literal the client was
// never asked for is not coming: the command ends there. An error is the
// connection's.
func (s *session) finishStream(c *wire.Command, why error) error {
	if c.Stream == nil {
		return nil
	}
	left := c.Stream.Size
	if lr, ok := s.streamLeft.(*literalReader); ok && lr != nil {
		left = lr.left
	}
	s.streamLeft = nil
	if !c.Continued {
		c.Stream = nil
		return nil
	}
	s.raw.SetReadDeadline(deadline(s.readTimeout()))
	if _, err := io.CopyN(io.Discard, s.rd.LiteralReader(left), left); err != nil {
		return err
	}
	if c.Refused == nil {
		var ie *imap.Error
		if !errors.As(why, &ie) {
			ie = &imap.Error{Type: imap.StatusResponseTypeNo, Text: "APPEND failed"}
		}
		c.Refused = ie
	}
	return s.rd.Next(c)
}

// tagged writes a tagged status reply.
func (s *session) tagged(tag string, e *imap.Error) {
	s.enc.StatusResponse(tag, e.Type, e.Code, e.Text)
}

// poll tells a client in the selected state what changed.
func (s *session) poll(allowExpunge bool) error {
	if s.state != stateSelected {
		return nil
	}
	if err := s.Poll(&UpdateWriter{s: s, allowExpunge: allowExpunge}, allowExpunge); err != nil {
		return err
	}
	// RFC 5267 4.4: updating searches follow the changes just told.
	s.updateContexts()
	return nil
}

// capabilities lists the capabilities of the current state (RFC 9051
// 7.2.2), as one string.
func (s *session) capabilities() string {
	var b strings.Builder
	b.WriteString("IMAP4rev1 IMAP4rev2 SASL-IR LITERAL+ ID ENABLE IDLE")
	switch s.state {
	case stateNotAuthenticated:
		// After COMPRESS and UNAUTHENTICATE, STARTTLS is refused
		// (cmd_auth.go): RFC 4978 4, TLS never inside compression.
		if !s.tls && s.srv.tls != nil && s.inflate == nil {
			b.WriteString(" STARTTLS")
		}
		if s.plaintextAllowed() {
			b.WriteString(" AUTH=PLAIN AUTH=LOGIN")
		} else {
			b.WriteString(" LOGINDISABLED")
		}
	default:
		b.WriteString(" UNSELECT UTF8=ACCEPT NAMESPACE UIDPLUS ESEARCH SEARCHRES LIST-EXTENDED LIST-STATUS" +
			" MOVE STATUS=SIZE BINARY CHILDREN SPECIAL-USE CREATE-SPECIAL-USE UNAUTHENTICATE")
		b.WriteString(" CONDSTORE QRESYNC") // RFC 7162 (condstore.go)
		if s.srv.cfg().IMAPD.Compress && s.inflate == nil {
			b.WriteString(" COMPRESS=DEFLATE") // RFC 4978 (compress.go)
		}
		b.WriteString(" QUOTA QUOTA=RES-STORAGE") // RFC 9208 (quota.go)
		fmt.Fprintf(&b, " APPENDLIMIT=%d", s.AppendLimit())
		// RFC 5256, RFC 5957, RFC 5267, RFC 9394 (cmd_sort.go, context.go).
		b.WriteString(" SORT SORT=DISPLAY THREAD=ORDEREDSUBJECT THREAD=REFERENCES ESORT CONTEXT=SEARCH CONTEXT=SORT PARTIAL")
		b.WriteString(" NOTIFY")               // RFC 5465 (notify.go)
		b.WriteString(" MULTIAPPEND CATENATE") // RFC 3502, RFC 4469 (append.go)
		// RFC 8474, RFC 8514 (objectid.go), RFC 8970 (preview.go).
		b.WriteString(" OBJECTID SAVEDATE PREVIEW")
		b.WriteString(" METADATA METADATA-SERVER") // RFC 5464 (cmd_metadata.go)
	}
	return b.String()
}

// plaintextAllowed says whether LOGIN and AUTHENTICATE PLAIN/LOGIN may be
// used: over TLS, or on loopback where nothing crosses a network.
func (s *session) plaintextAllowed() bool {
	return s.tls || listen.IsLoopback(s.raw.RemoteAddr())
}

func deadline(d time.Duration) time.Time { return time.Now().Add(d) }

func itoa(n uint32) string { return strconv.FormatUint(uint64(n), 10) }
