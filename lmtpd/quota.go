package main

import (
	"fmt"
	"strings"

	"tern/common/config"
	"tern/common/maildir"
)

// quotaField is the users-file extra field with a per-user quota, in
// Dovecot's syntax so that the same users file serves both:
//
//	alice@example.test:{...}:::::: userdb_quota_rule=*:storage=1G
//
// Only the "*" rule and its storage (or bytes) limit are used; "0" means no
// limit. The value takes an optional K, M, G or T suffix (powers of 1024)
// and a trailing B; a bare number is bytes.
const quotaField = "quota_rule"

// quotaFor returns the storage quota of a user in bytes, 0 for none: the
// user's quota_rule when it has a usable one, else lmtpd.quota.
func (a *agent) quotaFor(user string) int64 {
	def := int64(a.cfg().LMTPD.Quota)
	u, ok := a.users.Lookup(user)
	if !ok {
		return def
	}
	rule, ok := u.Field(quotaField)
	if !ok {
		return def
	}
	q, err := parseQuotaRule(rule)
	if err != nil {
		a.log.Warn("ignoring the quota rule of a user", "user", user, "rule", rule, "err", err)
		return def
	}
	return q
}

// parseQuotaRule parses Dovecot's "*:storage=1G" (several rules may be
// separated by spaces or further ':'-separated limits, "*:storage=1G:messages=1000").
func parseQuotaRule(rule string) (int64, error) {
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

// checkQuota refuses a message that would take the user over quota.
func (a *agent) checkQuota(user string, mb *maildir.Mailbox, size int64) error {
	q := a.quotaFor(user)
	if q <= 0 {
		return nil
	}
	used, _, err := mb.Usage()
	if err != nil {
		return fmt.Errorf("quota of %s: %w", user, err)
	}
	if used+size > q {
		return fmt.Errorf("%w: %s uses %d of %d bytes, message is %d", errOverQuota, user, used, q, size)
	}
	return nil
}
