package main

import (
	"crypto/tls"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"tern/common/auth"
	"tern/common/authguard"
	"tern/common/cluster"
	"tern/common/config"
	"tern/common/daemon"
	"tern/common/serve"
)

// server is imapd: its listeners, its sessions, and what they share.
// Each accepted connection is one session (conn.go) with its own
// connection loop; whether a password may be sent in the clear and
// whether STARTTLS is offered are decided per connection there.
type server struct {
	// live is the configuration in force, which SIGHUP may replace: a
	// session reads it through cfg when it needs a key.
	live  *config.Live
	log   *slog.Logger
	users *auth.DB
	tls   *tls.Config
	hub   *watchHub
	// conns admits the connections (common/serve): limits in total, per
	// address and per user, the login deadline, shutdown.
	conns *serve.Server
	// headers holds the parsed headers SEARCH looks at (headercache.go).
	headers *headerCache
	// fetchInfo holds what FETCH derives from message files
	// (fetchcache.go).
	fetchInfo *fetchCache
	// sortKeys holds only the SORT and THREAD keys of headers (sort.go).
	sortKeys *sortKeyCache
	// uidShare shares the UID lists of sessions on the same folder.
	uidShare *uidShare
	// guard is the login delay shared with smtpd and pop3d (throttle.go).
	guard *authguard.Guard
	// cluster keeps users on their home hosts (proxy.go); nil: none.
	cluster *cluster.Cluster
	// compressed counts the sessions that turned COMPRESS on (compress.go).
	compressed atomic.Int64
}

// searchHeaderCacheBytes bounds the per-process cache of the headers SEARCH
// parses (a few hundred bytes a message): 32 MiB keeps every header of
// some 100,000 messages, so that repeated header searches of the busy
// mailboxes read no files, while the memory stays small beside the
// connections'.
const searchHeaderCacheBytes = 32 << 20

// sortKeyCacheBytes bounds the cache of SORT and THREAD keys (some 300
// bytes a message): 64 MiB keeps those of some 200,000 messages, so that a
// warm SORT of a folder too big for the header cache reads no file either
// (a scan of a folder bigger than an LRU cache would miss every time).
const sortKeyCacheBytes = 64 << 20

// cfg is the configuration in force.
func (s *server) cfg() *config.Config { return s.live.Load() }

func newServer(cfg *config.Config, log *slog.Logger, users *auth.DB, tlsConfig *tls.Config) *server {
	s := &server{
		live:      daemon.Live(cfg),
		log:       log,
		users:     users,
		tls:       tlsConfig,
		hub:       newWatchHub(log),
		headers:   newHeaderCache(searchHeaderCacheBytes),
		sortKeys:  newSortKeyCache(sortKeyCacheBytes),
		fetchInfo: newFetchCache(int(cfg.IMAPD.MessageCacheSize)),
		uidShare:  newUIDShare(),
	}
	s.guard = authguard.OpenOrOff(cfg.StateDir, cfg.Login, log)
	s.conns = &serve.Server{
		Name: "imapd",
		Log:  log,
		Limits: func() serve.Limits {
			c := s.cfg()
			return serve.Limits{MaxConnections: c.IMAPD.MaxConnections, PerAddr: c.IMAPD.MaxConnectionsPerIP,
				PerUser: c.IMAPD.MaxConnectionsPerUser, LoginTimeout: c.Login.Timeout.D(),
				HandshakeTimeout: c.IMAPD.HandshakeTimeout.D()}
		},
		// RFC 9051 7.1.5: BYE may be the greeting; RFC 5530 3: LIMIT.
		Refuse: func(r serve.Refusal) string {
			if r == serve.ShuttingDown {
				return "* BYE Server shutting down"
			}
			return "* BYE [LIMIT] " + r.String()
		},
		Handle: func(c *serve.Conn) { newSession(s, c).serve() },
	}
	return s
}

// serve accepts connections on ln until shutdown. With implicitTLS the
// TLS handshake comes first (RFC 8314, port 993).
func (s *server) serve(ln net.Listener, implicitTLS bool) error {
	l := &serve.Listener{Listener: ln, Kind: "imap"}
	if implicitTLS {
		l.Kind, l.TLS = "imaps", s.tls
	}
	return s.conns.ServeListener(l)
}

// shutdown says BYE to every session (RFC 9051 7.1.5) and closes them,
// within grace (common/serve).
func (s *server) shutdown(grace time.Duration) {
	s.conns.Shutdown(grace)
}
