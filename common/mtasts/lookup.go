package mtasts

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"
)

// Source finds the policy in force for a domain, as RFC 8461 5.1
// describes: the TXT record tells whether the cached policy is current;
// a new one is fetched when the record's id changes or nothing usable is
// cached; a cached, unexpired policy stays in force when the record is
// gone or the fetch fails.
type Source struct {
	Resolver *net.Resolver
	Fetcher  *Fetcher
	Cache    *Cache
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Result is what Lookup found.
type Result struct {
	// Policy is the policy in force, nil when there is none (or its mode
	// is none, which Lookup turns into nil too).
	Policy *Policy
	// ID is the record's id of the policy in force.
	ID string
	// FetchErr is why a policy could not be fetched, when that left the
	// domain without one (RFC 8460 4.3 "sts-policy-fetch-error" and
	// "sts-policy-invalid").
	FetchErr error
	// FromCache tells that the cached copy was used.
	FromCache bool
}

// Lookup returns the policy in force for domain. Its error is a cache
// failure; a lookup or fetch failure leaves the domain without a policy
// (Result.FetchErr), as RFC 8461 5 asks, unless a cached one is usable.
func (s *Source) Lookup(ctx context.Context, domain string) (Result, error) {
	now := time.Now()
	if s.Now != nil {
		now = s.Now()
	}
	cached, cerr := s.Cache.Get(domain)
	if cached != nil && !now.Before(cached.Expires()) {
		cached = nil // RFC 8461 3.2: past max_age, a policy is gone
	}
	use := func(e *Entry, fromCache bool) Result {
		if e.Policy.Mode == None {
			return Result{ID: e.ID, FromCache: fromCache}
		}
		return Result{Policy: e.Policy, ID: e.ID, FromCache: fromCache}
	}
	rec, err := LookupRecord(ctx, s.Resolver, domain)
	if err != nil {
		if cached != nil {
			return use(cached, true), nil
		}
		if errors.Is(err, ErrNoRecord) {
			return Result{}, cerr
		}
		return Result{FetchErr: err}, cerr
	}
	if cached != nil && cached.ID == rec.ID {
		return use(cached, true), nil
	}
	p, err := s.Fetcher.Fetch(ctx, domain)
	if err != nil {
		if cached != nil {
			return use(cached, true), nil
		}
		return Result{FetchErr: err}, cerr
	}
	e := &Entry{Policy: p, ID: rec.ID, Fetched: now}
	if err := s.Cache.Put(domain, e); err != nil {
		return use(e, false), fmt.Errorf("mtasts: store policy of %s: %w", domain, err)
	}
	return use(e, false), nil
}
