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
}

// folderWatch is the shared watch of one folder.
type folderWatch struct {
	cancel context.CancelFunc
	subs   map[chan struct{}]struct{}
}

func newWatchHub(log *slog.Logger) *watchHub {
	return &watchHub{log: log, folders: make(map[string]*folderWatch)}
}

// subscribe returns a channel that receives a (coalesced) signal whenever
// folder may have changed, and a function that ends the subscription.
func (h *watchHub) subscribe(f *maildir.Folder) (<-chan struct{}, func(), error) {
	key := f.Dir()
	ch := make(chan struct{}, 1)

	h.mu.Lock()
	defer h.mu.Unlock()
	fw, ok := h.folders[key]
	if !ok {
		ctx, cancel := context.WithCancel(context.Background())
		events, err := f.Watch(ctx)
		if err != nil {
			cancel()
			return nil, nil, err
		}
		fw = &folderWatch{cancel: cancel, subs: make(map[chan struct{}]struct{})}
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
	return ch, unsubscribe, nil
}

// fanOut forwards each change signal of one folder to its subscribers,
// without ever blocking on a slow one: a subscriber with a signal pending
// needs no second one.
func (h *watchHub) fanOut(key string, fw *folderWatch, events <-chan struct{}) {
	for range events {
		h.mu.Lock()
		for ch := range fw.subs {
			select {
			case ch <- struct{}{}:
			default:
			}
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
	for ch := range fw.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}
