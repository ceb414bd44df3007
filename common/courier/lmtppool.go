package courier

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"tern/common/config"
	"tern/common/listen"
)

// lmtpPool keeps connections to lmtpd open between messages, so that a
// message costs one LMTP transaction rather than a connect, a greeting,
// LHLO and QUIT as well. It holds at most smtpd.lmtp_idle_connections idle
// connections and closes each one left unused for smtpd.lmtp_idle_timeout.
// A connection is only given back after a transaction that ended cleanly
// (RFC 2033 4.2: after the replies to DATA, or after RSET), so the next
// user starts at MAIL.
type lmtpPool struct {
	cfg func() *config.Config

	mu     sync.Mutex
	idle   []*lmtpConn // the most recently used last
	sweep  *time.Timer // pending closing of stale connections, nil if none
	closed bool
}

// lmtpConn is one LMTP client connection.
type lmtpConn struct {
	*smtp.Client
	nc       net.Conn
	lastUsed time.Time
	reused   bool // it served an earlier message
}

func newLMTPPool(cfg func() *config.Config) *lmtpPool {
	return &lmtpPool{cfg: cfg}
}

// get returns an idle connection, or a new one after its LHLO.
func (p *lmtpPool) get() (*lmtpConn, error) {
	p.mu.Lock()
	for len(p.idle) > 0 {
		c := p.idle[len(p.idle)-1]
		p.idle = p.idle[:len(p.idle)-1]
		if time.Since(c.lastUsed) < p.cfg().SMTPD.LMTPIdleTimeout.D() {
			p.mu.Unlock()
			c.reused = true
			return c, nil
		}
		go c.quit(p.cfg().SMTPD.ConnectTimeout.D())
	}
	p.mu.Unlock()
	return p.dial()
}

// dial connects to lmtpd and says LHLO.
func (p *lmtpPool) dial() (*lmtpConn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg().SMTPD.ConnectTimeout.D())
	nc, err := listen.Dial(ctx, p.cfg().SMTPD.LMTP)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("connect to lmtpd: %w", err)
	}
	c := &lmtpConn{Client: smtp.NewClientLMTP(nc), nc: nc}
	if err := c.Hello(p.cfg().Hostname); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// put gives back a connection whose transaction is over; it is closed
// instead when the pool is full or closed.
func (p *lmtpPool) put(c *lmtpConn) {
	c.lastUsed = time.Now()
	p.mu.Lock()
	if p.closed || len(p.idle) >= p.cfg().SMTPD.LMTPIdleConnections {
		p.mu.Unlock()
		c.quit(p.cfg().SMTPD.ConnectTimeout.D())
		return
	}
	p.idle = append(p.idle, c)
	if p.sweep == nil {
		p.sweep = time.AfterFunc(p.cfg().SMTPD.LMTPIdleTimeout.D(), p.closeStale)
	}
	p.mu.Unlock()
}

// closeStale closes the connections unused for the idle timeout, and
// comes back later while any remain.
func (p *lmtpPool) closeStale() {
	timeout := p.cfg().SMTPD.LMTPIdleTimeout.D()
	p.mu.Lock()
	var stale []*lmtpConn
	keep := p.idle[:0]
	for _, c := range p.idle {
		if time.Since(c.lastUsed) >= timeout {
			stale = append(stale, c)
		} else {
			keep = append(keep, c)
		}
	}
	clear(p.idle[len(keep):])
	p.idle = keep
	p.sweep = nil
	if len(p.idle) > 0 && !p.closed {
		// The oldest is first: come back when it goes stale.
		p.sweep = time.AfterFunc(timeout-time.Since(p.idle[0].lastUsed), p.closeStale)
	}
	p.mu.Unlock()
	for _, c := range stale {
		c.quit(p.cfg().SMTPD.ConnectTimeout.D())
	}
}

// close closes every idle connection; later ones are closed when given
// back.
func (p *lmtpPool) close() {
	p.mu.Lock()
	p.closed = true
	idle := p.idle
	p.idle = nil
	if p.sweep != nil {
		p.sweep.Stop()
		p.sweep = nil
	}
	p.mu.Unlock()
	for _, c := range idle {
		c.quit(p.cfg().SMTPD.ConnectTimeout.D())
	}
}

// quit says QUIT (RFC 5321 4.1.1.10) and closes, waiting at most timeout
// for lmtpd.
func (c *lmtpConn) quit(timeout time.Duration) {
	c.nc.SetDeadline(time.Now().Add(timeout))
	if err := c.Quit(); err != nil {
		c.Close()
	}
}
