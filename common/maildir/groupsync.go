package maildir

import (
	"sync"
)

// Group commit of directory fsyncs. A delivery is durable once its file is
// fsynced, linked into new/ (or cur/), and the directory fsynced after the
// link (qmail's maildir(5), tern-maildir(5)). Deliveries into one directory
// that finish together need not pay one directory fsync each: an fsync of
// the directory that starts after a delivery's link makes that link
// durable, whoever calls it. So syncDirShared waits for the first fsync of
// dir that starts after it is called, and starts one itself when none is
// running; callers that arrive while one runs wait for the next, which one
// of them starts when it ends, and all of them share it. No caller returns
// before a directory fsync that began after its call has completed, so the
// rule "250 only after the file and its directory entry are durable"
// holds as before; under load, N deliveries cost far fewer than N
// directory fsyncs (journal commits).
//
// This is per process: lmtpd's sessions share their fsyncs; another
// process's deliveries pay their own, as before.

type dirSyncer struct {
	running  bool   // an fsync of the directory is in progress
	started  uint64 // generation of the last fsync started
	finished uint64 // generation of the last fsync finished
	waiters  int
	done     *sync.Cond
	// errs holds the errors of failed generations still awaited: an
	// fsync error is reported to every caller that relied on that fsync,
	// never masked by a later success.
	errs map[uint64]error
}

var dirSyncers = struct {
	mu sync.Mutex
	m  map[string]*dirSyncer
}{m: make(map[string]*dirSyncer)}

// syncDirShared makes every entry created in dir before the call durable,
// sharing one fsync among concurrent callers (see above).
func syncDirShared(dir string) error {
	mu := &dirSyncers.mu
	mu.Lock()
	ds := dirSyncers.m[dir]
	if ds == nil {
		ds = &dirSyncer{done: sync.NewCond(mu), errs: map[uint64]error{}}
		dirSyncers.m[dir] = ds
	}
	// The fsync this call needs: the next to start. One running now may
	// have started before the caller's link.
	need := ds.started + 1
	ds.waiters++
	for ds.finished < need {
		if !ds.running {
			// Lead: start the next fsync, for everyone waiting.
			ds.running = true
			ds.started++
			gen := ds.started
			mu.Unlock()
			err := syncDir(dir)
			mu.Lock()
			ds.running = false
			ds.finished = gen
			if err != nil {
				ds.errs[gen] = err
			}
			ds.done.Broadcast()
			continue
		}
		ds.done.Wait()
	}
	err := ds.errs[need]
	ds.waiters--
	if ds.waiters == 0 {
		// Nobody waits any more: forget the errors and the directory, so
		// that the table does not grow with every folder ever written.
		if !ds.running {
			delete(dirSyncers.m, dir)
		}
		clear(ds.errs)
	}
	mu.Unlock()
	return err
}
