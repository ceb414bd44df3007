// Package reload is the SIGHUP hook. The files an admin edits while the
// daemons run (the users file, the aliases, the TLS certificate) are
// re-read by their owners when they change, checked at most once a
// second; SIGHUP asks for that check at once. Each owner registers its
// check here when it is opened, so every daemon gets the behaviour
// without wiring of its own.
package reload

import (
	"sync"
	"weak"
)

var (
	mu    sync.Mutex
	hooks []hook
)

type hook struct {
	alive func() bool
	run   func()
}

// Register adds fn(owner) to what Run calls. The hook holds owner weakly
// and lasts only as long as owner is reachable, so short-lived owners (in
// tests, say) do not pile up.
func Register[T any](owner *T, fn func(*T)) {
	wp := weak.Make(owner)
	h := hook{
		alive: func() bool { return wp.Value() != nil },
		run: func() {
			if o := wp.Value(); o != nil {
				fn(o)
			}
		},
	}
	mu.Lock()
	defer mu.Unlock()
	live := hooks[:0]
	for _, old := range hooks {
		if old.alive() {
			live = append(live, old)
		}
	}
	hooks = append(live, h)
}

// Run calls every registered hook, as SIGHUP does.
func Run() {
	mu.Lock()
	hs := append([]hook(nil), hooks...)
	mu.Unlock()
	for _, h := range hs {
		h.run()
	}
}
