package main

import (
	"log/slog"
	"net"
	"time"

	"github.com/emersion/go-smtp"

	"tern/common/config"
	"tern/common/serve"
	"tern/common/smtpserver"
)

// server is tern's SMTP server (common/smtpserver) in LMTP mode, the one
// smtpd runs too, on the connections common/serve admits, which answers
// 421 at shutdown (RFC 5321 3.8) once a transaction in flight is over.
// LMTP has no connection limits: its clients are the MTAs of the machine
// (smtpd, Postfix), on a socket only they can reach.
type server struct {
	smtp  *smtpserver.Server
	agent *agent
	log   *slog.Logger
	conns *serve.Server
}

func newServer(cfg *config.Config, a *agent, log *slog.Logger) *server {
	s := &server{agent: a, log: log}
	s.smtp = lmtpSettings(cfg, s, log)
	// Each new connection gets the limits and timeouts in force when it
	// is accepted (SIGHUP may have changed them).
	s.smtp.Settings = func() *smtpserver.Server { return lmtpSettings(a.cfg(), s, log) }
	s.conns = &serve.Server{Name: "lmtpd", Log: log, Handle: func(c *serve.Conn) { s.smtp.ServeConn(c) },
		Refuse: func(serve.Refusal) string {
			return "421 4.3.2 " + a.cfg().Hostname + " Service shutting down, try again later"
		}}
	return s
}

// lmtpSettings configures the protocol loop from cfg.
func lmtpSettings(cfg *config.Config, s *server, log *slog.Logger) *smtpserver.Server {
	return &smtpserver.Server{
		Backend:         s,
		LMTP:            true,
		Domain:          cfg.Hostname,
		MaxMessageBytes: int64(cfg.LMTPD.MaxMessageSize),
		MaxRecipients:   cfg.LMTPD.MaxRecipients,
		MaxLineLength:   cfg.LMTPD.MaxLineLength,
		MaxErrors:       cfg.LMTPD.MaxErrors,
		ReadTimeout:     cfg.LMTPD.ReadTimeout.D(),
		WriteTimeout:    cfg.LMTPD.WriteTimeout.D(),
		// The message is stored as received, so 8-bit and UTF-8 content
		// and addresses need nothing more (RFC 6152, RFC 6531).
		EnableSMTPUTF8:   true,
		EnableBINARYMIME: true,
		Log:              log,
	}
}

// serve accepts connections on l until the server shuts down.
func (s *server) serve(l net.Listener) error {
	return s.conns.ServeListener(&serve.Listener{Listener: l, Kind: "lmtp"})
}

// NewSession implements smtpserver.Backend; it is called at LHLO.
func (s *server) NewSession(c *smtpserver.Conn) (smtp.Session, error) {
	sc, _ := c.Conn().(*serve.Conn)
	sess := &session{s: s, conn: sc, log: s.log}
	if sc != nil {
		sess.log = sc.Log
	}
	sess.log.Debug("session started", "lhlo", c.Hostname())
	return sess, nil
}

// shutdown stops accepting and answers 421 to every idle connection at
// once and to busy ones when their transaction ends, within grace.
func (s *server) shutdown(grace time.Duration) {
	s.conns.Shutdown(grace)
	s.close()
}

func (s *server) close() {
	s.smtp.Close()
	s.agent.close()
}
