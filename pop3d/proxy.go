package main

import (
	"errors"
	"time"

	"tern/common/cluster"
	"tern/common/maillog"
)

// User affinity (common/cluster, tern-cluster(7)): a user whose home host
// is another host is logged in there, the home host's +OK (with its count
// of messages) is the answer to the login, and the session is relayed to
// it from then on.

// errRelayed ends a session whose relay to the home host is over.
var errRelayed = errors.New("pop3d: relayed session ended")

// proxyHome logs address in on the user's home host when that is another
// host, and returns the reply that starts the relay. When the home host
// cannot serve, the failover is logged and ok is false: the session is
// served here.
func (s *session) proxyHome(address string) (r reply, ok bool) {
	if cluster.Trusted(s.raw) {
		// Arrived through a proxy: served here, never proxied again.
		return reply{}, false
	}
	host, ok := s.srv.cluster.HomeOf(s.srv.users, address)
	if !ok {
		return reply{}, false
	}
	b, err := s.srv.cluster.LoginPOP3(host, address, s.remote, s.raw.LocalAddr())
	if err != nil {
		maillog.Failover(s.log, address, host, "pop3", err.Error())
		return reply{}, false
	}
	// The home host holds the maildrop's lock, the per-user limit; Login
	// ends the login deadline here, which would cut the relay.
	s.raw.Login("")
	s.srv.guard.Succeeded(s.ip, address, s.log)
	maillog.Proxied(s.log, address, host, "pop3")
	relay := func() error {
		s.raw.SetDeadline(time.Time{})
		up, down := b.Relay(cluster.End{R: s.r, W: s.conn, Conn: s.raw}, s.srv.options().idleTimeout)
		maillog.Logout(s.log, address)
		s.log.Debug("relay ended", "host", host, "bytes_up", up, "bytes_down", down)
		return errRelayed
	}
	return reply{ok: true, text: b.Reply, then: relay}, true
}
