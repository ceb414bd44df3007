package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"

	"tern/common/maildir"
	"tern/imapd/wire"
)

// APPEND (RFC 9051 6.3.12) with MULTIAPPEND (RFC 3502) and CATENATE (RFC
// 4469). The reader stops before every literal the store reads (a message,
// a CATENATE TEXT), after checking it against APPENDLIMIT and the limits of
// one command (imapd.max_append_messages, imapd.max_append_size). Each
// message is written to the folder's tmp/ and fsynced as it arrives
// (maildir.Folder.Stage); only once the whole command has been read are
// they moved into the folder together (Publish: one fsync of cur/, one
// durable index write). RFC 3502 6.3.11: if any message cannot be
// appended, none is; a command cut short, refused or failing halfway
// leaves nothing in the folder and its tmp/ files are removed.

// cmdAppend: RFC 9051 6.3.12, RFC 3502, RFC 4469, RFC 4315 APPENDUID.
func (s *session) cmdAppend(c *wire.Command, p *wire.Parser) (reply, error) {
	a := c.Append
	if a == nil || len(a.Messages) == 0 {
		return reply{}, wire.Bad("APPEND needs a mailbox and a message")
	}
	dst, err := s.destination(a.Mailbox)
	if err != nil {
		return reply{}, err
	}
	if err := s.checkSpace(dst.Dir()); err != nil {
		return reply{}, err
	}
	s.streamLeft = nil
	ap := &appender{s: s, c: c, a: a, dst: dst}
	defer ap.discard()
	if err := ap.run(); err != nil {
		return reply{}, err
	}
	// The messages are on disk in tmp/ now; a command that took long to
	// arrive is checked again before anything is published.
	if err := s.checkSpace(dst.Dir()); err != nil {
		return reply{}, err
	}
	// RFC 9208 6: the messages together must fit in the user's quota
	// (lmtpd's rule: sizes on disk), or none is stored: NO [OVERQUOTA].
	var size int64
	for _, st := range ap.staged {
		size += st.Size()
	}
	if err := s.checkQuota("append", size); err != nil {
		return reply{}, err
	}
	uids, err := dst.Publish(ap.staged)
	if err != nil {
		return reply{}, storeError(s.log, "append", err)
	}
	s.changed(dst.Dir())
	snap, err := dst.Sync()
	if err != nil {
		return reply{}, storeError(s.log, "append", err)
	}
	// RFC 4315 3 (and RFC 3502 6.3.11): APPENDUID carries the UIDs of
	// every message, in the order they were given.
	var set imap.UIDSet
	for _, u := range uids {
		set.AddNum(imap.UID(u))
	}
	return reply{code: codeAppendUID, arg: itoa(snap.UIDValidity) + " " + set.String(), text: "APPEND completed"}, nil
}

// appender reads the messages of one APPEND into the store's tmp/.
type appender struct {
	s   *session
	c   *wire.Command
	a   *wire.AppendCommand // as the reader has read it so far (Command.Append)
	dst *maildir.Folder

	staged []*maildir.Staged
	mi, pi int           // the next part to read: message mi, part pi
	cur    io.ReadCloser // the part being read
	size   int64         // of message mi so far (wire form)
	total  int64         // of all the messages so far
	err    error         // why reading stopped (the reply, or the connection's error)
}

// run stages every message of the command.
func (ap *appender) run() error {
	for ap.mi < len(ap.a.Messages) {
		m := ap.a.Messages[ap.mi]
		date := m.Time
		if date.IsZero() {
			date = time.Now()
		}
		// RFC 3516 4.3: binary parts are stored re-encoded
		// (binaryappend.go), CATENATE's result included. The
		// conversion starts with the first read: Stage refuses bad
		// flags before, and the client is not asked for a literal
		// that would be refused.
		body := &lazyReader{start: func() (io.Reader, func()) { return appendReader(messageSource{ap}) }}
		st, err := ap.dst.Stage(body, storeFlags(m.Flags), date)
		body.stop()
		ap.closePart()
		if ap.err != nil {
			if st != nil {
				st.Discard()
			}
			return ap.err
		}
		if err != nil {
			return storeError(ap.s.log, "append", err)
		}
		ap.staged = append(ap.staged, st)
		if st.WireSize() == 0 {
			// RFC 3502 6.3.11: an empty message is an error; a
			// CATENATE of empty parts is one too.
			return &imap.Error{Type: imap.StatusResponseTypeNo, Text: "Empty message"}
		}
		ap.mi++
		ap.pi, ap.size = 0, 0
	}
	return nil
}

// discard removes the staged messages that were not published.
func (ap *appender) discard() {
	ap.closePart()
	for _, st := range ap.staged {
		st.Discard()
	}
}

func (ap *appender) closePart() {
	if ap.cur != nil {
		ap.cur.Close()
		ap.cur = nil
	}
}

// lazyReader starts a reader at its first Read.
type lazyReader struct {
	start func() (io.Reader, func())
	r     io.Reader
	done  func()
}

func (l *lazyReader) Read(b []byte) (int, error) {
	if l.r == nil {
		l.r, l.done = l.start()
	}
	return l.r.Read(b)
}

// stop ends the reader if it was started.
func (l *lazyReader) stop() {
	if l.done != nil {
		l.done()
	}
}

// messageSource is the message ap.mi, its parts read one after the other:
// the streamed literals from the connection, the URLs from the store.
type messageSource struct{ ap *appender }

func (ms messageSource) Read(b []byte) (int, error) {
	ap := ms.ap
	if ap.err != nil {
		return 0, ap.err
	}
	for {
		if ap.cur != nil {
			n, err := ap.cur.Read(b)
			if n > 0 {
				if lerr := ap.count(int64(n)); lerr != nil {
					return 0, ap.fail(lerr)
				}
				return n, nil
			}
			if err == io.EOF {
				ap.closePart()
				continue
			}
			if err == nil {
				continue
			}
			return 0, ap.fail(err)
		}
		m := ap.a.Messages[ap.mi]
		if ap.pi < len(m.Parts) {
			part := m.Parts[ap.pi]
			ap.pi++
			if part.URL != "" {
				r, err := ap.s.catenateURL(part.URL)
				if err != nil {
					return 0, ap.fail(err)
				}
				ap.cur = r
				continue
			}
			if ap.c.Stream == nil || ap.c.Stream.Size != part.Lit.Size {
				return 0, ap.fail(errors.New("imapd: APPEND literal is not where the reader stopped"))
			}
			if err := ap.s.rd.Ask(ap.c); err != nil {
				return 0, ap.fail(err)
			}
			lr := &literalReader{s: ap.s, r: ap.s.rd.LiteralReader(part.Lit.Size), left: part.Lit.Size}
			ap.s.streamLeft = lr
			ap.cur = io.NopCloser(lr)
			continue
		}
		if ap.a.Complete || ap.mi < len(ap.a.Messages)-1 {
			return 0, io.EOF
		}
		// The last part read was the literal the reader stopped
		// before: read on to the next one or the end.
		if err := ap.next(); err != nil {
			return 0, ap.fail(err)
		}
	}
}

func (ap *appender) fail(err error) error {
	if ap.err == nil {
		ap.err = err
	}
	return ap.err
}

// next reads the command on after a streamed literal; ap.a grows.
func (ap *appender) next() error {
	s := ap.s
	s.streamLeft = nil
	s.raw.SetReadDeadline(deadline(s.readTimeout()))
	if err := s.rd.Next(ap.c); err != nil {
		return err
	}
	if ap.c.Refused != nil {
		return ap.c.Refused
	}
	return nil
}

// count adds n octets to the message being read and checks what the
// reader could not: the parts CATENATE takes from URLs.
func (ap *appender) count(n int64) error {
	ap.size += n
	ap.total += n
	cfg := &ap.s.srv.cfg().IMAPD
	if ap.size > int64(cfg.MaxLiteralSize) {
		// RFC 4469 5 and RFC 7889 4: TOOBIG, the message would be
		// larger than APPENDLIMIT.
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeTooBig,
			Text: "Message larger than APPENDLIMIT"}
	}
	if ap.total > int64(cfg.MaxAppendSize) {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeTooBig,
			Text: "Messages of one APPEND too large together"}
	}
	return nil
}

// literalReader is a streamed literal as the store reads it: io.EOF at
// its end, an error if the connection ends first, so that no fragment is
// stored.
type literalReader struct {
	s    *session
	r    io.Reader
	left int64
}

func (l *literalReader) Read(b []byte) (int, error) {
	if l.left == 0 {
		return 0, io.EOF
	}
	// The client may send slowly: each read waits up to the session's
	// timeout again.
	l.s.raw.SetReadDeadline(deadline(l.s.readTimeout()))
	n, err := l.r.Read(b[:min(int64(len(b)), l.left)])
	l.left -= int64(n)
	if err == io.EOF && l.left > 0 {
		err = io.ErrUnexpectedEOF
	}
	if err != nil && err != io.EOF {
		return n, err
	}
	return n, nil
}

// catenateURL opens the message part a CATENATE URL names (RFC 4469 3):
// a message of this user, in a mailbox of theirs, on this server. Anything
// else is NO [BADURL] (RFC 4469 5).
func (s *session) catenateURL(raw string) (io.ReadCloser, error) {
	bad := &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCode("BADURL " + urlRespText(raw)),
		Text: "Bad or unknown URL"}
	if len(raw) > 0 && raw[0] == ';' {
		// RFC 4469 3: in the selected state the base URL is
		// "imap://user@server/mailbox", so that ";UID=…" names a
		// message of the selected mailbox.
		if name := s.selectedName(); name != "" {
			raw = "/" + url.PathEscape(name) + "/" + raw
		}
	}
	u, err := wire.ParseIMAPURL(raw)
	if err != nil || (u.Absolute && !s.ownURL(u)) {
		return nil, bad
	}
	f, err := s.mbox.Folder(u.Mailbox)
	if errors.Is(err, maildir.ErrNotFound) && strings.Contains(u.Mailbox, "&") {
		// RFC 2192, which RFC 5092 replaced, put names in modified
		// UTF-7; a client still doing so is understood.
		if name, derr := wire.DecodeUTF7(u.Mailbox); derr == nil {
			f, err = s.mbox.Folder(name)
		}
	}
	if err != nil {
		return nil, bad
	}
	snap, err := f.Sync()
	if err != nil {
		return nil, storeError(s.log, "catenate", err)
	}
	i, ok := snap.ByUID(u.UID)
	if !ok || (u.UIDValidity != 0 && u.UIDValidity != snap.UIDValidity) {
		return nil, bad
	}
	m := &snap.Messages[i]
	// The message is read as FETCH reads it, through the fetch cache.
	src := newMsgSource(f, s.srv.fetchInfo, s.log, m)
	closeAll := func() error { src.close(); return nil }
	if _, err := src.file(); err != nil {
		closeAll()
		if errors.Is(err, maildir.ErrNoMessage) {
			return nil, bad
		}
		return nil, storeError(s.log, "catenate", err)
	}
	if len(u.Section.Part) > 0 {
		// A part that does not exist is a bad URL, not an empty string.
		r, err := src.content()
		if err != nil {
			closeAll()
			return nil, err
		}
		if _, ok := findPart(r, u.Section.Part); !ok {
			closeAll()
			return nil, bad
		}
	}
	// The part as FETCH BODY[section] gives it (RFC 4469 3: the URL's
	// content as an IMAP FETCH would return it), in its stored transfer
	// encoding and with CRLF line ends.
	r, _, err := bodySection(src, &u.Section)
	if err != nil {
		closeAll()
		return nil, err
	}
	return readCloser{r, closeAll}, nil
}

type readCloser struct {
	io.Reader
	close func() error
}

func (r readCloser) Close() error { return r.close() }

// ownURL says whether an absolute URL names this user on this server:
// RFC 4469 3 lets a server refuse URLs of other servers, and a session
// reads only its own user's mail.
func (s *session) ownURL(u *wire.IMAPURL) bool {
	if !strings.EqualFold(u.User, s.user) {
		return false
	}
	local, port, _ := net.SplitHostPort(s.conn.LocalAddr().String())
	if u.Port != "" && u.Port != port {
		return false
	}
	host := strings.TrimSuffix(u.Host, ".")
	return strings.EqualFold(host, s.srv.cfg().Hostname) || host == local ||
		(strings.EqualFold(host, "localhost") && net.ParseIP(local).IsLoopback())
}

// urlRespText is the URL as the BADURL response code carries it (RFC 4469
// 5 with erratum 2002: any TEXT-CHAR but "]"); other octets are
// percent-encoded so that the code stays one piece.
func urlRespText(raw string) string {
	var b strings.Builder
	for i := 0; i < len(raw) && b.Len() < 1024; i++ {
		ch := raw[i]
		if ch <= ' ' || ch >= 0x7f || ch == ']' {
			fmt.Fprintf(&b, "%%%02X", ch)
			continue
		}
		b.WriteByte(ch)
	}
	if b.Len() == 0 {
		return "\"\""
	}
	return b.String()
}

// selectedName is the name of the selected mailbox, "" when none is.
func (s *session) selectedName() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sel == nil {
		return ""
	}
	return s.sel.folder.Name()
}
