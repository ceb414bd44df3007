package main

import "sync"

// connLimits counts open connections per client IP and authenticated
// sessions per user, so that one address or one account cannot take all
// of the daemon's connections.
type connLimits struct {
	perIP, perUser int

	mu    sync.Mutex
	ips   map[string]int
	users map[string]int
}

func newConnLimits(perIP, perUser int) *connLimits {
	return &connLimits{perIP: perIP, perUser: perUser, ips: make(map[string]int), users: make(map[string]int)}
}

func acquire(mu *sync.Mutex, m map[string]int, key string, max int) (func(), bool) {
	mu.Lock()
	defer mu.Unlock()
	if m[key] >= max {
		return nil, false
	}
	m[key]++
	var once sync.Once
	return func() {
		once.Do(func() {
			mu.Lock()
			defer mu.Unlock()
			if m[key]--; m[key] <= 0 {
				delete(m, key)
			}
		})
	}, true
}

// acquireIP takes a connection slot of ip; release gives it back.
func (l *connLimits) acquireIP(ip string) (release func(), ok bool) {
	return acquire(&l.mu, l.ips, ip, l.perIP)
}

// acquireUser takes a session slot of a user; release gives it back.
func (l *connLimits) acquireUser(user string) (release func(), ok bool) {
	return acquire(&l.mu, l.users, user, l.perUser)
}
