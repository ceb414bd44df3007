package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"

	"tern/common/auth"
	"tern/common/authguard"
	"tern/common/config"
	"tern/common/courier"
	"tern/common/daemon"
	"tern/common/dns"
	"tern/common/listen"
	"tern/common/mailauth"
	"tern/common/queue"
	"tern/common/recipient"
	"tern/common/serve"
	"tern/common/smtpserver"
)

// kind is what a listener is for.
type kind int

const (
	kindMX          kind = iota // mail from other servers, port 25
	kindSubmission              // STARTTLS submission, port 587 (RFC 6409)
	kindSubmissions             // implicit-TLS submission, port 465 (RFC 8314)
	kindLocal                   // local submission socket for sendmail(1); see local.go
)

func (k kind) String() string {
	return [...]string{"mx", "submission", "submissions", "local"}[k]
}

// server is smtpd: the listeners, the shared lookups and the queue.
type server struct {
	live  *config.Live
	log   *slog.Logger
	users *auth.DB
	rcpts *recipient.Resolver
	queue *queue.Queue
	tls   *tls.Config
	// courier is the delivery half: the queue runner, LMTP and remote
	// delivery, DSNs (common/courier). The session hands it local
	// recipients at once and wakes it for what it queued.
	courier *courier.Courier
	// resolver answers every DNS lookup (MX, SPF, DKIM, DMARC): [dns].
	resolver *net.Resolver
	checker  *mailauth.Checker
	// guard is the login delay shared with imapd and pop3d (throttle.go).
	guard *authguard.Guard
	// submitRate is smtpd.submission_rate (ratelimit.go).
	submitRate *rateLimiter

	// conns admits, counts and shuts down the connections (guard.go).
	conns *serve.Server
	// smtp is the protocol loop of each kind of listener.
	smtp map[kind]*smtpserver.Server
	// receiving counts the messages being received (receive): shutdown
	// waits for them, so that each ends with its spool file discarded or
	// committed, never left in queue/tmp by the exit.
	receiving atomic.Int64
}

func newServer(cfg *config.Config, log *slog.Logger, tlsCfg *tls.Config) (*server, error) {
	users, err := auth.Open(cfg.Users, cfg.Domains[0], log)
	if err != nil {
		return nil, fmt.Errorf("users: %w", err)
	}
	rcpts, err := recipient.New(cfg, users, log)
	if err != nil {
		return nil, fmt.Errorf("aliases: %w", err)
	}
	q, err := queue.Open(cfg.StateDir, log)
	if err != nil {
		return nil, err
	}
	if err := q.Recover(); err != nil {
		log.Error("queue recovery", "err", err)
	}
	s := &server{live: daemon.Live(cfg), log: log, users: users, rcpts: rcpts, queue: q, tls: tlsCfg, resolver: dns.New(cfg.DNS)}
	s.checker = newChecker(cfg, s.resolver)
	s.guard = authguard.OpenOrOff(cfg.StateDir, cfg.Login, log)
	if s.courier, err = courier.New(courier.Deps{Config: s.cfg, Log: log, Queue: q, Resolver: s.resolver}); err != nil {
		return nil, err
	}
	s.submitRate = newRateLimiter(cfg.SMTPD.SubmissionRate)
	s.registerMetrics()
	s.conns, s.smtp = s.newConns(), s.smtpServers()
	return s, nil
}

// cfg is the configuration in force: SIGHUP may replace it (see
// daemon.Live), so sessions and deliveries read it each time they need a
// key rather than keep a copy, and see a change from their next step.
func (s *server) cfg() *config.Config { return s.live.Load() }

// listen opens every listener of the configuration.
func (s *server) listen() error {
	for _, l := range []struct {
		k     kind
		addrs []string
	}{{kindMX, s.cfg().SMTPD.MX}, {kindSubmission, s.cfg().SMTPD.Submission}, {kindSubmissions, s.cfg().SMTPD.Submissions},
		{kindLocal, nonEmpty(s.cfg().SMTPD.LocalSubmit)}} {
		for _, a := range l.addrs {
			if err := s.listenOne(l.k, a); err != nil {
				s.closeListeners()
				return err
			}
		}
	}
	return nil
}

func (s *server) listenOne(k kind, addr string) error {
	if k == kindSubmissions && s.tls == nil {
		return fmt.Errorf("listen %s: submissions needs a TLS certificate", addr)
	}
	var tlsCfg *tls.Config
	if k == kindSubmissions {
		tlsCfg = s.tls
	}
	if err := s.conns.Listen(k.String(), []string{addr}, tlsCfg); err != nil {
		return err
	}
	if k == kindLocal {
		// Every local user may connect: the peer's uid, not the socket's
		// mode, decides what the session may do (local.go).
		if err := os.Chmod(strings.TrimPrefix(addr, "unix:"), 0o666); err != nil {
			return fmt.Errorf("listen %s: %w", addr, err)
		}
	}
	return nil
}

// addrs returns the bound addresses of a kind of listener (for tests).
func (s *server) addrs(k kind) []string { return s.conns.Addrs(k.String()) }

func (s *server) closeListeners() { s.conns.Close() }

// smtpServer configures the protocol loop (common/smtpserver) for one
// kind of listener. AUTH is offered per connection by the session (after
// TLS, or on loopback).
func (s *server) smtpServer(k kind) *smtpserver.Server {
	c := s.cfg().SMTPD
	srv := &smtpserver.Server{
		Backend: smtpserver.BackendFunc(func(conn *smtpserver.Conn) (smtp.Session, error) {
			return s.newSession(k, conn)
		}),
		Domain:          s.cfg().Hostname,
		MaxMessageBytes: int64(c.MaxMessageSize),
		MaxRecipients:   c.MaxRecipients,
		MaxLineLength:   c.MaxLineLength,
		// Every refused command counts, the session's refusals (relay,
		// unknown user, failed AUTH) as much as the loop's.
		MaxErrors:      c.MaxErrors,
		CountRefusals:  true,
		ReadTimeout:    c.ReadTimeout.D(),
		WriteTimeout:   c.WriteTimeout.D(),
		MinDataRate:    c.MinDataRate,
		EnableSMTPUTF8: true,
		EnableDSN:      true,
		// RFC 8689: REQUIRETLS, advertised only over TLS.
		EnableREQUIRETLS: true,
		MaxJunkCommands:  c.MaxJunkCommands,
		Log:              s.log,
	}
	if k != kindSubmissions && k != kindLocal {
		srv.TLSConfig = s.tls
	}
	// Each new connection gets the limits and timeouts in force when it
	// is accepted (SIGHUP may have changed them).
	srv.Settings = func() *smtpserver.Server { return s.smtpServer(k) }
	return srv
}

// serve runs every listener and the queue runner until ctx ends, then
// shuts down within daemon.ShutdownGrace.
func (s *server) serve(ctx context.Context, grace time.Duration) error {
	served := make(chan error, 1)
	go func() { served <- s.conns.Run(ctx.Done(), grace) }()
	runCtx, stopRunner := context.WithCancel(context.Background())
	runnerDone := make(chan struct{})
	go func() {
		defer close(runnerDone)
		defer listen.Recover(s.log, "queue runner")
		s.courier.Run(runCtx)
	}()

	<-ctx.Done()
	deadline := time.Now().Add(grace)
	stopRunner()
	// Idle sessions get 421 at once; sessions inside a transaction get
	// until the deadline to finish it (RFC 5321 3.8; common/serve).
	err := <-served
	for _, srv := range s.smtp {
		srv.Close()
	}
	s.waitReceiving(deadline.Add(receiveGrace))
	select {
	case <-runnerDone:
	case <-time.After(time.Until(deadline) + 500*time.Millisecond):
		s.log.Warn("queue runner still busy at exit; its deliveries are retried after restart")
	}
	s.courier.Close()
	return err
}

// receiveGrace is how long after the shutdown deadline a message whose
// connection was closed may take to end: the read fails at once, and what
// remains is discarding its spool file, or committing it to the queue when
// its local delivery had begun.
const receiveGrace = 3 * time.Second

// waitReceiving waits until no message is being received, or until.
func (s *server) waitReceiving(until time.Time) {
	for s.receiving.Load() > 0 {
		if time.Now().After(until) {
			s.log.Warn("messages still being received at exit", "count", s.receiving.Load())
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// nonEmpty is a list of the one address, or none when it is "" (off).
func nonEmpty(addr string) []string {
	if addr == "" {
		return nil
	}
	return []string{addr}
}
