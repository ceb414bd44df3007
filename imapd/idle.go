package main

import (
	"errors"
	"net"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"

	"tern/common/listen"
	"tern/imapd/wire"
)

// IDLE (RFC 2177, RFC 9051 6.3.13) keeps one goroutine per connection:
// the session's own waits for DONE, and the folder watch wakes a short
// goroutine that writes the updates under the session's write lock.

func init() {
	commands["IDLE"] = commandSpec{authState, (*session).cmdIdle}
}

func (s *session) cmdIdle(c *wire.Command, p *wire.Parser) (reply, error) {
	if err := p.End(); err != nil {
		return reply{}, err
	}
	s.enc.Atom("+ idling").CRLF()
	if err := s.poll(true); err != nil {
		return reply{}, err
	}
	if err := s.bw.Flush(); err != nil {
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
	s.idling = true
	s.releaseWriter()
	s.wmu.Unlock()
	line, err := s.idleWait()
	s.wmu.Lock()
	s.acquireWriter()
	s.idling = false
	unsubscribe()
	if err != nil {
		return reply{}, err
	}
	if !strings.EqualFold(line, "DONE") {
		return reply{}, wire.Bad("IDLE ends with DONE")
	}
	return reply{}, nil
}

// idleWait reads the line that ends IDLE. Every imapd.idle_recheck it
// looks at the mailbox itself; after imapd.idle_timeout the session ends
// (RFC 9051 5.4).
func (s *session) idleWait() (string, error) {
	end := time.Now().Add(s.srv.cfg.IMAPD.IdleTimeout.D())
	for {
		left := time.Until(end)
		if left <= 0 {
			return "", &imap.Error{Type: imap.StatusResponseTypeBye, Text: "Autologout; idle for too long"}
		}
		s.raw.SetReadDeadline(time.Now().Add(min(left, s.srv.cfg.IMAPD.IdleRecheck.D())))
		err := s.waitInput()
		var line string
		if err == nil {
			line, err = s.rd.ReadLine()
		}
		var ne net.Error
		if err != nil && errors.As(err, &ne) && ne.Timeout() {
			s.idleUpdate()
			if s.closed.Load() {
				return "", err
			}
			continue
		}
		return line, err
	}
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
	s.acquireWriter()
	defer s.releaseWriter()
	err := s.poll(true)
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
		s.log.Debug("idle update", "err", err)
		s.closed.Store(true)
		s.raw.Close()
	}
}
