// Package courier is smtpd's delivery half: the queue runner that takes
// messages out of the durable queue (common/queue) and delivers them, local
// recipients to lmtpd over LMTP (a pool of connections, lmtppool.go) and
// remote ones over SMTP to their MX, the transport map's next hop or
// relay_host (outbound.go), with retries and backoff per message and per
// host (hosts.go: destination_concurrency per MX host and per address),
// delivery status notifications (dsn.go, RFC 3461 and 3464), the TLS
// policies of the recipient's domain (sts.go MTA-STS, dane.go DANE,
// requiretls.go REQUIRETLS) and the TLS reports they feed (tlsreport.go,
// RFC 8460).
//
// smtpd's receiver uses it through four calls: New with Deps (the
// configuration in force, the logger, the queue and the resolver: all a
// delivery needs from the daemon), Run, Wake after it queued a message,
// and DeliverLocal, the direct path that hands a message's local
// recipients to lmtpd before the 250, so that a message lmtpd takes whole
// is never queued. The courier knows nothing of sessions or listeners.
//
// Its mail log lines (delivered, deferred, bounced, dsn, tls_policy,
// tls_report) go through common/maillog with the message's queue id.
package courier
