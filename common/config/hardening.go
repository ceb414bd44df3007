package config

import (
	"fmt"
	"time"
)

// Login configures what smtpd, imapd and pop3d do against password
// guessing, and how long a client may take to log in. The per-address
// delay is shared by the three daemons through a table file under
// state_dir (common/authguard).
type Login struct {
	// MaxFailures is how many failed logins (SMTP AUTH, IMAP LOGIN and
	// AUTHENTICATE, POP3 USER/PASS and AUTH) one connection may make; the
	// last one is answered with the protocol's goodbye (SMTP 421 4.7.0,
	// IMAP BYE, POP3 -ERR) and the connection is closed. pop3d takes the
	// smaller of this and pop3d.max_auth_failures. Default: 3.
	MaxFailures int `toml:"max_failures"`
	// Delay is the wait imposed on a client address before its next login
	// is checked, after one failure; each further failure doubles it up
	// to MaxDelay (Dovecot's auth penalty). "0s" turns the delay off.
	// Default: "2s".
	Delay Duration `toml:"delay"`
	// MaxDelay caps the per-address delay. Default: "15s".
	MaxDelay Duration `toml:"max_delay"`
	// FailureWindow is how long an address's failures are remembered
	// after its last one; then its delay is gone. Default: "1h".
	FailureWindow Duration `toml:"failure_window"`
	// GoodIPLifetime: an account that logged in successfully from an
	// address within this time, and has not failed there since, gets no
	// delay at that address, so that a user's correct password works at
	// once while guesses are slowed. The exemption is the account's, not
	// the address's: other accounts from the same address are still
	// delayed. "0s" turns this off. Default: "24h".
	GoodIPLifetime Duration `toml:"good_ip_lifetime"`
	// TableSize is the number of addresses the shared delay table holds
	// (64 bytes each, in state_dir/authguard.table); when it is full the
	// oldest entries are reused, so a flood of addresses cannot fill the
	// disk. Default: 16384.
	TableSize int `toml:"table_size"`
	// Timeout bounds the TLS handshake and each wait for a command before
	// a client has logged in (SMTP: before AUTH on submission and before
	// MAIL on the MX listeners; IMAP and POP3: before login). After login
	// the daemons' own timeouts apply (RFC minimums: SMTP 5 minutes,
	// IMAP 30, POP3 10). Default: "60s".
	Timeout Duration `toml:"timeout"`
}

// Storage configures the free-space reserve of the file systems that hold
// the Maildirs and the queue.
type Storage struct {
	// MinFreeSpace is the free space (for unprivileged users, as statfs
	// reports it) below which new mail is refused for now: SMTP and LMTP
	// answer 452 4.3.1, IMAP APPEND answers NO. Checked before anything
	// is written, so nothing is left half-written; mail is taken again as
	// soon as space returns. "0" turns the check off. Default: "100M".
	MinFreeSpace Size `toml:"min_free_space"`
	// MinFreeInodes is the same reserve in free inodes (every message is a
	// file). 0 turns the check off. Default: 1000.
	MinFreeInodes int64 `toml:"min_free_inodes"`
	// Shared says whether the Maildir tree is on storage that other hosts
	// change too (NFS, GlusterFS, CephFS, SMB), where inotify sees only
	// this host's changes: "auto" decides per file system from its statfs
	// type (NFS, FUSE, CIFS/SMB, Ceph, 9p, AFS, GFS2, OCFS2, Lustre are
	// shared), true or false force it. Shared folders are watched by
	// polling their stats every shared_poll and every change-log record is
	// fsynced (tern-maildir(5), tern-cluster(7)). Default: "auto".
	Shared SharedStorage `toml:"shared"`
	// SharedPoll is how often a watched folder on shared storage (IMAP
	// IDLE) is checked for other hosts' changes. Default: "250ms".
	SharedPoll Duration `toml:"shared_poll"`
	// ExpungeHistory is how many expunged UIDs each folder remembers,
	// with the modification sequence of their expunge, for IMAP QRESYNC
	// (RFC 7162 3.2.5.2; tern-maildir(5)). Past it the oldest are
	// forgotten, and a client resynchronising from before them is told
	// that every UID it may know and the folder lacks is gone. About 4
	// bytes a UID in memory and a few in the index. Default: 50000.
	ExpungeHistory int `toml:"expunge_history"`
}

// SharedStorage is [storage] shared: "auto", "true" or "false", given as a
// TOML string or boolean.
type SharedStorage string

// UnmarshalTOML takes a boolean or one of the strings "auto", "true",
// "false".
func (s *SharedStorage) UnmarshalTOML(v any) error {
	switch v := v.(type) {
	case bool:
		*s = SharedStorage(fmt.Sprint(v))
		return nil
	case string:
		switch v {
		case "auto", "true", "false":
			*s = SharedStorage(v)
			return nil
		}
	}
	return fmt.Errorf("want \"auto\", true or false, got %v", v)
}

func defaultLogin() Login {
	return Login{
		MaxFailures:    3,
		Delay:          Duration(2 * time.Second),
		MaxDelay:       Duration(15 * time.Second),
		FailureWindow:  Duration(time.Hour),
		GoodIPLifetime: Duration(24 * time.Hour),
		TableSize:      16384,
		Timeout:        Duration(60 * time.Second),
	}
}

func defaultStorage() Storage {
	return Storage{MinFreeSpace: 100 << 20, MinFreeInodes: 1000, ExpungeHistory: 50000,
		Shared: "auto", SharedPoll: Duration(250 * time.Millisecond)}
}

// validateHardening checks the [login] and [storage] keys.
func (c *Config) validateHardening() []identityProblem {
	var ps []identityProblem
	bad := func(key, format string, args ...any) {
		ps = append(ps, identityProblem{key: key, msg: fmt.Sprintf(format, args...)})
	}
	l := c.Login
	if l.MaxFailures <= 0 {
		bad("login.max_failures", "must be greater than zero")
	}
	if l.Delay < 0 {
		bad("login.delay", "must not be negative")
	}
	if l.MaxDelay < l.Delay {
		bad("login.max_delay", "must not be less than login.delay")
	}
	if l.FailureWindow <= 0 {
		bad("login.failure_window", "must be greater than zero")
	}
	if l.GoodIPLifetime < 0 {
		bad("login.good_ip_lifetime", "must not be negative")
	}
	// The table must hold at least one probe run (common/authguard), and
	// stay small enough to scan under a lock.
	if l.TableSize < 64 || l.TableSize > 1<<20 {
		bad("login.table_size", "must be between 64 and 1048576, got %d", l.TableSize)
	}
	if l.Timeout <= 0 {
		bad("login.timeout", "must be greater than zero")
	}
	if c.Storage.MinFreeSpace < 0 {
		bad("storage.min_free_space", "must not be negative")
	}
	if c.Storage.MinFreeInodes < 0 {
		bad("storage.min_free_inodes", "must not be negative")
	}
	if h := c.Storage.ExpungeHistory; h < 1 || h > 1<<24 {
		bad("storage.expunge_history", "must be between 1 and 16777216, got %d", h)
	}
	// Below 10ms the stats of every watched folder would keep a network
	// file system busy; above 1s an IDLE client waits visibly for mail
	// delivered on another host.
	if p := c.Storage.SharedPoll.D(); p < 10*time.Millisecond || p > time.Second {
		bad("storage.shared_poll", "must be between 10ms and 1s, got %s", p)
	}
	return ps
}
