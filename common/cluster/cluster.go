// Package cluster keeps each user on a home host when several tern hosts
// serve one Maildir tree on shared storage ([cluster] in tern.toml,
// tern-cluster(7)).
//
// A user's home host is the users file's extra field host=, which must name
// one of cluster.hosts. imapd and pop3d on any host check the user's own
// password as usual and, when the home host is another host, open a
// connection to that host's internal port, send a PROXY protocol v1 header
// with the client's address, log the user in there with the shared proxy
// secret (SASL PLAIN: authorization id empty, authentication id the user,
// password the secret), and relay bytes both ways. smtpd hands such a
// user's mail to the home host's lmtpd on its internal LMTP port. When the
// home host cannot be reached, or refuses the proxy login, the local host
// serves the user itself from the shared tree and logs the failover
// (common/maillog).
//
// # Trust
//
// The internal ports are bound on cluster.self and take connections only
// from the addresses in cluster.hosts: any other peer is closed before a
// byte is read. imapd and pop3d take the proxy secret only on those ports
// (Trusted), and there only the secret: a user's own password is refused
// there, and the secret is never accepted on the public ports, so it is of
// no use from outside the host list. The secret stops a local user of a
// host from reaching another host's internal port with a forged PROXY
// header. A session that arrived through a proxy is never proxied again,
// so hosts whose users files disagree cannot loop. The destination of a
// proxy is only ever an address from cluster.hosts and a port from
// [cluster]; nothing a client sends chooses it.
package cluster

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/emersion/go-sasl"

	"tern/common/auth"
	"tern/common/config"
)

// minSecret is the shortest proxy secret taken: 16 bytes of a random
// string are beyond guessing through a login brake.
const minSecret = 16

// Cluster is the [cluster] configuration of a daemon. A nil *Cluster is no
// cluster: every user is served locally.
type Cluster struct {
	self    string
	hosts   map[string]bool
	secret  []byte
	timeout time.Duration
	cfg     config.Cluster
	log     *slog.Logger
}

// Open reads the [cluster] keys and the secret file. It returns nil, nil
// when no hosts are configured.
func Open(cfg *config.Config, log *slog.Logger) (*Cluster, error) {
	if !cfg.Clustered() {
		return nil, nil
	}
	raw, err := os.ReadFile(cfg.Cluster.Secret)
	if err != nil {
		return nil, fmt.Errorf("cluster secret: %w", err)
	}
	secret := bytes.TrimSpace(raw)
	if len(secret) < minSecret {
		return nil, fmt.Errorf("cluster secret %q: shorter than %d bytes", cfg.Cluster.Secret, minSecret)
	}
	c := &Cluster{
		self:    canonicalIP(cfg.Cluster.Self),
		hosts:   map[string]bool{},
		secret:  secret,
		timeout: cfg.Cluster.ConnectTimeout.D(),
		cfg:     cfg.Cluster,
		log:     log,
	}
	for _, h := range cfg.Cluster.Hosts {
		c.hosts[canonicalIP(h)] = true
	}
	return c, nil
}

// canonicalIP spells an address one way ("::ffff:10.0.0.1" and "10.0.0.1"
// are one host), or returns "" for something that is not an address.
func canonicalIP(s string) string {
	ip := net.ParseIP(s)
	if ip == nil {
		return ""
	}
	return ip.String()
}

// Self is this host's address.
func (c *Cluster) Self() string { return c.self }

// Ports are the internal ports of [cluster].
func (c *Cluster) Ports() (imap, pop3, lmtp int) {
	return c.cfg.IMAPPort, c.cfg.POP3Port, c.cfg.LMTPPort
}

// Home returns the home host of a user when it is another host of the
// cluster. A host= naming no host of cluster.hosts is logged and ignored:
// the user is served here.
func (c *Cluster) Home(u auth.User) (string, bool) {
	if c == nil {
		return "", false
	}
	v, ok := u.Field("host")
	if !ok || v == "" {
		return "", false
	}
	h := canonicalIP(v)
	if !c.hosts[h] {
		c.log.Warn("host= is not one of cluster.hosts; user served here", "user", u.Address, "host", v)
		return "", false
	}
	if h == c.self {
		return "", false
	}
	return h, true
}

// HomeOf is Home for an address of the users file; unknown users have no
// home host.
func (c *Cluster) HomeOf(users *auth.DB, address string) (string, bool) {
	if c == nil {
		return "", false
	}
	u, ok := users.Lookup(address)
	if !ok {
		return "", false
	}
	return c.Home(u)
}

// Timeout bounds connecting to a home host and logging in there.
func (c *Cluster) Timeout() time.Duration { return c.timeout }

// Dial connects to port of host, from Self (the address the other host
// checks), within the connect timeout.
func (c *Cluster) Dial(ctx context.Context, host string, port int) (net.Conn, error) {
	if !c.hosts[host] {
		// Never reached through Home; a guard against a caller that
		// would take an address from elsewhere.
		return nil, fmt.Errorf("cluster: %s is not one of cluster.hosts", host)
	}
	d := net.Dialer{Timeout: c.timeout, LocalAddr: &net.TCPAddr{IP: net.ParseIP(c.self)}}
	nc, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return nil, fmt.Errorf("connect to home host %s: %w", host, err)
	}
	return nc, nil
}

// DialProxied connects to a home host's internal port and sends the PROXY
// header that carries the client's address. The connection's deadline is
// set to the connect timeout for the login that follows; the caller clears
// it.
func (c *Cluster) DialProxied(host string, port int, client, local net.Addr) (net.Conn, error) {
	nc, err := c.Dial(context.Background(), host, port)
	if err != nil {
		return nil, err
	}
	nc.SetDeadline(time.Now().Add(c.timeout))
	if _, err := nc.Write(proxyHeader(client, local)); err != nil {
		nc.Close()
		return nil, fmt.Errorf("PROXY header to %s: %w", host, err)
	}
	return nc, nil
}

// ErrNotHost is the refusal of a connection to an internal port from an
// address that is not one of cluster.hosts.
var ErrNotHost = errors.New("cluster: peer is not one of cluster.hosts")

// PlainResponse is the SASL PLAIN message (RFC 4616 2) that logs user in on
// a home host: no authorization id, the user as authentication id, the
// secret as password.
func (c *Cluster) PlainResponse(user string) []byte {
	b := make([]byte, 0, 2+len(user)+len(c.secret))
	b = append(b, 0)
	b = append(b, user...)
	b = append(b, 0)
	return append(b, c.secret...)
}

// PlainServer is the SASL PLAIN server of an internal port: it takes the
// proxy secret as the password of any user of the users file who may log
// in, and calls onSuccess with the user's address. Only a connection for
// which Trusted is true may be given it.
func (c *Cluster) PlainServer(users *auth.DB, onSuccess func(address string) error) sasl.Server {
	return sasl.NewPlainServer(func(identity, username, password string) error {
		ok := subtle.ConstantTimeCompare([]byte(password), c.secret) == 1
		u, known := users.Lookup(users.Canonical(username))
		_, nologin := u.Extra["nologin"]
		if !ok || !known || nologin || (identity != "" && identity != username) {
			return auth.ErrFailed
		}
		return onSuccess(u.Address)
	})
}
