package main

import (
	"errors"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-sasl"

	"tern/common/cluster"
	"tern/common/maillog"
)

// User affinity (common/cluster, tern-cluster(7)): a user whose home host
// is another host is logged in there and the session relayed to it once
// the client has its tagged OK; the home host's capabilities answer the
// login, as the client talks to it from then on.

// proxyHome logs addr in on the user's home host when that is another
// host. It reports whether the session is to be relayed; when the home
// host cannot serve, it logs the failover and the session is served here.
func (s *session) proxyHome(addr string) bool {
	if cluster.Trusted(s.raw) {
		// Arrived through a proxy: served here, never proxied again.
		return false
	}
	host, ok := s.srv.cluster.HomeOf(s.srv.users, addr)
	if !ok {
		return false
	}
	b, err := s.srv.cluster.LoginIMAP(host, addr, s.raw.RemoteAddr(), s.raw.LocalAddr())
	if err != nil {
		maillog.Failover(s.log, addr, host, "imap", err.Error())
		return false
	}
	s.home, s.user = b, addr
	s.loginSucceeded()
	maillog.Proxied(s.log, addr, host, "imap")
	return true
}

// relayHome relays the session to the home host until either side ends.
// The tagged OK of the login is flushed first; commands the client
// pipelined behind its login are in the read buffer and go first.
func (s *session) relayHome() {
	s.wmu.Lock()
	var err error
	if s.bw != nil {
		err = s.bw.Flush()
	}
	s.releaseWriter()
	s.wmu.Unlock()
	if err != nil {
		s.home.Close()
		return
	}
	s.acquireReader()
	s.raw.SetDeadline(time.Time{})
	up, down := s.home.Relay(cluster.End{R: s.br, W: s.conn, Conn: s.raw}, s.srv.cfg().IMAPD.IdleTimeout.D())
	maillog.Logout(s.log, s.user)
	s.log.Debug("relay ended", "host", s.home.Host, "bytes_up", up, "bytes_down", down)
}

// proxyPlain is the SASL PLAIN server of the internal port, which takes
// the proxy secret and nothing else.
func (s *session) proxyPlain(mech string) (sasl.Server, error) {
	if mech != "PLAIN" && mech != "plain" || s.proxyLogin {
		return nil, errAuthFailed
	}
	// One login a connection: after the proxy's, the bytes are the
	// client's, and a client that sent UNAUTHENTICATE must not get to
	// try secrets here through the relay.
	s.proxyLogin = true
	return proxyReplies{s.srv.cluster.PlainServer(s.srv.users, s.loggedIn)}, nil
}

// proxyReplies turns a refused proxy login into the IMAP answer.
type proxyReplies struct{ sasl.Server }

func (r proxyReplies) Next(resp []byte) ([]byte, bool, error) {
	challenge, done, err := r.Server.Next(resp)
	if err != nil && !errors.As(err, new(*imap.Error)) {
		return nil, true, errAuthFailed
	}
	return challenge, done, err
}
