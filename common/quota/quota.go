// Package quota is the per-user storage quota: the one rule that lmtpd
// enforces when it delivers and that imapd reports (RFC 9208 GETQUOTA)
// and enforces at APPEND and COPY, so that what a client shows is what
// delivery refuses at.
//
// A user's limit is the quota_rule extra field of the users file, in
// Dovecot's syntax so that the same users file serves both:
//
//	alice@example.test:{...}:::::: userdb_quota_rule=*:storage=1G
//
// else lmtpd.quota. Usage is the sum of the sizes of the messages in
// every folder of the user's Maildir (maildir.Mailbox.Usage).
package quota

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"tern/common/auth"
	"tern/common/config"
	"tern/common/maildir"
)

// Field is the users-file extra field with a per-user quota. Only the "*"
// rule and its storage (or bytes) limit are used; "0" means no limit. The
// value takes an optional K, M, G or T suffix (powers of 1024) and a
// trailing B; a bare number is bytes.
const Field = "quota_rule"

// ErrOver is wrapped by Check's error when a message does not fit.
var ErrOver = errors.New("mailbox over quota")

// Limit returns the storage quota of a user in bytes, 0 for none: the
// user's quota_rule when it has a usable one, else def (lmtpd.quota).
func Limit(users *auth.DB, def int64, user string, log *slog.Logger) int64 {
	u, ok := users.Lookup(user)
	if !ok {
		return def
	}
	rule, ok := u.Field(Field)
	if !ok {
		return def
	}
	q, err := ParseRule(rule)
	if err != nil {
		log.Warn("ignoring the quota rule of a user", "user", user, "rule", rule, "err", err)
		return def
	}
	return q
}

// ParseRule parses Dovecot's "*:storage=1G" (further ':'-separated limits
// may follow, "*:storage=1G:messages=1000"; only storage is used).
func ParseRule(rule string) (int64, error) {
	mailbox, limits, ok := strings.Cut(strings.TrimSpace(rule), ":")
	if !ok || mailbox != "*" {
		return 0, fmt.Errorf("want *:storage=SIZE, got %q", rule)
	}
	for _, l := range strings.Split(limits, ":") {
		k, v, _ := strings.Cut(l, "=")
		switch strings.ToLower(k) {
		case "storage", "bytes":
			v = strings.TrimSuffix(strings.ToUpper(strings.TrimSpace(v)), "B")
			mult := int64(1)
			if strings.HasSuffix(v, "T") {
				v, mult = strings.TrimSuffix(v, "T")+"G", 1<<10
			}
			n, err := config.ParseSize(v)
			if err != nil {
				return 0, err
			}
			return int64(n) * mult, nil
		}
	}
	return 0, fmt.Errorf("no storage limit in %q", rule)
}

// Usage is a user's storage use and limit, in bytes.
type Usage struct {
	Used  int64
	Limit int64 // 0: no limit
}

// Get reads the usage of mb against limit.
func Get(mb *maildir.Mailbox, limit int64) (Usage, error) {
	used, _, err := mb.Usage()
	if err != nil {
		return Usage{}, fmt.Errorf("quota usage: %w", err)
	}
	return Usage{Used: used, Limit: limit}, nil
}

// Allows says whether size more bytes fit: a message that brings the
// usage to exactly the limit is accepted.
func (u Usage) Allows(size int64) bool {
	return u.Limit <= 0 || u.Used+size <= u.Limit
}

// Check refuses size more bytes in mb for user when they would go over
// limit; the error wraps ErrOver. No limit costs no look at the Maildir.
func Check(mb *maildir.Mailbox, user string, limit, size int64) error {
	if limit <= 0 {
		return nil
	}
	u, err := Get(mb, limit)
	if err != nil {
		return fmt.Errorf("quota of %s: %w", user, err)
	}
	if !u.Allows(size) {
		return fmt.Errorf("%w: %s uses %d of %d bytes, message is %d", ErrOver, user, u.Used, u.Limit, size)
	}
	return nil
}
