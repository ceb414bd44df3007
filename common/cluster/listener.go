package cluster

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"tern/common/listen"
	"tern/common/serve"
)

// The PROXY protocol, version 1 (haproxy's proxy-protocol.txt, 2.1): one
// line before anything else on the connection, at most 107 bytes with its
// CRLF:
//
//	PROXY TCP4 192.0.2.7 10.0.0.2 51234 143\r\n
//	PROXY TCP6 2001:db8::7 2001:db8::2 51234 143\r\n
//	PROXY UNKNOWN\r\n
//
// The text form is used rather than version 2's binary one: both ends are
// tern, the header is one short line an admin can read in a packet trace,
// and its parser is a dozen lines with nothing to mis-size.
const maxHeader = 107

// proxyHeader is the header for a client connected from client to local.
// Anything but two TCP addresses of one family is sent as UNKNOWN, and the
// home host then logs the proxy's own address.
func proxyHeader(client, local net.Addr) []byte {
	ca, ok1 := client.(*net.TCPAddr)
	la, ok2 := local.(*net.TCPAddr)
	if !ok1 || !ok2 || (ca.IP.To4() == nil) != (la.IP.To4() == nil) {
		return []byte("PROXY UNKNOWN\r\n")
	}
	fam := "TCP6"
	if ca.IP.To4() != nil {
		fam = "TCP4"
	}
	return fmt.Appendf(nil, "PROXY %s %s %s %d %d\r\n", fam, ca.IP, la.IP, ca.Port, la.Port)
}

// parseHeader parses a header line without its CRLF. A nil address (and
// no error) is UNKNOWN.
func parseHeader(line string) (*net.TCPAddr, error) {
	f := strings.Split(line, " ")
	if len(f) >= 2 && f[0] == "PROXY" && f[1] == "UNKNOWN" {
		return nil, nil
	}
	if len(f) != 6 || f[0] != "PROXY" || (f[1] != "TCP4" && f[1] != "TCP6") {
		return nil, fmt.Errorf("malformed PROXY header %q", line)
	}
	src, dst := net.ParseIP(f[2]), net.ParseIP(f[3])
	if src == nil || dst == nil || (src.To4() != nil) != (f[1] == "TCP4") {
		return nil, fmt.Errorf("bad addresses in PROXY header %q", line)
	}
	port, err := strconv.ParseUint(f[4], 10, 16)
	if err != nil || (f[4] != "0" && f[4][0] == '0') {
		return nil, fmt.Errorf("bad port in PROXY header %q", line)
	}
	return &net.TCPAddr{IP: src, Port: int(port)}, nil
}

// readHeader reads the header one byte at a time, so that nothing after
// its CRLF is taken from the connection.
func readHeader(c net.Conn) (*net.TCPAddr, error) {
	var b [maxHeader]byte
	var one [1]byte
	n := 0
	for {
		if _, err := c.Read(one[:]); err != nil {
			return nil, fmt.Errorf("read PROXY header: %w", err)
		}
		if n == len(b) {
			return nil, errors.New("PROXY header too long")
		}
		b[n] = one[0]
		n++
		if n >= 2 && b[n-2] == '\r' && b[n-1] == '\n' {
			return parseHeader(string(b[:n-2]))
		}
	}
}

// Conn is a connection accepted on an internal port: its peer is one of
// cluster.hosts, and RemoteAddr is the client's address from the PROXY
// header (the peer's own when the port takes no header, or for UNKNOWN).
type Conn struct {
	net.Conn
	client net.Addr
}

// RemoteAddr is the address of the client the proxy serves.
func (c *Conn) RemoteAddr() net.Addr { return c.client }

// Host is the address of the host that connected.
func (c *Conn) Host() net.Addr { return c.Conn.RemoteAddr() }

// Trusted says whether nc was accepted on an internal port: only then may
// the proxy secret log a user in. nc may wrap the accepted connection (a
// common/serve Conn, a TLS connection): wrappers that give theirs with
// NetConn are looked through.
func Trusted(nc net.Conn) bool {
	for nc != nil {
		switch c := nc.(type) {
		case *Conn:
			return true
		case interface{ NetConn() net.Conn }:
			nc = c.NetConn()
		default:
			return false
		}
	}
	return false
}

// Kind is the kind of the internal listeners among a daemon's listeners
// (common/daemon, common/serve): the label of their connection metrics.
const Kind = "internal"

// Listen opens an internal port on Self (config.InternalListen; the socket
// common/daemon bound before dropping privileges, if it did). Its Accept
// returns only connections from cluster.hosts, each a *Conn; with header,
// each has sent a valid PROXY header within the connect timeout (the rest
// are closed and logged).
func (c *Cluster) Listen(port int, header bool) (net.Listener, error) {
	addr := net.JoinHostPort(c.cfg.Self, strconv.Itoa(port))
	ln, err := listen.Listen(addr)
	if err != nil {
		return nil, fmt.Errorf("cluster internal port: %w", err)
	}
	l := &listener{Listener: ln, c: c, header: header, conns: make(chan *Conn), done: make(chan struct{})}
	go l.run()
	return l, nil
}

// Serve adds the internal port to srv, beside the daemon's other
// listeners: an internal connection is served as any other (admission,
// limits, shutdown), once the peer check and the PROXY header are done.
// Without a cluster (c nil) it does nothing.
func (c *Cluster) Serve(srv *serve.Server, port int, header bool) error {
	if c == nil {
		return nil
	}
	ln, err := c.Listen(port, header)
	if err != nil {
		return err
	}
	srv.Log.Info("listening", "kind", Kind, "addr", ln.Addr().String(), "proxy_header", header)
	srv.Add(&serve.Listener{Listener: ln, Kind: Kind})
	return nil
}

// listener admits connections in goroutines of their own, so that a host
// slow to send its header holds up no other.
type listener struct {
	net.Listener
	c      *Cluster
	header bool
	conns  chan *Conn
	done   chan struct{} // closed when the accept loop ends
	err    error         // why it ended; read after done
}

func (l *listener) run() {
	for {
		nc, err := l.Listener.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			l.err = err
			close(l.done)
			return
		}
		go l.admit(nc)
	}
}

func (l *listener) admit(nc net.Conn) {
	peer, _ := nc.RemoteAddr().(*net.TCPAddr)
	if peer == nil || !l.c.hosts[peer.IP.String()] {
		l.c.log.Warn("internal port: connection refused", "peer", nc.RemoteAddr().String(), "err", ErrNotHost)
		nc.Close()
		return
	}
	conn := &Conn{Conn: nc, client: peer}
	if l.header {
		nc.SetReadDeadline(time.Now().Add(l.c.timeout))
		client, err := readHeader(nc)
		if err != nil {
			l.c.log.Warn("internal port: connection refused", "peer", peer.String(), "err", err)
			nc.Close()
			return
		}
		nc.SetReadDeadline(time.Time{})
		if client != nil {
			conn.client = client
		}
		l.c.log.Info("proxied connection", "host", peer.IP.String(), "client", conn.client.String())
	}
	select {
	case l.conns <- conn:
	case <-l.done:
		nc.Close()
	}
}

// Accept returns the next admitted connection.
func (l *listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, l.err
	}
}
