package main

import (
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"tern/common/maillog"
)

// guardConn wraps each accepted socket (under TLS, where there is TLS).
// It counts the connection against the limits, lets the server answer 421
// at shutdown on the session's current transport, and knows whether the
// session is in the middle of a transaction. It reads nothing itself:
// every rule on the client's bytes is applied by common/smtpserver on the
// decrypted stream.
type guardConn struct {
	net.Conn
	srv *server
	ip  string
	id  string

	busy      atomic.Bool // a DATA/BDAT transaction is being processed
	replying  atomic.Bool // Data returned, its reply not yet written
	closeOnce sync.Once

	peer *localPeer // who connected, on the local submission socket only

	mu   sync.Mutex
	sess *session // current session, for the TLS-aware shutdown reply
}

func (g *guardConn) Read(p []byte) (int, error) {
	g.replying.Store(false)
	return g.Conn.Read(p)
}

// CloseWrite shuts the server's side of a TCP or unix connection, so that
// common/smtpserver can end a session without a reset.
func (g *guardConn) CloseWrite() error {
	if cw, ok := g.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// idle reports whether the session waits for the client's next command.
func (g *guardConn) idle() bool { return !g.busy.Load() && !g.replying.Load() }

// shutdown answers 421 (RFC 5321 3.8) on the session's current transport
// (TLS after STARTTLS) and closes the connection.
func (g *guardConn) shutdown(host string) {
	g.shutdownWith("421 4.3.2 " + host + " Service shutting down, try again later\r\n")
}

// shutdownWith writes a last reply line and closes the connection.
func (g *guardConn) shutdownWith(reply string) {
	g.mu.Lock()
	s := g.sess
	g.mu.Unlock()
	var w io.Writer = g.Conn
	if s != nil && s.conn != nil {
		w = s.conn.Conn()
	}
	g.Conn.SetWriteDeadline(time.Now().Add(time.Second))
	io.WriteString(w, reply)
	g.Close()
}

func (g *guardConn) Close() error {
	var err error
	g.closeOnce.Do(func() {
		err = g.Conn.Close()
		g.srv.conns.remove(g)
	})
	return err
}

// connTracker counts sessions, in total and per client address, and
// finds them at shutdown.
type connTracker struct {
	mu    sync.Mutex
	all   map[*guardConn]struct{}
	perIP map[string]int
}

func (t *connTracker) add(g *guardConn, maxTotal, maxPerIP int) (ok bool, why string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.all == nil {
		t.all, t.perIP = map[*guardConn]struct{}{}, map[string]int{}
	}
	if len(t.all) >= maxTotal {
		return false, "4.3.2 Too many connections, try again later"
	}
	if t.perIP[g.ip] >= maxPerIP {
		return false, "4.7.0 Too many connections from your address"
	}
	t.all[g] = struct{}{}
	t.perIP[g.ip]++
	return true, ""
}

func (t *connTracker) remove(g *guardConn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.all[g]; !ok {
		return
	}
	delete(t.all, g)
	if t.perIP[g.ip]--; t.perIP[g.ip] <= 0 {
		delete(t.perIP, g.ip)
	}
}

func (t *connTracker) list() []*guardConn {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]*guardConn, 0, len(t.all))
	for g := range t.all {
		out = append(out, g)
	}
	return out
}

// guardListener applies the connection limits and wraps each connection.
type guardListener struct {
	net.Listener
	srv  *server
	kind kind
}

func (l *guardListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := c.RemoteAddr().String()
		if h, _, err := net.SplitHostPort(ip); err == nil {
			ip = h
		}
		var peer *localPeer
		if l.kind == kindLocal {
			p, err := l.srv.peerOf(c)
			if err != nil {
				maillog.Rejected(l.srv.log, maillog.Rejection{Stage: "connect", Reason: err.Error()})
				c.Close()
				continue
			}
			// The per-address limits apply per local user.
			peer, ip = p, "uid:"+strconv.FormatUint(uint64(p.uid), 10)
		}
		g := &guardConn{Conn: c, srv: l.srv, ip: ip, id: l.srv.nextConnID(), peer: peer}
		ok, why := l.srv.conns.add(g, l.srv.cfg().SMTPD.MaxConnections, l.srv.cfg().SMTPD.MaxConnectionsPerIP)
		if !ok {
			// RFC 5321 3.1: a server may answer the greeting with 421.
			maillog.Rejected(l.srv.log.With("ip", ip), maillog.Rejection{Stage: "connect", Code: 421, Reason: why})
			c.SetWriteDeadline(time.Now().Add(time.Second))
			io.WriteString(c, "421 "+why+"\r\n")
			c.Close()
			continue
		}
		l.srv.log.Debug("connect", "conn", g.id, "ip", ip, "listener", l.kind.String())
		return g, nil
	}
}
