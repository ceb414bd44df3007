package main

import (
	"errors"
	"net"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"

	"tern/common/listen"
	"tern/common/serve"
	"tern/imapd/wire"
)

// IDLE (RFC 2177, RFC 9051 6.3.13) is a state of the session rather
// than a command that blocks: cmdIdle answers "+" and sets s.idle, and
// the connection loop (conn.go) then waits for DONE like for a command,
// on a fresh goroutine with a small stack. The folder watch wakes a short
// goroutine that writes the updates under the session's write lock.

func init() {
	commands["IDLE"] = commandSpec{authState, (*session).cmdIdle}
}

// idleState is an IDLE in progress.
type idleState struct {
	tag         string
	end         time.Time // imapd.idle_timeout (RFC 9051 5.4)
	unsubscribe func()
}

// errIdling says IDLE has begun: its tagged reply comes after DONE.
var errIdling = errors.New("imapd: idling")

func (s *session) cmdIdle(c *wire.Command, p *wire.Parser) (reply, error) {
	if err := p.End(); err != nil {
		return reply{}, err
	}
	s.enc.Atom("+ idling").CRLF()
	if err := s.updates(true); err != nil {
		return reply{}, err
	}
	unsubscribe := func() {}
	s.mu.Lock()
	v := s.sel
	s.mu.Unlock()
	if v != nil {
		var err error
		if unsubscribe, err = s.srv.hub.subscribe(v.folder, s.idleWake); err != nil {
			return reply{}, storeError(s.log, "watch", err)
		}
	}
	s.idle = &idleState{tag: c.Tag, end: time.Now().Add(s.srv.cfg().IMAPD.IdleTimeout.D()), unsubscribe: unsubscribe}
	s.idling = true
	return reply{}, errIdling
}

// idleDeadline is the next read deadline in IDLE: every
// imapd.idle_recheck the session looks at the mailbox itself.
func (s *session) idleDeadline() time.Time {
	return time.Now().Add(min(time.Until(s.idle.end), s.srv.cfg().IMAPD.IdleRecheck.D()))
}

// idleInput handles what the client sent during IDLE (DONE, RFC 2177 3)
// or the read's failure. It returns false when the session is over.
func (s *session) idleInput(line string, err error) bool {
	if errors.Is(err, serve.ErrShutdown) {
		s.endIdle()
		s.readFailed(err)
		return false
	}
	var ne net.Error
	if err != nil && errors.As(err, &ne) && ne.Timeout() {
		if time.Now().After(s.idle.end) {
			s.endIdle()
			s.bye("Autologout; idle for too long")
			return false
		}
		s.idleUpdate()
		return !s.closed.Load()
	}
	var ie *imap.Error
	if err != nil && !errors.As(err, &ie) {
		s.endIdle()
		s.readFailed(err)
		return false
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	tag := s.idle.tag
	s.endIdleLocked()
	s.acquireWriter()
	switch {
	case ie != nil:
		s.tagged(tag, ie)
	case !strings.EqualFold(line, "DONE"):
		s.tagged(tag, wire.Bad("IDLE ends with DONE"))
	default:
		if err := s.updates(true); err != nil {
			var pe *imap.Error
			if errors.As(err, &pe) && pe.Type == imap.StatusResponseTypeBye {
				s.byeLocked(pe.Text)
				return false
			}
		}
		s.enc.Atom(tag).Atom(" OK IDLE terminated").CRLF()
	}
	if err := s.bw.Flush(); err != nil {
		return false
	}
	s.releaseWriter()
	return true
}

func (s *session) endIdle() {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.endIdleLocked()
}

func (s *session) endIdleLocked() {
	if s.idle != nil {
		s.idle.unsubscribe()
		s.idle = nil
	}
	s.idling = false
}

// idleWake is the folder watch's signal; it never blocks the watch.
func (s *session) idleWake() {
	if !s.idlePending.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer listen.Recover(s.log, "idle update")
		s.idleUpdate()
	}()
}

// idleUpdate writes what changed while the client idles.
func (s *session) idleUpdate() {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.idlePending.Store(false)
	if !s.idling || s.closed.Load() {
		return
	}
	s.writeUnsolicited("idle update", func() error { return s.updates(true) })
}

// writeUnsolicited writes and sends responses no command asked for (IDLE's
// and NOTIFY's updates), with wmu held. A BYE from write, or a failed
// write, ends the session.
func (s *session) writeUnsolicited(what string, write func() error) {
	s.acquireWriter()
	defer s.releaseWriter()
	err := write()
	var ie *imap.Error
	if errors.As(err, &ie) && ie.Type == imap.StatusResponseTypeBye {
		s.byeLocked(ie.Text)
		s.closed.Store(true)
		s.raw.Close()
		return
	}
	if err == nil {
		err = s.bw.Flush()
	}
	if err != nil {
		s.log.Debug(what, "err", err)
		s.closed.Store(true)
		s.raw.Close()
	}
}
