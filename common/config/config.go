// Package config reads tern's one configuration file, tern.toml.
//
// The schema is the Config struct: every field has a doc comment with its
// default, and tern.toml(5) documents the same keys for admins. Load reports
// every problem at once (unknown keys, bad types, bad values), each with the
// file and line, so that `-check` can show an admin the whole list in one go.
// Nothing downstream of Load needs to validate a value again.
//
// Relative paths in the file are taken relative to the working directory of
// the daemon, which is what `make run` relies on (state under ./var).
package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Config is the whole of tern.toml.
type Config struct {
	// Hostname is the name used in SMTP greetings, EHLO and Received
	// headers. Default: the system's host name.
	Hostname string `toml:"hostname"`
	// Domains are the local mail domains. Required.
	Domains []string `toml:"domains"`
	// Users is the passwd-file of users (user@domain:{SCHEME}hash).
	// Default: /etc/tern/users.
	Users string `toml:"users"`
	// Aliases is the aliases(5) file. Default: /etc/tern/aliases. A missing
	// file means no aliases.
	Aliases string `toml:"aliases"`
	// Maildir is the template of a user's Maildir: %d domain, %n local
	// part, %u whole address. Default: /var/vmail/%d/%n/Maildir.
	Maildir string `toml:"maildir"`
	// StateDir holds the queue and other state. Default: /var/spool/tern.
	StateDir string `toml:"state_dir"`
	// RuntimeDir holds the sockets that are not data: the LMTP socket
	// (smtpd.lmtp, lmtpd.listen) and sendmail's socket
	// (smtpd.local_submit) default to lmtp.sock and submit.sock in it, so
	// that two instances with their own runtime_dir run side by side.
	// Default: /run/tern.
	RuntimeDir string `toml:"runtime_dir"`
	// User is the account a daemon started as root switches to once its
	// listeners are open and before it reads any network input (a name or
	// a numeric uid; see daemon.DropPrivileges). It must exist and must not
	// be root. Started as any other user, or with systemd's User=, a daemon
	// keeps the identity it was given. Default: "" (keep the identity).
	User string `toml:"user"`
	// Group is the primary group taken with User (a name or a numeric gid);
	// the supplementary groups are User's groups from the group database.
	// Needs User. Default: "" (User's primary group).
	Group string `toml:"group"`

	Log   Log   `toml:"log"`
	TLS   TLS   `toml:"tls"`
	SMTPD SMTPD `toml:"smtpd"`
	LMTPD LMTPD `toml:"lmtpd"`
	IMAPD IMAPD `toml:"imapd"`
	POP3D POP3D `toml:"pop3d"`
	DKIM  DKIM  `toml:"dkim"`
	DNS   DNS   `toml:"dns"`
	// Login and Storage are the hardening keys shared by the daemons
	// (hardening.go).
	Login   Login   `toml:"login"`
	Storage Storage `toml:"storage"`
	// ManageSieve (managesieve.go) is served by lmtpd.
	ManageSieve ManageSieve `toml:"managesieve"`
	// WebD (webd.go) configures webd.
	WebD WebD `toml:"webd"`
	// Cluster (cluster.go) names the hosts sharing the Maildir tree.
	Cluster Cluster `toml:"cluster"`
}

// Log configures the daemons' logs, written to standard error.
type Log struct {
	// Level is "debug", "info", "warn" or "error". Default: "info".
	Level string `toml:"level"`
	// Format is "text" or "json". Default: "text".
	Format string `toml:"format"`
}

// TLS names the certificate shared by every TLS listener.
type TLS struct {
	// Cert is the PEM certificate chain. Default: /etc/tern/tls/fullchain.pem.
	Cert string `toml:"cert"`
	// Key is the PEM private key. Default: /etc/tern/tls/privkey.pem.
	Key string `toml:"key"`
	// Generate makes a self-signed certificate for Hostname at Cert and Key
	// when they do not exist. Meant for demos and tests. Default: false.
	Generate bool `toml:"generate"`
	// ACME obtains and renews the certificate automatically (acme.go).
	ACME ACME `toml:"acme"`
}

// SMTPD configures smtpd.
type SMTPD struct {
	// MX are the listeners for mail from other servers. Default: ["0.0.0.0:25"].
	MX []string `toml:"mx"`
	// Submission are STARTTLS submission listeners. Default: ["0.0.0.0:587"].
	Submission []string `toml:"submission"`
	// Submissions are implicit-TLS submission listeners (RFC 8314).
	// Default: ["0.0.0.0:465"].
	Submissions []string `toml:"submissions"`
	// LMTP is where lmtpd listens. Default: lmtp.sock in runtime_dir
	// ("unix:/run/tern/lmtp.sock").
	LMTP string `toml:"lmtp"`
	// RelayHost is an optional smarthost "host:port" for all remote mail.
	RelayHost string `toml:"relay_host"`
	// Transport maps a domain to its next hop "host:port", skipping the MX
	// lookup.
	Transport map[string]string `toml:"transport"`

	// MaxMessageSize is the largest message accepted, advertised in SIZE.
	// Default: "50M".
	MaxMessageSize Size `toml:"max_message_size"`
	// MemoryBuffer is the largest message held in memory while it is
	// received and handed to lmtpd; a larger one goes to a queue spool
	// file as it arrives. A message that has to be queued is written to
	// the queue whatever its size. Default: "256K".
	MemoryBuffer Size `toml:"memory_buffer"`
	// MaxRecipients per message (RFC 5321 4.5.3.1.8 asks for at least 100).
	// Default: 100.
	MaxRecipients int `toml:"max_recipients"`
	// MaxLineLength is the longest command or text line, CRLF included
	// (RFC 5321 4.5.3.1.4-6: 512 and 1000 at least). Default: 4096.
	MaxLineLength int `toml:"max_line_length"`
	// MaxErrors is how many bad commands a session may send before it is
	// closed. Default: 10.
	MaxErrors int `toml:"max_errors"`
	// MaxJunkCommands is how many NOOP, RSET and VRFY a session may send
	// between accepted messages before it is closed with 421 (Postfix's
	// smtpd_junk_command_limit). Default: 100.
	MaxJunkCommands int `toml:"max_junk_commands"`
	// MaxConnections is the most SMTP sessions at once. Default: 500.
	MaxConnections int `toml:"max_connections"`
	// ReadTimeout bounds the wait for a client's next command or data
	// (RFC 5321 4.5.3.2.7: at least 5 minutes); a whole command line must
	// arrive within it, data within it for each read. Default: "5m".
	ReadTimeout Duration `toml:"read_timeout"`
	// WriteTimeout bounds a write to the client. Default: "1m".
	WriteTimeout Duration `toml:"write_timeout"`
	// MinDataRate is the least a message's data must average, in bytes per
	// second, after a first read_timeout, so that a client sending a byte
	// just before each timeout cannot hold a session for days; 0 turns it
	// off. Default: 500.
	MinDataRate int64 `toml:"min_data_rate"`
	// MaxConnectionsPerIP is the most SMTP sessions at once from one client
	// address; more are answered 421. Default: 20.
	MaxConnectionsPerIP int `toml:"max_connections_per_ip"`
	// MaxReceivedHeaders is the count of Received headers at which a
	// message is refused as looping (RFC 5321 6.3, 554 5.4.6). Default: 100.
	MaxReceivedHeaders int `toml:"max_received_headers"`
	// QueueLifetime is how long a message may wait in the queue before it
	// is given up and bounced (RFC 5321 4.5.4.1: at least 4-5 days).
	// Default: "120h".
	QueueLifetime Duration `toml:"queue_lifetime"`
	// DelayWarning is how long a message waits in the queue before its
	// sender gets one delay notice (RFC 3464 action "delayed") for the
	// recipients that asked for it with NOTIFY=DELAY (RFC 3461 4.1);
	// "0" sends none. Default: "4h".
	DelayWarning Duration `toml:"delay_warning"`
	// RetryMin is the wait before the first retry of a remote delivery;
	// later waits double up to RetryMax (RFC 5321 4.5.4.1: at least 30
	// minutes). Default: "30m".
	RetryMin Duration `toml:"retry_min"`
	// RetryMax caps the wait between retries of a remote delivery.
	// Default: "4h".
	RetryMax Duration `toml:"retry_max"`
	// LocalRetry is the wait between retries of a delivery to lmtpd (down
	// or answering 4xx). Default: "1m".
	LocalRetry Duration `toml:"local_retry"`
	// DestinationConcurrency is the most deliveries at once to one remote
	// MX host, and to one address: the domains an MX serves share its
	// limit. Default: 5.
	DestinationConcurrency int `toml:"destination_concurrency"`
	// SubmissionRate bounds the recipients each authenticated user, and
	// each sender address, may submit (submission ports and the local
	// socket), as "count/period"; past it RCPT is answered 451 4.7.1, so
	// that one stolen password cannot fill the queue. The count refills
	// evenly over the period and is kept in memory. "0" is no limit.
	// Default: "1000/1h".
	SubmissionRate Rate `toml:"submission_rate"`
	// MaxDeliveries is the most queue deliveries at once. Default: 20.
	MaxDeliveries int `toml:"max_deliveries"`
	// ConnectTimeout bounds connecting to a remote MX or to lmtpd.
	// Default: "30s".
	ConnectTimeout Duration `toml:"connect_timeout"`
	// LMTPIdleConnections is the most connections to lmtpd kept open
	// between messages, so that the next message skips the connect and
	// LHLO; "0" closes each one after its message. Default: 16.
	LMTPIdleConnections int `toml:"lmtp_idle_connections"`
	// LMTPIdleTimeout is how long an unused connection to lmtpd is kept
	// open. It should stay below lmtpd.read_timeout. Default: "30s".
	LMTPIdleTimeout Duration `toml:"lmtp_idle_timeout"`
	// LocalSubmit is the unix socket on which local programs submit mail
	// through sendmail(1) without a password; it is made mode 0666, and
	// smtpd learns each peer's uid from the kernel (SO_PEERCRED), which
	// fixes the envelope sender. It must be "unix:/path"; "" turns local
	// submission off. Default: submit.sock in runtime_dir
	// ("unix:/run/tern/submit.sock").
	LocalSubmit string `toml:"local_submit"`
	// TrustedUsers are the Unix users (names or numeric uids) who may set
	// any envelope sender on the local submission socket (sendmail -f),
	// besides root and the user smtpd runs as. Default: [].
	TrustedUsers []string `toml:"trusted_users"`

	// Milters are the mail filters (spam and virus scanners such as
	// rspamd and clamav-milter) that every message received on the MX
	// listeners passes through before it is accepted, in order, in
	// Postfix's syntax: "inet:host:port", "unix:/path" (sendmail's
	// "inet:port@host" and "local:/path" are taken too). Default: [].
	Milters []string `toml:"milters"`
	// MilterSubmission applies the milters to submission (587, 465 and
	// the local submission socket) too. Default: false.
	MilterSubmission bool `toml:"milter_submission"`
	// MilterDefaultAction is what happens to a message when a milter
	// cannot be reached or fails: "tempfail" (451, the client retries) or
	// "accept" (the milter is skipped). Default: "tempfail".
	MilterDefaultAction string `toml:"milter_default_action"`
	// MilterConnectTimeout bounds connecting to a milter and its option
	// negotiation. Default: "30s".
	MilterConnectTimeout Duration `toml:"milter_connect_timeout"`
	// MilterTimeout bounds each exchange with a milter (one command and
	// its reply; the end of the message gives the milter this long to
	// scan). Default: "2m".
	MilterTimeout Duration `toml:"milter_timeout"`
	// InboundAuth checks SPF (RFC 7208), DKIM (RFC 6376) and DMARC (RFC
	// 7489) for mail on the MX listeners and records the results in one
	// Authentication-Results header (RFC 8601). Default: true.
	InboundAuth bool `toml:"inbound_auth"`
	// AuthservID names this server in Authentication-Results headers;
	// copies of the header with this name arriving from outside are
	// removed as forged (RFC 8601 5). Default: "" (the hostname).
	AuthservID string `toml:"authserv_id"`
	// DMARCReject refuses (550 5.7.1) a message whose DMARC check fails
	// when the sender's domain publishes p=reject (RFC 7489 6.6.4). Off,
	// such a message is delivered as spam, like p=quarantine. Default: true.
	DMARCReject bool `toml:"dmarc_reject"`
	// SPFFail is what an SPF "fail" (RFC 7208 8.4) does: "mark" records it
	// in Authentication-Results and lets DMARC decide; "reject" refuses
	// the message (550 5.7.23). Default: "mark".
	SPFFail string `toml:"spf_fail"`
	// MaxHeaderSize bounds the header of a message that passes through
	// the filters (milters, DKIM, DMARC), which hold it in memory; a larger
	// one is refused (552 5.3.4). Default: "1M".
	MaxHeaderSize Size `toml:"max_header_size"`
	// RemotePort is the TCP port of remote MX hosts (RFC 5321 4.5.4: 25).
	// Only tests and unusual networks change it. Default: 25.
	RemotePort int `toml:"remote_port"`
	// MTASTS applies the MTA-STS policies (RFC 8461) of recipient
	// domains reached through their MX records: with mode "enforce", mail
	// goes only to the MX hosts the policy names, over STARTTLS with a
	// certificate valid for the MX name, or waits in the queue; with
	// "testing" the failures are only reported. Policies are cached in
	// state_dir/mta-sts across restarts. Default: true.
	MTASTS bool `toml:"mta_sts"`
	// MTASTSPort is the HTTPS port of policy servers (RFC 8461 3.3: 443).
	// Only tests change it. Default: 443.
	MTASTSPort int `toml:"mta_sts_port"`
	// TLSCAFile is a PEM file of CA certificates trusted, besides the
	// system's, for the certificates of MX hosts under an MTA-STS policy
	// and of MTA-STS policy servers. Default: "" (the system's only).
	TLSCAFile string `toml:"tls_ca_file"`
	// TLSReports sends, once a day, the aggregate TLS report of RFC 8460
	// to each recipient domain with an MTA-STS or DANE policy that asks
	// for one (a mailto: rua in its _smtp._tls TXT record). The results
	// are kept in state_dir/tls-rpt either way, for mailq -tls-report.
	// Default: true.
	TLSReports bool `toml:"tls_reports"`
	// Metrics is the "host:port" of this daemon's Prometheus endpoint
	// (GET /metrics, text format); "" turns it off. It is plain HTTP
	// without authentication, so keep it on loopback (e.g.
	// "127.0.0.1:9325") or behind a firewall. Default: "" (off).
	Metrics string `toml:"metrics"`
}

// DKIM configures DKIM signing (RFC 6376) of submitted mail and the
// verification of mail received.
type DKIM struct {
	// Selector is the DKIM selector: the public key is published at
	// selector._domainkey.domain. Default: "tern".
	Selector string `toml:"selector"`
	// Key is the template of the private key file of a local domain (%d:
	// the domain), PEM (PKCS#8, or PKCS#1 for RSA; ed25519 or RSA). Mail
	// submitted from a local domain with a key is signed; a domain without
	// a key file is not. `mailq -dkim-keygen DOMAIN` makes one.
	// Default: "/etc/tern/dkim/%d.key".
	Key string `toml:"key"`
	// Headers are the header fields signed, when present (RFC 6376
	// 5.4.1); From is always signed, and signed once more than it appears
	// so that none can be added. Default: the fields RFC 6376 5.4.1
	// recommends.
	Headers []string `toml:"headers"`
	// MaxVerifications bounds the DKIM signatures checked per received
	// message; further ones are ignored. Default: 5.
	MaxVerifications int `toml:"max_verifications"`
}

// DNS configures the resolver used for MX, SPF, DKIM and DMARC lookups.
type DNS struct {
	// Resolver is the DNS server "host:port" to ask; "" uses the system's
	// resolver (/etc/resolv.conf). Default: "".
	Resolver string `toml:"resolver"`
	// Timeout bounds one lookup. Default: "10s".
	Timeout Duration `toml:"timeout"`
	// DNSSEC trusts the AD bit of the resolver's answers: set it only when
	// resolver is a DNSSEC-validating server reached over a trusted path,
	// such as a local unbound on loopback (like Postfix's
	// smtp_dns_support_level = dnssec). It enables DANE (RFC 7672) for
	// outbound mail. Default: false.
	DNSSEC bool `toml:"dnssec"`
}

// LMTPD configures lmtpd.
type LMTPD struct {
	// Listen are lmtpd's listeners. Default: lmtp.sock in runtime_dir
	// (["unix:/run/tern/lmtp.sock"]).
	Listen []string `toml:"listen"`
	// Sieve is the template of a user's active Sieve script.
	// Default: /var/vmail/%d/%n/sieve/active.sieve.
	Sieve string `toml:"sieve"`
	// Quota is the default per-user storage quota ("2G"; "0" = none).
	// Default: "0".
	Quota Size `toml:"quota"`
	// MaxMessageSize is the largest message accepted. Default: "50M".
	MaxMessageSize Size `toml:"max_message_size"`
	// MemoryBuffer is the largest message held in memory between DATA
	// and its delivery; a larger one goes to an unlinked spool file.
	// Default: "256K".
	MemoryBuffer Size `toml:"memory_buffer"`
	// MaxRecipients per transaction. Default: 1000.
	MaxRecipients int `toml:"max_recipients"`
	// MaxLineLength is the longest command or text line, CRLF included
	// (RFC 5321 4.5.3.1.4: 512 at least). Default: 4096.
	MaxLineLength int `toml:"max_line_length"`
	// MaxErrors is how many bad commands (unknown, out of sequence, bad
	// arguments) a session may send before it is closed with 421. Refused
	// recipients do not count: an LMTP client hands over whatever its
	// queue holds. Default: 10.
	MaxErrors int `toml:"max_errors"`
	// ReadTimeout bounds the wait for a client's next command or data; a
	// whole command line must arrive within it. Default: "5m".
	ReadTimeout Duration `toml:"read_timeout"`
	// WriteTimeout bounds a write to the client. Default: "1m".
	WriteTimeout Duration `toml:"write_timeout"`
	// SpamHeader and SpamValue mark a message as spam: when the header is
	// present with this value (compared without regard to case or
	// surrounding space), the message goes to the Junk folder unless the
	// user's Sieve script files it elsewhere. An empty SpamHeader turns
	// this off. Defaults: "X-Spam" and "yes".
	SpamHeader string `toml:"spam_header"`
	SpamValue  string `toml:"spam_value"`
	// SieveMaxSize bounds a user's Sieve script; a larger one is treated as
	// broken (mail goes to INBOX). Default: "1M".
	SieveMaxSize Size `toml:"sieve_max_size"`
	// Metrics is the "host:port" of this daemon's Prometheus endpoint
	// (GET /metrics, text format); "" turns it off. It is plain HTTP
	// without authentication, so keep it on loopback (e.g.
	// "127.0.0.1:9326") or behind a firewall. Default: "" (off).
	Metrics string `toml:"metrics"`
}

// IMAPD configures imapd.
type IMAPD struct {
	// Listen are plain listeners offering STARTTLS. Default: ["0.0.0.0:143"].
	Listen []string `toml:"listen"`
	// TLSListen are implicit-TLS listeners. Default: ["0.0.0.0:993"].
	TLSListen []string `toml:"tls_listen"`
	// MaxLiteralSize bounds one literal, and so APPEND. Default: "50M".
	MaxLiteralSize Size `toml:"max_literal_size"`
	// IdleTimeout closes an idle authenticated session (RFC 9051 5.4: at
	// least 30 minutes). Default: "30m".
	IdleTimeout Duration `toml:"idle_timeout"`
	// MaxConnections is the most IMAP sessions at once. Default: 10000.
	MaxConnections int `toml:"max_connections"`
	// MaxConnectionsPerIP is the most IMAP connections from one client
	// address. Default: 100.
	MaxConnectionsPerIP int `toml:"max_connections_per_ip"`
	// MaxConnectionsPerUser is the most authenticated IMAP sessions of one
	// user. Default: 50.
	MaxConnectionsPerUser int `toml:"max_connections_per_user"`
	// MaxLineLength is the longest command line, CRLF included, literals
	// not counted (RFC 7162 4: at least 8192). Longer lines get BAD.
	// Default: 16384.
	MaxLineLength int `toml:"max_line_length"`
	// HandshakeTimeout bounds the TLS handshake on implicit-TLS listeners.
	// Default: "30s".
	HandshakeTimeout Duration `toml:"handshake_timeout"`
	// MaxNesting bounds the nesting of parenthesised lists and SEARCH
	// keys (NOT, OR, parentheses) in one command; deeper commands get
	// BAD [LIMIT]. Default: 32.
	MaxNesting int `toml:"max_nesting"`
	// MaxPipelined is how many replies of commands pipelined by the
	// client are buffered before they are sent without waiting for the
	// client's next read. Default: 64.
	MaxPipelined int `toml:"max_pipelined"`
	// MaxSearchContexts is how many SEARCH and SORT results with RETURN
	// (UPDATE) (RFC 5267 4) one session may keep updated at once; each is
	// run again when the mailbox changes. One more is NO [LIMIT].
	// Default: 8.
	MaxSearchContexts int `toml:"max_search_contexts"`
	// MaxAppendMessages is the most messages one APPEND may carry (RFC
	// 3502 MULTIAPPEND); one more is NO [LIMIT]. Default: 1000.
	MaxAppendMessages int `toml:"max_append_messages"`
	// MaxAppendSize bounds the messages of one APPEND together (each is
	// bounded by max_literal_size); they wait in tmp/ until the command
	// ends. Beyond it the command is NO [TOOBIG]. Default: "512M".
	MaxAppendSize Size `toml:"max_append_size"`
	// IdleRecheck is how often a session in IDLE (RFC 2177) looks at its
	// mailbox even when no change was signalled, in case a change made
	// outside tern was missed. Default: "1m".
	IdleRecheck Duration `toml:"idle_recheck"`
	// MessageCacheSize bounds the memory imapd keeps of what FETCH
	// derives from message files (header sections, ENVELOPE, BODY and
	// BODYSTRUCTURE), shared by all sessions, so that fetching them again
	// reads no file; "0" turns it off. Default: "64M".
	MessageCacheSize Size `toml:"message_cache_size"`
	// NotifyMaxMailboxes is how many mailboxes one session's NOTIFY
	// (RFC 5465) may watch for message events, each a watch on the folder
	// (shared by the sessions of the process) and a sync when it changes,
	// or for metadata events, each a stat of its metadata file every
	// idle_recheck. A NOTIFY SET naming more is NO [NOTIFICATIONOVERFLOW];
	// mailboxes created later that take the set beyond it end the
	// session's notifications with OK [NOTIFICATIONOVERFLOW]. The list of
	// mailboxes is looked at again every idle_recheck. Default: 1000.
	NotifyMaxMailboxes int `toml:"notify_max_mailboxes"`
	// PreviewMaxRead is how much of a message FETCH PREVIEW (RFC 8970)
	// reads, at most, to make its preview. Default: "64K".
	PreviewMaxRead Size `toml:"preview_max_read"`
	// MetadataMaxSize is the largest value of one METADATA entry (RFC
	// 5464); a larger SETMETADATA is NO [METADATA MAXSIZE n]. Default: "64K".
	MetadataMaxSize Size `toml:"metadata_max_size"`
	// MetadataMaxEntries is the most METADATA entries of one mailbox, and
	// of the server's entries of one user; one more is NO [METADATA
	// TOOMANY]. Default: 100.
	MetadataMaxEntries int `toml:"metadata_max_entries"`
	// MetadataMaxTotal bounds the names and values of all METADATA
	// entries of one user together; a SETMETADATA past it is NO
	// [METADATA TOOMANY]. Default: "1M".
	MetadataMaxTotal Size `toml:"metadata_max_total"`
	// Compress offers COMPRESS=DEFLATE (RFC 4978) to authenticated
	// sessions: both directions deflated, inside TLS, with every limit
	// applied to the inflated commands. Costs CPU for bandwidth.
	// Default: true.
	Compress bool `toml:"compress"`
	// Metrics is the "host:port" of this daemon's Prometheus endpoint
	// (GET /metrics, text format); "" turns it off. It is plain HTTP
	// without authentication, so keep it on loopback (e.g.
	// "127.0.0.1:9327") or behind a firewall. Default: "" (off).
	Metrics string `toml:"metrics"`
}

// POP3D configures pop3d.
type POP3D struct {
	// Listen are plain listeners offering STLS. Default: ["0.0.0.0:110"].
	Listen []string `toml:"listen"`
	// TLSListen are implicit-TLS listeners. Default: ["0.0.0.0:995"].
	TLSListen []string `toml:"tls_listen"`
	// IdleTimeout closes an idle session (RFC 1939 3: at least 10 minutes).
	// Default: "10m".
	IdleTimeout Duration `toml:"idle_timeout"`
	// MaxConnections is the most POP3 sessions at once. Default: 1000.
	MaxConnections int `toml:"max_connections"`
	// MaxConnectionsPerIP is the most POP3 connections from one client
	// address, as imapd.max_connections_per_ip. Default: 100.
	MaxConnectionsPerIP int `toml:"max_connections_per_ip"`
	// MaxAuthFailures is how many failed logins (USER/PASS or AUTH) one
	// connection may make before it is closed. Default: 3.
	MaxAuthFailures int `toml:"max_auth_failures"`
	// MaxErrors is how many bad commands (unknown, out of state, bad
	// arguments, too long) a session may send before it is closed.
	// Default: 10.
	MaxErrors int `toml:"max_errors"`
	// MarkSeen sets the IMAP \Seen flag on a message retrieved with RETR.
	// Off by default, so that POP3 downloads leave the IMAP state of a
	// mailbox as it was. Default: false.
	MarkSeen bool `toml:"mark_seen"`
	// Metrics is the "host:port" of this daemon's Prometheus endpoint
	// (GET /metrics, text format); "" turns it off. It is plain HTTP
	// without authentication, so keep it on loopback (e.g.
	// "127.0.0.1:9328") or behind a firewall. Default: "" (off).
	Metrics string `toml:"metrics"`
}

// Default returns the configuration used for every key the file leaves out.
func Default() Config {
	host, _ := os.Hostname()
	return Config{
		Hostname:   host,
		Users:      "/etc/tern/users",
		Aliases:    "/etc/tern/aliases",
		Maildir:    "/var/vmail/%d/%n/Maildir",
		StateDir:   "/var/spool/tern",
		RuntimeDir: defaultRuntimeDir,
		Log:        Log{Level: "info", Format: "text"},
		TLS: TLS{
			Cert: "/etc/tern/tls/fullchain.pem",
			Key:  "/etc/tern/tls/privkey.pem",
			ACME: defaultACME(),
		},
		SMTPD: SMTPD{
			MX:             []string{"0.0.0.0:25"},
			Submission:     []string{"0.0.0.0:587"},
			Submissions:    []string{"0.0.0.0:465"},
			LMTP:           "unix:" + defaultRuntimeDir + "/lmtp.sock",
			Transport:      map[string]string{},
			MaxMessageSize: 50 << 20,
			MemoryBuffer:   256 << 10,
			MaxRecipients:  100,
			MaxLineLength:  4096,
			MaxErrors:      10,
			MaxConnections: 500,
			ReadTimeout:    Duration(5 * time.Minute),
			WriteTimeout:   Duration(time.Minute),
			MinDataRate:    500,

			MaxConnectionsPerIP:    20,
			MaxJunkCommands:        100,
			MaxReceivedHeaders:     100,
			QueueLifetime:          Duration(120 * time.Hour),
			DelayWarning:           Duration(4 * time.Hour),
			RetryMin:               Duration(30 * time.Minute),
			RetryMax:               Duration(4 * time.Hour),
			LocalRetry:             Duration(time.Minute),
			DestinationConcurrency: 5,
			SubmissionRate:         Rate{N: 1000, Per: time.Hour},
			MaxDeliveries:          20,
			ConnectTimeout:         Duration(30 * time.Second),
			LMTPIdleConnections:    16,
			LMTPIdleTimeout:        Duration(30 * time.Second),
			LocalSubmit:            "unix:" + defaultRuntimeDir + "/submit.sock",
			MilterDefaultAction:    "tempfail",
			MilterConnectTimeout:   Duration(30 * time.Second),
			MilterTimeout:          Duration(2 * time.Minute),
			InboundAuth:            true,
			DMARCReject:            true,
			SPFFail:                "mark",
			RemotePort:             25,
			MTASTS:                 true,
			MTASTSPort:             443,
			TLSReports:             true,
			MaxHeaderSize:          1 << 20,
		},
		DKIM: DKIM{
			Selector: "tern",
			Key:      "/etc/tern/dkim/%d.key",
			// RFC 6376 5.4.1's recommended list.
			Headers: []string{"From", "Reply-To", "Subject", "Date", "To", "Cc",
				"Resent-Date", "Resent-From", "Resent-To", "Resent-Cc",
				"In-Reply-To", "References", "List-Id", "List-Help",
				"List-Unsubscribe", "List-Subscribe", "List-Post", "List-Owner",
				"List-Archive", "Message-ID", "MIME-Version", "Content-Type",
				"Content-Transfer-Encoding"},
			MaxVerifications: 5,
		},
		DNS: DNS{Timeout: Duration(10 * time.Second)},

		Login:   defaultLogin(),
		Storage: defaultStorage(),

		ManageSieve: defaultManageSieve(),
		WebD:        defaultWebD(),
		Cluster:     defaultCluster(),
		LMTPD: LMTPD{
			Listen:         []string{"unix:" + defaultRuntimeDir + "/lmtp.sock"},
			Sieve:          "/var/vmail/%d/%n/sieve/active.sieve",
			MaxMessageSize: 50 << 20,
			MemoryBuffer:   256 << 10,
			MaxRecipients:  1000,
			MaxLineLength:  4096,
			MaxErrors:      10,
			ReadTimeout:    Duration(5 * time.Minute),
			WriteTimeout:   Duration(time.Minute),
			SpamHeader:     "X-Spam",
			SpamValue:      "yes",
			SieveMaxSize:   1 << 20,
		},
		IMAPD: IMAPD{
			Listen:         []string{"0.0.0.0:143"},
			TLSListen:      []string{"0.0.0.0:993"},
			MaxLiteralSize: 50 << 20,
			IdleTimeout:    Duration(30 * time.Minute),
			MaxConnections: 10000,

			MaxConnectionsPerIP:   100,
			MaxConnectionsPerUser: 50,
			MaxLineLength:         16384,
			HandshakeTimeout:      Duration(30 * time.Second),
			MaxNesting:            32,
			MaxPipelined:          64,
			MaxSearchContexts:     8,
			NotifyMaxMailboxes:    1000,
			MaxAppendMessages:     1000,
			MaxAppendSize:         512 << 20,
			IdleRecheck:           Duration(time.Minute),
			MessageCacheSize:      64 << 20,
			PreviewMaxRead:        64 << 10,
			MetadataMaxSize:       64 << 10,
			MetadataMaxEntries:    100,
			MetadataMaxTotal:      1 << 20,
			Compress:              true,
		},
		POP3D: POP3D{
			Listen:              []string{"0.0.0.0:110"},
			TLSListen:           []string{"0.0.0.0:995"},
			IdleTimeout:         Duration(10 * time.Minute),
			MaxConnections:      1000,
			MaxConnectionsPerIP: 100,
			MaxAuthFailures:     3,
			MaxErrors:           10,
		},
	}
}

// Error is one problem in a configuration file.
type Error struct {
	File string
	Line int // 0 when the problem is not tied to a line
	Msg  string
}

func (e Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// Errors is every problem Load found, in file order.
type Errors []Error

func (es Errors) Error() string {
	s := make([]string, len(es))
	for i, e := range es {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// Load reads and checks the file at path. On failure the error is an Errors
// listing every problem found.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, data)
}

// Parse is Load for a file already in memory; name is used in messages.
func Parse(name string, data []byte) (*Config, error) {
	cfg := Default()
	md, err := toml.Decode(string(data), &cfg)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, Errors{{File: name, Line: pe.Position.Line, Msg: pe.Message}}
		}
		return nil, Errors{{File: name, Msg: err.Error()}}
	}
	cfg.runtimeDefaults(md)
	var errs Errors
	lines := strings.Split(string(data), "\n")
	for _, k := range md.Undecoded() {
		errs = append(errs, Error{File: name, Line: keyLine(lines, k),
			Msg: fmt.Sprintf("unknown key %q", k.String())})
	}
	for _, p := range cfg.validate() {
		p.File = name
		p.Line = keyLine(lines, toml.Key(strings.Split(p.key, ".")))
		errs = append(errs, p.Error)
	}
	sort.SliceStable(errs, func(i, j int) bool { return errs[i].Line < errs[j].Line })
	if len(errs) > 0 {
		return nil, errs
	}
	cfg.normalize()
	return &cfg, nil
}

// defaultRuntimeDir is runtime_dir when the file does not set it.
const defaultRuntimeDir = "/run/tern"

// runtimeDefaults gives the socket keys the file leaves out their place
// in runtime_dir; Default() has them in defaultRuntimeDir already.
func (c *Config) runtimeDefaults(md toml.MetaData) {
	lmtp := "unix:" + filepath.Join(c.RuntimeDir, "lmtp.sock")
	if !md.IsDefined("smtpd", "lmtp") {
		c.SMTPD.LMTP = lmtp
	}
	if !md.IsDefined("lmtpd", "listen") {
		c.LMTPD.Listen = []string{lmtp}
	}
	if !md.IsDefined("smtpd", "local_submit") {
		c.SMTPD.LocalSubmit = "unix:" + filepath.Join(c.RuntimeDir, "submit.sock")
	}
}

// problem is a validation failure tied to a dotted key.
type problem struct {
	Error
	key string
}

func (c *Config) validate() []problem {
	var ps []problem
	bad := func(key, format string, args ...any) {
		ps = append(ps, problem{Error: Error{Msg: key + ": " + fmt.Sprintf(format, args...)}, key: key})
	}
	if c.Hostname == "" {
		bad("hostname", "must not be empty")
	}
	if len(c.Domains) == 0 {
		bad("domains", "at least one local domain is required")
	}
	for _, d := range c.Domains {
		if d == "" || strings.ContainsAny(d, " @/") {
			bad("domains", "%q is not a domain name", d)
		}
	}
	if c.Maildir == "" || !strings.ContainsAny(c.Maildir, "%") {
		bad("maildir", "the template must contain %%n or %%u, got %q", c.Maildir)
	}
	for _, s := range []struct{ key, val string }{
		{"users", c.Users}, {"state_dir", c.StateDir}, {"runtime_dir", c.RuntimeDir},
	} {
		if s.val == "" {
			bad(s.key, "must not be empty")
		}
	}
	for _, p := range checkIdentity(c.User, c.Group) {
		bad(p.key, "%s", p.msg)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "must be debug, info, warn or error, got %q", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format", "must be text or json, got %q", c.Log.Format)
	}
	addrs := func(key string, list []string) {
		for _, a := range list {
			if err := CheckAddr(a); err != nil {
				bad(key, "%v", err)
			}
		}
	}
	addrs("smtpd.mx", c.SMTPD.MX)
	addrs("smtpd.submission", c.SMTPD.Submission)
	addrs("smtpd.submissions", c.SMTPD.Submissions)
	addrs("smtpd.lmtp", []string{c.SMTPD.LMTP})
	if c.SMTPD.LocalSubmit != "" {
		// Only a unix socket tells smtpd who the peer is (SO_PEERCRED).
		if p, ok := strings.CutPrefix(c.SMTPD.LocalSubmit, "unix:"); !ok || p == "" {
			bad("smtpd.local_submit", "want unix:/path (peer credentials need a unix socket), got %q", c.SMTPD.LocalSubmit)
		}
	}
	for _, u := range c.SMTPD.TrustedUsers {
		if u == "" || strings.ContainsAny(u, " \t:\n") {
			bad("smtpd.trusted_users", "%q is not a user name or uid", u)
		}
	}
	addrs("lmtpd.listen", c.LMTPD.Listen)
	addrs("imapd.listen", c.IMAPD.Listen)
	addrs("imapd.tls_listen", c.IMAPD.TLSListen)
	addrs("pop3d.listen", c.POP3D.Listen)
	addrs("pop3d.tls_listen", c.POP3D.TLSListen)
	if c.SMTPD.RelayHost != "" {
		if _, _, err := net.SplitHostPort(c.SMTPD.RelayHost); err != nil {
			bad("smtpd.relay_host", "want host:port: %v", err)
		}
	}
	for dom, hop := range c.SMTPD.Transport {
		if _, _, err := net.SplitHostPort(hop); err != nil {
			bad("smtpd.transport", "%s: want host:port: %v", dom, err)
		}
	}
	for _, l := range c.LMTPD.Listen {
		if strings.HasSuffix(l, ":25") {
			bad("lmtpd.listen", "LMTP must not listen on port 25 (RFC 2033 5)")
		}
	}
	positive := func(key string, v int64) {
		if v <= 0 {
			bad(key, "must be greater than zero")
		}
	}
	positive("smtpd.max_message_size", int64(c.SMTPD.MaxMessageSize))
	if c.SMTPD.MemoryBuffer < 0 {
		bad("smtpd.memory_buffer", "must not be negative")
	}
	positive("smtpd.max_recipients", int64(c.SMTPD.MaxRecipients))
	if c.SMTPD.MinDataRate < 0 {
		bad("smtpd.min_data_rate", "must not be negative")
	}
	positive("smtpd.max_errors", int64(c.SMTPD.MaxErrors))
	positive("smtpd.max_junk_commands", int64(c.SMTPD.MaxJunkCommands))
	positive("smtpd.max_connections", int64(c.SMTPD.MaxConnections))
	positive("smtpd.read_timeout", int64(c.SMTPD.ReadTimeout))
	positive("smtpd.write_timeout", int64(c.SMTPD.WriteTimeout))
	positive("smtpd.max_connections_per_ip", int64(c.SMTPD.MaxConnectionsPerIP))
	positive("smtpd.max_received_headers", int64(c.SMTPD.MaxReceivedHeaders))
	positive("smtpd.queue_lifetime", int64(c.SMTPD.QueueLifetime))
	positive("smtpd.retry_min", int64(c.SMTPD.RetryMin))
	if c.SMTPD.DelayWarning < 0 {
		bad("smtpd.delay_warning", "must not be negative")
	}
	positive("smtpd.local_retry", int64(c.SMTPD.LocalRetry))
	positive("smtpd.destination_concurrency", int64(c.SMTPD.DestinationConcurrency))
	positive("smtpd.max_deliveries", int64(c.SMTPD.MaxDeliveries))
	if c.SMTPD.MTASTSPort <= 0 || c.SMTPD.MTASTSPort > 65535 {
		bad("smtpd.mta_sts_port", "want a TCP port")
	}
	positive("smtpd.connect_timeout", int64(c.SMTPD.ConnectTimeout))
	positive("smtpd.lmtp_idle_timeout", int64(c.SMTPD.LMTPIdleTimeout))
	if c.SMTPD.LMTPIdleConnections < 0 {
		bad("smtpd.lmtp_idle_connections", "must not be negative")
	}
	if c.SMTPD.RetryMax < c.SMTPD.RetryMin {
		bad("smtpd.retry_max", "must not be less than smtpd.retry_min")
	}
	if c.SMTPD.MaxLineLength < 1000 {
		bad("smtpd.max_line_length", "must be at least 1000 (RFC 5321 4.5.3.1.6)")
	}
	positive("lmtpd.max_message_size", int64(c.LMTPD.MaxMessageSize))
	if c.LMTPD.MemoryBuffer < 0 {
		bad("lmtpd.memory_buffer", "must not be negative")
	}
	positive("lmtpd.max_recipients", int64(c.LMTPD.MaxRecipients))
	positive("lmtpd.max_errors", int64(c.LMTPD.MaxErrors))
	positive("lmtpd.read_timeout", int64(c.LMTPD.ReadTimeout))
	positive("lmtpd.write_timeout", int64(c.LMTPD.WriteTimeout))
	positive("lmtpd.sieve_max_size", int64(c.LMTPD.SieveMaxSize))
	if c.LMTPD.MaxLineLength < 512 {
		bad("lmtpd.max_line_length", "must be at least 512 (RFC 5321 4.5.3.1.4)")
	}
	if strings.ContainsAny(c.LMTPD.SpamHeader, ": \t\r\n") {
		bad("lmtpd.spam_header", "%q is not a header field name", c.LMTPD.SpamHeader)
	}
	if c.LMTPD.Quota < 0 {
		bad("lmtpd.quota", "must not be negative")
	}
	positive("imapd.max_literal_size", int64(c.IMAPD.MaxLiteralSize))
	if c.IMAPD.IdleTimeout.D() < 30*time.Minute {
		bad("imapd.idle_timeout", "must be at least 30m (RFC 9051 5.4)")
	}
	positive("imapd.max_connections", int64(c.IMAPD.MaxConnections))
	positive("imapd.max_connections_per_ip", int64(c.IMAPD.MaxConnectionsPerIP))
	positive("imapd.max_connections_per_user", int64(c.IMAPD.MaxConnectionsPerUser))
	positive("imapd.handshake_timeout", int64(c.IMAPD.HandshakeTimeout))
	positive("imapd.max_nesting", int64(c.IMAPD.MaxNesting))
	positive("imapd.max_pipelined", int64(c.IMAPD.MaxPipelined))
	positive("imapd.max_search_contexts", int64(c.IMAPD.MaxSearchContexts))
	positive("imapd.notify_max_mailboxes", int64(c.IMAPD.NotifyMaxMailboxes))
	positive("imapd.max_append_messages", int64(c.IMAPD.MaxAppendMessages))
	positive("imapd.max_append_size", int64(c.IMAPD.MaxAppendSize))
	positive("imapd.idle_recheck", int64(c.IMAPD.IdleRecheck))
	if c.IMAPD.MessageCacheSize < 0 {
		bad("imapd.message_cache_size", "must not be negative")
	}
	positive("imapd.preview_max_read", int64(c.IMAPD.PreviewMaxRead))
	positive("imapd.metadata_max_size", int64(c.IMAPD.MetadataMaxSize))
	positive("imapd.metadata_max_entries", int64(c.IMAPD.MetadataMaxEntries))
	positive("imapd.metadata_max_total", int64(c.IMAPD.MetadataMaxTotal))
	if c.IMAPD.MaxLineLength < 8192 {
		bad("imapd.max_line_length", "must be at least 8192 (RFC 7162 4)")
	}
	if c.POP3D.IdleTimeout.D() < 10*time.Minute {
		bad("pop3d.idle_timeout", "must be at least 10m (RFC 1939 3)")
	}
	positive("pop3d.max_connections", int64(c.POP3D.MaxConnections))
	positive("pop3d.max_connections_per_ip", int64(c.POP3D.MaxConnectionsPerIP))
	positive("pop3d.max_auth_failures", int64(c.POP3D.MaxAuthFailures))
	positive("pop3d.max_errors", int64(c.POP3D.MaxErrors))
	for _, p := range c.validateFilters() {
		bad(p.key, "%s", p.msg)
	}
	for _, p := range c.validateHardening() {
		bad(p.key, "%s", p.msg)
	}
	for _, p := range c.validateMetrics() {
		bad(p.key, "%s", p.msg)
	}
	for _, p := range c.validateManageSieve() {
		bad(p.key, "%s", p.msg)
	}
	for _, p := range c.validateWebD() {
		bad(p.key, "%s", p.msg)
	}
	for _, p := range c.validateACME() {
		bad(p.key, "%s", p.msg)
	}
	for _, p := range c.validateCluster() {
		bad(p.key, "%s", p.msg)
	}
	return ps
}

// normalize lower-cases domains so that lookups can compare directly.
func (c *Config) normalize() {
	for i, d := range c.Domains {
		c.Domains[i] = strings.ToLower(strings.TrimSuffix(d, "."))
	}
	t := make(map[string]string, len(c.SMTPD.Transport))
	for d, hop := range c.SMTPD.Transport {
		t[strings.ToLower(d)] = hop
	}
	c.SMTPD.Transport = t
	c.normalizeACME()
}

// IsLocalDomain reports whether domain is one of Domains (case-insensitive).
func (c *Config) IsLocalDomain(domain string) bool {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	for _, d := range c.Domains {
		if d == domain {
			return true
		}
	}
	return false
}

// CheckAddr validates a listen address: "host:port" or "unix:/path".
func CheckAddr(a string) error {
	if p, ok := strings.CutPrefix(a, "unix:"); ok {
		if p == "" {
			return fmt.Errorf("%q: empty socket path", a)
		}
		return nil
	}
	_, port, err := net.SplitHostPort(a)
	if err != nil {
		return fmt.Errorf("%q: want host:port or unix:/path", a)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q: bad port", a)
	}
	return nil
}

// keyLine finds the line that sets key, for messages. TOML's decoder keeps
// key positions to itself, so this scans for the table header and then the
// key's last component.
func keyLine(lines []string, key toml.Key) int {
	if len(key) == 0 {
		return 0
	}
	table := strings.Join(key[:len(key)-1], ".")
	last := key[len(key)-1]
	inTable := table == ""
	for i, l := range lines {
		t := strings.TrimSpace(l)
		if strings.HasPrefix(t, "[") {
			name := strings.Trim(t, "[] ")
			if j := strings.Index(t, "]"); j >= 0 {
				name = strings.Trim(t[:j], "[ ")
			}
			inTable = name == table
			continue
		}
		if !inTable {
			continue
		}
		k, _, ok := strings.Cut(t, "=")
		if ok && strings.Trim(strings.TrimSpace(k), `"`) == last {
			return i + 1
		}
	}
	// A key inside an inline table, or a table that is itself unknown.
	for i, l := range lines {
		if strings.Contains(l, last) {
			return i + 1
		}
	}
	return 0
}
