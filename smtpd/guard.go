package main

import (
	"net"
	"strconv"

	"tern/common/serve"
	"tern/common/smtpserver"
)

// smtpd's connections are admitted and shut down by common/serve: the
// limits in total and per client address (per local user on the local
// submission socket), the login deadline until HELO/EHLO (MX, whose
// senders never log in; RFC 5321 4.5.3.2.7 asks for 5 minutes from then
// on) or AUTH (submission), and 421 at shutdown on the session's current
// transport once a transaction in flight is over. This file is what smtpd
// tells it; every rule on the client's bytes is applied by
// common/smtpserver on the decrypted stream.

func (s *server) newConns() *serve.Server {
	return &serve.Server{
		Name: "smtpd",
		Log:  s.log,
		Limits: func() serve.Limits {
			c := s.cfg()
			return serve.Limits{MaxConnections: c.SMTPD.MaxConnections, PerAddr: c.SMTPD.MaxConnectionsPerIP,
				LoginTimeout: c.Login.Timeout.D()}
		},
		// RFC 5321 3.1: a server may answer the greeting with 421.
		Refuse: func(r serve.Refusal) string {
			switch r {
			case serve.TooManyFromAddr:
				return "421 4.7.0 Too many connections from your address"
			case serve.ShuttingDown:
				return "421 4.3.2 " + s.cfg().Hostname + " Service shutting down, try again later"
			}
			return "421 4.3.2 Too many connections, try again later"
		},
		Addr:   s.clientOf,
		Handle: s.handle,
	}
}

// clientOf is the client as the per-address limits count it: the local
// user on the local submission socket, whose credentials the kernel gives
// (a connection without them is refused), the IP address elsewhere.
func (s *server) clientOf(k string, c net.Conn) (string, error) {
	if k != kindLocal.String() {
		return serve.AddrOf(c), nil
	}
	p, err := s.peerOf(c)
	if err != nil {
		return "", err
	}
	return "uid:" + strconv.FormatUint(uint64(p.uid), 10), nil
}

// handle serves an admitted connection with its listener's protocol loop.
func (s *server) handle(c *serve.Conn) {
	k := kindNamed(c.Kind())
	if k == kindLocal {
		// The kernel vouched for the peer: no login stage (local.go).
		c.Login("")
	}
	s.smtp[k].ServeConn(c.Stream())
}

// kindNamed is the kind called name (kind.String).
func kindNamed(name string) kind {
	for k := kindMX; k <= kindLocal; k++ {
		if k.String() == name {
			return k
		}
	}
	return kindMX
}

// serveConnOf finds the admitted connection under a session's, through
// TLS if needed.
func serveConnOf(c net.Conn) *serve.Conn {
	for {
		switch v := c.(type) {
		case *serve.Conn:
			return v
		case interface{ NetConn() net.Conn }:
			c = v.NetConn()
		default:
			return nil
		}
	}
}

// smtpServers makes the protocol loop of each kind of listener.
func (s *server) smtpServers() map[kind]*smtpserver.Server {
	m := map[kind]*smtpserver.Server{}
	for k := kindMX; k <= kindLocal; k++ {
		m[k] = s.smtpServer(k)
	}
	return m
}
