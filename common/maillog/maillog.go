// Package maillog is tern's mail log: one function per operator event, each
// writing one line with a fixed event name and a fixed set of keys through
// the daemon's own slog logger, and counting the event in the metrics.
//
// An event is never a string attribute at a call site: the fail2ban filter
// (packaging/fail2ban/tern.conf) reads the auth_failed line, and the
// metrics (tern_events_total, tern_delivery_seconds) are counted here, by
// the function, so a discard can never be counted as a delivery and the
// counters do not depend on the log level. The events and their keys are
// listed in tern(7), MAIL LOG.
//
// The logger passed in carries the context of the line (daemon, and for a
// session conn and ip); the event adds its own keys, each always present,
// one spelling each: id, from, to, user, via, folder, reason, code, …
package maillog

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"tern/common/metrics"
)

// Event names, the value of the event key and of the metrics' event label.
const (
	EvReceived      = "received"
	EvQueued        = "queued"
	EvDelivered     = "delivered"
	EvDeferred      = "deferred"
	EvBounced       = "bounced"
	EvRejected      = "rejected"
	EvDiscarded     = "discarded"
	EvQuarantined   = "quarantined"
	EvRedirected    = "redirected"
	EvRelayed       = "relayed"
	EvDSN           = "dsn"
	EvVacation      = "vacation"
	EvAuthFailed    = "auth_failed"
	EvLogin         = "login"
	EvLoginRefused  = "login_refused"
	EvLogout        = "logout"
	EvTLS           = "tls"
	EvTLSReport     = "tlsrpt"
	EvSievePut      = "sieve_put"
	EvSieveActive   = "sieve_active"
	EvACMEOrder     = "acme_order"
	EvACMEIssued    = "acme_issued"
	EvACMEFailed    = "acme_failed"
	EvACMEChallenge = "acme_challenge"
	EvProxied       = "proxied"
	EvFailover      = "failover"
)

// Unknown is the user of a failed login whose client never named one (a
// SASL exchange cancelled or malformed before its authentication id).
const Unknown = "unknown"

// deliveryBuckets span a local Maildir write (milliseconds) to a message
// that waited in the queue for a day.
var deliveryBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
	30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600}

// counters are the metrics of the process's daemon; nil until Count.
var counters struct {
	sync.RWMutex
	daemon   string
	events   *metrics.CounterVec
	delivery *metrics.HistogramVec
}

// Count turns on the event metrics of daemon in reg: every event from now
// on increments tern_events_total{daemon,event}, and every delivered one is
// observed in tern_delivery_seconds{daemon,via}.
func Count(reg *metrics.Registry, daemon string) {
	counters.Lock()
	defer counters.Unlock()
	counters.daemon = daemon
	counters.events = reg.Counter("tern_events_total",
		"Mail log events (one per event line, tern(7) MAIL LOG), by daemon and event.", "daemon", "event")
	counters.delivery = reg.Histogram("tern_delivery_seconds",
		"Delivery latency in seconds, from the duration of each delivered event, by daemon and via (maildir, lmtp, smtp).",
		deliveryBuckets, "daemon", "via")
}

func count(event string) {
	counters.RLock()
	defer counters.RUnlock()
	if counters.events != nil {
		counters.events.With(counters.daemon, event).Inc()
	}
}

// viaLabel reduces a delivered line's via to few values: lmtpd's own
// Maildir writes, smtpd's hand-over to lmtpd, and anything else, which is
// smtpd's delivery to a remote host named in via.
func viaLabel(via string) string {
	switch via {
	case "maildir", "lmtp":
		return via
	}
	return "smtp"
}

// emit counts the event, then writes its line when the logger wants its
// level: an event is counted whatever the log level.
func emit(log *slog.Logger, level slog.Level, msg, event string, attrs ...slog.Attr) {
	count(event)
	ctx := context.Background()
	if log == nil || !log.Enabled(ctx, level) {
		return
	}
	log.LogAttrs(ctx, level, msg, append([]slog.Attr{slog.String("event", event)}, attrs...)...)
}

// Msg names one message to one recipient: the keys of the delivery events.
type Msg struct {
	ID     string // smtpd's queue id ("" in lmtpd, which has none)
	From   string // envelope sender ("" for a bounce)
	To     string // envelope recipient
	Via    string // "maildir", "lmtp", or the remote host
	Folder string // the Maildir folder (lmtpd), "" otherwise
}

func (m Msg) attrs() []slog.Attr {
	return []slog.Attr{slog.String("id", m.ID), slog.String("from", m.From), slog.String("to", m.To),
		slog.String("via", m.Via), slog.String("folder", m.Folder)}
}

// Received: smtpd accepted a message (before filters and the queue).
// Keys: id from user rcpts size.
func Received(log *slog.Logger, id, from, user string, rcpts int, size int64) {
	emit(log, slog.LevelInfo, "message received", EvReceived, slog.String("id", id), slog.String("from", from),
		slog.String("user", user), slog.Int("rcpts", rcpts), slog.Int64("size", size))
}

// Queued: smtpd's queue holds the message, durably. Keys: id rcpts.
func Queued(log *slog.Logger, id string, rcpts int) {
	emit(log, slog.LevelInfo, "message queued", EvQueued, slog.String("id", id), slog.Int("rcpts", rcpts))
}

// Delivered: one recipient's copy is delivered (written to a Maildir, or
// accepted by lmtpd or the remote host). Keys: id from to via folder
// duration; a duration of 0 (unknown) is not observed in the histogram.
func Delivered(log *slog.Logger, m Msg, d time.Duration) {
	counters.RLock()
	if counters.delivery != nil && d > 0 {
		counters.delivery.With(counters.daemon, viaLabel(m.Via)).Observe(d.Seconds())
	}
	counters.RUnlock()
	emit(log, slog.LevelInfo, "delivered", EvDelivered, append(m.attrs(), slog.Duration("duration", d))...)
}

// Deferred: one recipient's copy failed temporarily and is tried again (or
// the client told to). Keys: id from to via folder reason.
func Deferred(log *slog.Logger, m Msg, reason string) {
	emit(log, slog.LevelWarn, "delivery deferred", EvDeferred, append(m.attrs(), slog.String("reason", reason))...)
}

// Bounced: one recipient's copy failed for good. Keys: id from to via folder reason.
func Bounced(log *slog.Logger, m Msg, reason string) {
	emit(log, slog.LevelInfo, "delivery failed", EvBounced, append(m.attrs(), slog.String("reason", reason))...)
}

// Discarded: a copy was accepted and deliberately dropped, by a Sieve
// discard or a milter. Keys: id from to by ("sieve", or "milter <addr>").
func Discarded(log *slog.Logger, id, from, to, by string) {
	emit(log, slog.LevelInfo, "discarded", EvDiscarded, slog.String("id", id), slog.String("from", from),
		slog.String("to", to), slog.String("by", by))
}

// Rejection is what a rejected event says.
type Rejection struct {
	Stage  string // connect, rcpt, data, sender, append, …
	ID     string // the queue id once there is one
	From   string
	To     string
	Code   int // the reply code sent, 0 when none
	Reason string
}

// Rejected: a connection, recipient or message was refused.
// Keys: stage id from to code reason.
func Rejected(log *slog.Logger, r Rejection) {
	emit(log, slog.LevelInfo, "refused", EvRejected, slog.String("stage", r.Stage), slog.String("id", r.ID),
		slog.String("from", r.From), slog.String("to", r.To), slog.Int("code", r.Code), slog.String("reason", r.Reason))
}

// Quarantined: a filter asked to hold the message. Keys: id reason.
func Quarantined(log *slog.Logger, id, reason string) {
	emit(log, slog.LevelInfo, "message quarantined", EvQuarantined, slog.String("id", id), slog.String("reason", reason))
}

// Redirected: Sieve sent the message on to another address. Keys: from to.
func Redirected(log *slog.Logger, from, to string) {
	emit(log, slog.LevelInfo, "redirected by sieve", EvRedirected, slog.String("from", from), slog.String("to", to))
}

// Relayed: lmtpd handed a message to smtpd's queue (alias targets
// elsewhere, redirects, vacation replies). Keys: from to.
func Relayed(log *slog.Logger, from, to string) {
	emit(log, slog.LevelInfo, "handed to the queue", EvRelayed, slog.String("from", from), slog.String("to", to))
}

// DSN: smtpd queued a delivery status notification for a message.
// Keys: id dsn action to rcpts.
func DSN(log *slog.Logger, id, dsn, action, to string, rcpts int) {
	emit(log, slog.LevelInfo, "DSN queued", EvDSN, slog.String("id", id), slog.String("dsn", dsn),
		slog.String("action", action), slog.String("to", to), slog.Int("rcpts", rcpts))
}

// Vacation: lmtpd sent a vacation reply (the user is the logger's). Keys: to.
func Vacation(log *slog.Logger, to string) {
	emit(log, slog.LevelInfo, "vacation reply sent", EvVacation, slog.String("to", to))
}

// AuthFailed: a login failed; the line fail2ban reads (its ip comes from
// the session logger). user is the account the client named, Unknown when
// it named none. Keys: user reason failures ip_failures.
func AuthFailed(log *slog.Logger, user, reason string, failures, ipFailures int) {
	if user == "" {
		user = Unknown
	}
	emit(log, slog.LevelInfo, "authentication failed", EvAuthFailed, slog.String("user", user),
		slog.String("reason", reason), slog.Int("failures", failures), slog.Int("ip_failures", ipFailures))
}

// Login: a user logged in. Keys: user tls.
func Login(log *slog.Logger, user string, tls bool) {
	emit(log, slog.LevelInfo, "logged in", EvLogin, slog.String("user", user), slog.Bool("tls", tls))
}

// LoginRefused: right credentials, but the session is refused (maildrop
// locked, too many connections for the user). Keys: user reason.
func LoginRefused(log *slog.Logger, user, reason string) {
	emit(log, slog.LevelInfo, "login refused", EvLoginRefused, slog.String("user", user), slog.String("reason", reason))
}

// Logout: a logged-in session ended. Keys: user.
func Logout(log *slog.Logger, user string) {
	emit(log, slog.LevelInfo, "logged out", EvLogout, slog.String("user", user))
}

// TLSPolicy: outbound TLS met (at Debug) or failed (at Warn) a domain's
// DANE or MTA-STS policy. Keys: domain mx policy result reason.
func TLSPolicy(log *slog.Logger, domain, mx, policy, result, reason string) {
	level, msg := slog.LevelWarn, "TLS policy failure"
	if result == "" {
		level, msg = slog.LevelDebug, "TLS policy met"
	}
	emit(log, level, msg, EvTLS, slog.String("domain", domain), slog.String("mx", mx),
		slog.String("policy", policy), slog.String("result", result), slog.String("reason", reason))
}

// TLSReport: smtpd queued a daily TLS report (RFC 8460). Keys: domain day id to.
func TLSReport(log *slog.Logger, domain, day, id, to string) {
	emit(log, slog.LevelInfo, "TLS report queued", EvTLSReport, slog.String("domain", domain),
		slog.String("day", day), slog.String("id", id), slog.String("to", to))
}

// SievePut: a ManageSieve client stored a script. Keys: user script size.
func SievePut(log *slog.Logger, user, script string, size int) {
	emit(log, slog.LevelInfo, "sieve script stored", EvSievePut, slog.String("user", user),
		slog.String("script", script), slog.Int("size", size))
}

// SieveActive: a ManageSieve client activated a script. Keys: user script.
func SieveActive(log *slog.Logger, user, script string) {
	emit(log, slog.LevelInfo, "sieve script activated", EvSieveActive, slog.String("user", user), slog.String("script", script))
}

// ACMEOrder: webd orders a certificate. Keys: names reason.
func ACMEOrder(log *slog.Logger, names []string, reason string) {
	emit(log, slog.LevelInfo, "obtaining certificate", EvACMEOrder, slog.Any("names", names), slog.String("reason", reason))
}

// ACMEIssued: webd obtained a certificate. Keys: names serial not_after.
func ACMEIssued(log *slog.Logger, names []string, serial string, notAfter time.Time) {
	emit(log, slog.LevelInfo, "certificate obtained", EvACMEIssued, slog.Any("names", names),
		slog.String("serial", serial), slog.Time("not_after", notAfter))
}

// ACMEFailed: an order failed; the current certificate stays in use.
// Keys: attempt retry_in reason.
func ACMEFailed(log *slog.Logger, attempt int, retryIn time.Duration, reason string) {
	emit(log, slog.LevelError, "certificate not obtained; the current one stays in use", EvACMEFailed,
		slog.Int("attempt", attempt), slog.Duration("retry_in", retryIn), slog.String("reason", reason))
}

// ACMEChallenge: webd answered an HTTP-01 challenge. Keys: host.
func ACMEChallenge(log *slog.Logger, host string) {
	emit(log, slog.LevelInfo, "acme challenge answered", EvACMEChallenge, slog.String("host", host))
}

// Proxied: a user's session, logged in here, is relayed to the user's home
// host (common/cluster), which serves it. Keys: user host proto.
func Proxied(log *slog.Logger, user, host, proto string) {
	emit(log, slog.LevelInfo, "proxied to home host", EvProxied, slog.String("user", user),
		slog.String("host", host), slog.String("proto", proto))
}

// Failover: a user's home host could not be reached or refused the proxy
// login or the delivery, and this host serves the user itself from the
// shared tree. Keys: user host proto reason.
func Failover(log *slog.Logger, user, host, proto, reason string) {
	emit(log, slog.LevelWarn, "home host unavailable, serving here", EvFailover, slog.String("user", user),
		slog.String("host", host), slog.String("proto", proto), slog.String("reason", reason))
}
