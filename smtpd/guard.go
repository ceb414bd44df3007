package main

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"tern/common/smtpreply"
)

// guardConn sits between the socket and the SMTP library. It watches the
// plaintext command stream, which the library reads leniently:
//
//   - RFC 5321 2.3.8: lines end in CRLF only. A command line with a bare LF
//     or a bare CR is refused and the connection closed, because a peer
//     that splits lines differently from us is how SMTP smuggling starts.
//     (DATA content is checked separately by strictReader, also under TLS.)
//   - An HTTP request line ("GET / HTTP/1.1", "POST …") means a browser or a
//     cross-protocol attack; the connection is closed at once.
//
// It follows the stream to know which bytes are commands: after a DATA
// line it skips to the CRLF.CRLF end of data, after "BDAT n" it skips n
// bytes, and after STARTTLS it stops looking (the rest is TLS records;
// the library discards anything pipelined behind STARTTLS, RFC 3207 4.2).
//
// It also lets the server answer 421 at shutdown and knows whether the
// session is in the middle of a transaction.
type guardConn struct {
	net.Conn
	srv *server
	ip  string
	id  string

	mode     int
	line     []byte // the current command line, up to maxVerbPeek bytes
	lineLen  int
	prevCR   bool
	skip     int64  // BDAT bytes still to pass
	tail     []byte // last bytes of DATA content, to find the end
	violated string

	busy      atomic.Bool // a DATA/BDAT transaction is being processed
	replying  atomic.Bool // Data returned, its reply not yet written
	closeOnce sync.Once

	peer *localPeer // who connected, on the local submission socket only

	mu   sync.Mutex
	sess *session // current session, for the TLS-aware shutdown reply
}

const (
	modeCommand = iota
	modeData
	modeBDAT
	modeTLS
)

// maxVerbPeek is how much of a command line the guard keeps to see its
// verb and BDAT size.
const maxVerbPeek = 64

var errGuard = errors.New("smtpd: connection closed by the input guard")

func (g *guardConn) Read(p []byte) (int, error) {
	g.replying.Store(false)
	if g.violated != "" {
		return 0, io.EOF
	}
	n, err := g.Conn.Read(p)
	if n > 0 && g.mode != modeTLS {
		if why := g.scan(p[:n]); why != "" {
			g.violated = why
			g.srv.log.Info("connection cut", "event", "rejected", "conn", g.id, "ip", g.ip, "why", why)
			g.Conn.SetWriteDeadline(time.Now().Add(g.srv.cfg.SMTPD.WriteTimeout.D()))
			io.WriteString(g.Conn, "500 5.5.2 "+why+", closing connection\r\n")
			return 0, io.EOF
		}
	}
	return n, err
}

// Write corrects go-smtp's code for unknown commands (common/smtpreply).
func (g *guardConn) Write(p []byte) (int, error) {
	if _, err := g.Conn.Write(smtpreply.Fix(p)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// dataTerminator ends DATA content (RFC 5321 4.1.1.4); its first CRLF may
// be the one that ended the DATA command.
var dataTerminator = []byte("\r\n.\r\n")

// dataEnd returns how many bytes of rest run up to and including the first
// end of data, looking across from tail (the content's last bytes before
// rest, at most len(dataTerminator)-1 of them), or -1 if there is none.
func dataEnd(tail, rest []byte) int {
	if len(tail) > 0 {
		var joined [2*len("\r\n.\r\n") - 2]byte
		n := copy(joined[:], tail)
		n += copy(joined[n:], rest[:min(len(rest), len(dataTerminator)-1)])
		if k := bytes.Index(joined[:n], dataTerminator); k >= 0 {
			return k + len(dataTerminator) - len(tail)
		}
	}
	if k := bytes.Index(rest, dataTerminator); k >= 0 {
		return k + len(dataTerminator)
	}
	return -1
}

// keepTail returns the last len(dataTerminator)-1 bytes of tail and rest,
// reusing tail's storage.
func keepTail(tail, rest []byte) []byte {
	keep := len(dataTerminator) - 1
	if len(rest) >= keep {
		return append(tail[:0], rest[len(rest)-keep:]...)
	}
	tail = append(tail, rest...)
	if len(tail) > keep {
		tail = append(tail[:0], tail[len(tail)-keep:]...)
	}
	return tail
}

// scan advances the stream state over b and returns why the connection
// must be cut, or "".
func (g *guardConn) scan(b []byte) string {
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch g.mode {
		case modeTLS:
			return ""
		case modeBDAT:
			k := int64(len(b) - i)
			if k > g.skip {
				k = g.skip
			}
			g.skip -= k
			i += int(k) - 1
			if g.skip == 0 {
				g.mode = modeCommand
			}
		case modeData:
			// The content is searched a chunk at a time for its end; what
			// follows it in the chunk is pipelined commands.
			n := dataEnd(g.tail, b[i:])
			if n < 0 {
				g.tail = keepTail(g.tail, b[i:])
				return ""
			}
			g.mode = modeCommand
			g.tail = g.tail[:0]
			i += n - 1
		case modeCommand:
			if g.prevCR && c != '\n' {
				return "bare CR in command (RFC 5321 2.3.8)"
			}
			switch c {
			case '\r':
				g.prevCR = true
				continue
			case '\n':
				if !g.prevCR {
					return "bare LF in command (RFC 5321 2.3.8)"
				}
				g.prevCR = false
				if why := g.endLine(); why != "" {
					return why
				}
				continue
			}
			g.prevCR = false
			if len(g.line) < maxVerbPeek {
				g.line = append(g.line, c)
			}
		}
	}
	return ""
}

// endLine looks at a complete command line.
func (g *guardConn) endLine() string {
	line := string(g.line)
	g.line = g.line[:0]
	verb, arg, _ := strings.Cut(line, " ")
	switch strings.ToUpper(verb) {
	case "GET", "POST", "HEAD", "PUT", "CONNECT", "OPTIONS", "DELETE":
		return "HTTP request on the SMTP port"
	case "DATA":
		if arg == "" {
			g.mode = modeData
			// The first line of data starts right after a CRLF.
			g.tail = append(g.tail[:0], '\r', '\n')
		}
	case "BDAT":
		f := strings.Fields(arg)
		if len(f) >= 1 {
			if n, err := strconv.ParseUint(f[0], 10, 32); err == nil && n > 0 {
				g.mode, g.skip = modeBDAT, int64(n)
			}
		}
	case "STARTTLS":
		g.mode = modeTLS
	}
	return ""
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
				l.srv.log.Error("local submission refused", "event", "rejected", "err", err)
				c.Close()
				continue
			}
			// The per-address limits apply per local user.
			peer, ip = p, "uid:"+strconv.FormatUint(uint64(p.uid), 10)
		}
		g := &guardConn{Conn: c, srv: l.srv, ip: ip, id: l.srv.nextConnID(), peer: peer}
		if l.kind == kindSubmissions {
			g.mode = modeTLS // implicit TLS: the guard sees only records
		}
		ok, why := l.srv.conns.add(g, l.srv.cfg.SMTPD.MaxConnections, l.srv.cfg.SMTPD.MaxConnectionsPerIP)
		if !ok {
			// RFC 5321 3.1: a server may answer the greeting with 421.
			l.srv.log.Info("connection refused", "event", "rejected", "ip", ip, "why", why)
			c.SetWriteDeadline(time.Now().Add(time.Second))
			io.WriteString(c, "421 "+why+"\r\n")
			c.Close()
			continue
		}
		l.srv.log.Debug("connect", "conn", g.id, "ip", ip, "listener", l.kind.String())
		return g, nil
	}
}
