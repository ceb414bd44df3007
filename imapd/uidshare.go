package main

import (
	"sync"

	"tern/common/maildir"
)

// uidShare lets the sessions that select a folder at the same snapshot
// share one copy of its UID list (a view's sequence number map) until one
// of them has to change it: thousands of clients idling on the same
// mailboxes then hold one list a mailbox, not one each.
type uidShare struct {
	mu sync.Mutex
	m  map[string]*sharedUIDs // by folder directory
}

type sharedUIDs struct {
	snap *maildir.Snapshot
	uids []uint32
	refs int
}

func newUIDShare() *uidShare { return &uidShare{m: make(map[string]*sharedUIDs)} }

// acquire returns the UID list of snap, which the caller must not modify
// (its capacity is its length, so an append copies it), and the function
// that gives it back.
func (u *uidShare) acquire(dir string, snap *maildir.Snapshot) ([]uint32, func()) {
	u.mu.Lock()
	defer u.mu.Unlock()
	e, ok := u.m[dir]
	if !ok || e.snap != snap {
		uids := make([]uint32, len(snap.Messages))
		for i := range snap.Messages {
			uids[i] = snap.Messages[i].UID
		}
		// The newest snapshot takes the slot; sessions still holding the
		// old list keep it until they release it.
		e = &sharedUIDs{snap: snap, uids: uids}
		u.m[dir] = e
	}
	e.refs++
	var once sync.Once
	release := func() {
		once.Do(func() {
			u.mu.Lock()
			defer u.mu.Unlock()
			e.refs--
			if e.refs == 0 && u.m[dir] == e {
				delete(u.m, dir)
			}
		})
	}
	return e.uids[:len(e.uids):len(e.uids)], release
}
