package main

import (
	"math"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"tern/common/config"
	"tern/common/maillog"
)

// replyRateLimited: RFC 5321 4.2.2 451 (the client keeps the recipient
// and tries later), RFC 3463 X.7.1 (not authorized now).
var replyRateLimited = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 1},
	Message: "Too many recipients submitted, try again later"}

// rateLimiter is smtpd.submission_rate: a token bucket per key (an
// authenticated user, a sender address) holding up to N tokens that
// refill evenly over the period. Full buckets are dropped, so its memory
// is bounded by the keys active within one period.
type rateLimiter struct {
	rate config.Rate
	mu   sync.Mutex
	b    map[string]*bucket
	last time.Time // of the last sweep of full buckets
}

type bucket struct {
	tokens float64
	at     time.Time
}

func newRateLimiter(r config.Rate) *rateLimiter {
	return &rateLimiter{rate: r, b: map[string]*bucket{}}
}

// take takes one token from every key's bucket, or none when one of them
// is empty.
func (l *rateLimiter) take(now time.Time, keys ...string) bool {
	if l == nil || l.rate.N <= 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	n := float64(l.rate.N)
	perSec := n / l.rate.Per.Seconds()
	level := func(k string) *bucket {
		b := l.b[k]
		if b == nil {
			b = &bucket{tokens: n, at: now}
			l.b[k] = b
		}
		b.tokens = math.Min(n, b.tokens+now.Sub(b.at).Seconds()*perSec)
		b.at = now
		return b
	}
	for _, k := range keys {
		if level(k).tokens < 1 {
			return false
		}
	}
	for _, k := range keys {
		l.b[k].tokens--
	}
	if now.Sub(l.last) > l.rate.Per {
		l.last = now
		for k, b := range l.b {
			if b.tokens+now.Sub(b.at).Seconds()*perSec >= n {
				delete(l.b, k)
			}
		}
	}
	return true
}

// checkRate charges one recipient to the session's user and sender.
func (s *session) checkRate() error {
	keys := []string{"user " + strings.ToLower(s.authUser)}
	if s.from != "" {
		keys = append(keys, "sender "+strings.ToLower(s.from))
	}
	if !s.srv.submitRate.take(time.Now(), keys...) {
		maillog.Rejected(s.log, maillog.Rejection{Stage: "rcpt", From: s.from, Code: replyRateLimited.Code,
			Reason: "submission rate of " + s.authUser + " exceeded"})
		return replyRateLimited
	}
	return nil
}
