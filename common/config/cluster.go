package config

import (
	"net"
	"slices"
	"strconv"
	"time"
)

// Cluster names the hosts that serve one Maildir tree on shared storage
// (tern-cluster(7)) and the internal ports through which a host hands a
// user's sessions and deliveries to that user's home host (the users
// file's host= field). With no hosts every host serves every user itself.
type Cluster struct {
	// Hosts are the IP addresses of every host of the cluster, this one
	// included. A user's host= must be one of them to be used, and the
	// internal ports take connections only from them. Default: [] (no
	// cluster: every user is served where they connect).
	Hosts []string `toml:"hosts"`
	// Self is this host's address, one of Hosts: the internal ports are
	// bound on it, connections to other hosts leave from it, and a user
	// whose host= is Self is served here. Required with Hosts.
	Self string `toml:"self"`
	// Secret is a file (mode 0600, owned by the daemons' user) holding the
	// shared proxy secret, the same on every host: imapd and pop3d log a
	// user in on the home host with it, and the home host takes it only on
	// its internal ports, only from Hosts. At least 16 bytes; surrounding
	// white space is ignored. Required with Hosts. Default: "".
	Secret string `toml:"secret"`
	// IMAPPort is imapd's internal port on every host, bound on Self:
	// proxied sessions arrive there after a PROXY protocol header.
	// Default: 1143.
	IMAPPort int `toml:"imap_port"`
	// POP3Port is pop3d's internal port, as IMAPPort. Default: 1110.
	POP3Port int `toml:"pop3_port"`
	// LMTPPort is lmtpd's internal LMTP port, bound on Self, to which
	// smtpd on other hosts hands the home users' mail. Default: 1024.
	LMTPPort int `toml:"lmtp_port"`
	// ConnectTimeout bounds connecting to a home host and logging in
	// there; past it (or on any failure) this host serves the user itself
	// and logs a failover. Default: "3s".
	ConnectTimeout Duration `toml:"connect_timeout"`
}

func defaultCluster() Cluster {
	return Cluster{IMAPPort: 1143, POP3Port: 1110, LMTPPort: 1024, ConnectTimeout: Duration(3 * time.Second)}
}

// Clustered says whether [cluster] names any hosts.
func (c *Config) Clustered() bool { return len(c.Cluster.Hosts) > 0 }

// validateCluster checks the [cluster] keys.
func (c *Config) validateCluster() []identityProblem {
	var ps []identityProblem
	bad := func(key, msg string) { ps = append(ps, identityProblem{key: key, msg: msg}) }
	cl := c.Cluster
	for _, h := range cl.Hosts {
		if net.ParseIP(h) == nil {
			bad("cluster.hosts", h+" is not an IP address")
		}
	}
	for _, p := range []struct {
		key  string
		port int
	}{{"cluster.imap_port", cl.IMAPPort}, {"cluster.pop3_port", cl.POP3Port}, {"cluster.lmtp_port", cl.LMTPPort}} {
		if p.port <= 0 || p.port > 65535 {
			bad(p.key, "must be a port number (1-65535)")
		}
	}
	if cl.ConnectTimeout <= 0 {
		bad("cluster.connect_timeout", "must be greater than zero")
	}
	if len(cl.Hosts) == 0 {
		if cl.Self != "" {
			bad("cluster.self", "needs cluster.hosts")
		}
		return ps
	}
	if !slices.Contains(cl.Hosts, cl.Self) {
		bad("cluster.self", "must be one of cluster.hosts")
	}
	if cl.Secret == "" {
		bad("cluster.secret", "is required with cluster.hosts")
	}
	return ps
}

// InternalListen is the listen address of an internal port (IMAPPort,
// POP3Port or LMTPPort), bound on Self; none without a cluster. A daemon
// declares it among its listeners, so that it is bound before privileges
// are dropped like any other (common/daemon).
func (c *Config) InternalListen(port int) []string {
	if !c.Clustered() {
		return nil
	}
	return []string{net.JoinHostPort(c.Cluster.Self, strconv.Itoa(port))}
}
