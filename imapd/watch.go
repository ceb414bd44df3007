package main

import (
	"context"
	"log/slog"
	"sync"

	"tern/common/maildir"
)

// watchHub shares one store watch per folder among every session of this
// process that is waiting for changes in it. Ten thousand sessions idling on
// the same INBOX then cost one inotify watch, not ten thousand, and each
// change wakes each session once.
type watchHub struct {
	log *slog.Logger

	mu      sync.Mutex
	folders map[string]*folderWatch // by folder directory
	users   map[string]userWatch    // NOTIFY sessions by user (notify.go)
}

// folderWatch is the shared watch of one folder. Each subscriber is a
// wake function that must not block (idle.go's starts a goroutine).
type folderWatch struct {
	cancel context.CancelFunc
	subs   map[*func()]struct{}
}

func newWatchHub(log *slog.Logger) *watchHub {
	return &watchHub{log: log, folders: make(map[string]*folderWatch)}
}

// subscribe has wake called whenever folder may have changed, until the
// returned function ends the subscription.
func (h *watchHub) subscribe(f *maildir.Folder, wake func()) (func(), error) {
	key := f.Dir()
	ch := &wake

	h.mu.Lock()
	defer h.mu.Unlock()
	fw, ok := h.folders[key]
	if !ok {
		ctx, cancel := context.WithCancel(context.Background())
		events, err := f.Watch(ctx)
		if err != nil {
			cancel()
			return nil, err
		}
		fw = &folderWatch{cancel: cancel, subs: make(map[*func()]struct{})}
		h.folders[key] = fw
		go h.fanOut(key, fw, events)
	}
	fw.subs[ch] = struct{}{}

	unsubscribe := func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		delete(fw.subs, ch)
		if len(fw.subs) == 0 && h.folders[key] == fw {
			delete(h.folders, key)
			fw.cancel()
		}
	}
	return unsubscribe, nil
}

// fanOut forwards each change signal of one folder to its subscribers,
// without ever blocking on a slow one: a subscriber with a signal pending
// needs no second one (the wake functions coalesce).
func (h *watchHub) fanOut(key string, fw *folderWatch, events <-chan struct{}) {
	for range events {
		h.mu.Lock()
		for wake := range fw.subs {
			(*wake)()
		}
		h.mu.Unlock()
	}
	// The folder is gone or the store gave up watching it; the next
	// subscriber starts a fresh watch.
	h.mu.Lock()
	if h.folders[key] == fw {
		delete(h.folders, key)
	}
	h.mu.Unlock()
	h.log.Debug("folder watch ended", "folder", key)
}

// notify wakes every subscriber of the folder at dir, so that a change made
// by one session of this process reaches the others at once rather than at
// the next signal of the store.
func (h *watchHub) notify(dir string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	fw, ok := h.folders[dir]
	if !ok {
		return
	}
	for wake := range fw.subs {
		(*wake)()
	}
}

// mailboxEvent is a change to a user's list of mailboxes or subscriptions
// made by a session of this process (RFC 5465 5.4, 5.5). Other processes'
// changes are found by comparing lists (notify.go); a rename is known as
// one only from here.
type mailboxEvent struct {
	from     *session // the session that made it
	old, new string   // a RENAME's names; both empty for other changes
	// metadata marks a SETMETADATA (RFC 5465 5.6, 5.7) rather than a
	// list change.
	metadata bool
}

// userWatch is the set of NOTIFY sessions of one user.
type userWatch map[*func(mailboxEvent)]struct{}

// subscribeUser has fn called (under the hub's lock; it must not block)
// after every mailbox list or subscription change a session of this
// process makes for user, until the returned function is called.
func (h *watchHub) subscribeUser(user string, fn func(mailboxEvent)) func() {
	key := &fn
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.users == nil {
		h.users = make(map[string]userWatch)
	}
	uw := h.users[user]
	if uw == nil {
		uw = make(userWatch)
		h.users[user] = uw
	}
	uw[key] = struct{}{}
	return func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		delete(uw, key)
		if len(uw) == 0 && h.users[user] != nil && len(h.users[user]) == 0 {
			delete(h.users, user)
		}
	}
}

// userChanged tells user's NOTIFY sessions of a mailbox list or
// subscription change.
func (h *watchHub) userChanged(user string, ev mailboxEvent) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for fn := range h.users[user] {
		(*fn)(ev)
	}
}
