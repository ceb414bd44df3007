package maildir

import (
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"time"
)

// Staged is a message written to the folder's tmp/ and fsynced, not yet
// part of the folder: nobody sees it until Publish moves it into cur/.
// IMAP's MULTIAPPEND (RFC 3502) stages every message of one command and
// publishes them together once the whole command has been read, so that a
// command cut short or refused halfway leaves nothing behind; Discard
// removes a staged message that will not be published.
type Staged struct {
	path  string
	key   string // base name with ,S= and ,W=
	flags []string
	mtime int64
	size  int64
	wire  int64
	done  bool
}

// Stage writes r into tmp/ (LF line ends, fsync; the file's mtime is the
// internal date unless date is zero) with the flags it will have.
func (f *Folder) Stage(r io.Reader, flags []string, date time.Time) (*Staged, error) {
	nf, err := normaliseFlags(flags)
	if err != nil {
		return nil, err
	}
	tmp, size, wire, err := tmpWrite(f.st.dir, r, date)
	if err != nil {
		return nil, err
	}
	fi, err := os.Lstat(tmp)
	if err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("stat %q: %w", tmp, err)
	}
	return &Staged{path: tmp, key: sizedKey(filepath.Base(tmp), size, wire), flags: nf,
		mtime: fi.ModTime().UnixNano(), size: size, wire: wire}, nil
}

// WireSize is the staged message's size with CRLF line ends (RFC822.SIZE).
func (m *Staged) WireSize() int64 { return m.wire }

// Size is the staged message's size on disk (the ,S= a quota counts).
func (m *Staged) Size() int64 { return m.size }

// Discard removes a staged message from tmp/; it is a no-op once the
// message was published.
func (m *Staged) Discard() {
	if !m.done {
		os.Remove(m.path)
		m.done = true
	}
}

// Publish moves staged messages into cur/ and gives them UIDs in order,
// under the index lock: every rename, then one fsync of cur/ and one
// durable line per message in the change log, written together (RFC 4315
// APPENDUID: the UIDs are known when the caller answers). If a rename
// fails, the messages already moved go back to tmp/ and none is published;
// either way the caller still Discards them all. A crash during Publish
// may leave some of the messages in cur/ (the caller has not answered):
// the next sync gives them UIDs like any file dropped into the folder.
func (f *Folder) Publish(msgs []*Staged) ([]uint32, error) {
	st := f.st
	var all []string
	for _, m := range msgs {
		if m.done {
			return nil, fmt.Errorf("publish into %q: message already published or discarded", st.dir)
		}
		all = append(all, m.flags...)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	release, err := st.lockFresh()
	if err != nil {
		return nil, err
	}
	defer release()
	kw, extra, err := st.letters(all)
	if err != nil {
		return nil, err
	}
	curDir := filepath.Join(st.dir, "cur")
	names := make([]string, len(msgs))
	var oc ownChange
	for i, m := range msgs {
		names[i] = m.key + buildInfo(m.flags, kw)
		oc.moveIn(subCur, names[i])
	}
	st.expect(oc)
	for i, m := range msgs {
		if err := renameNoReplace(m.path, filepath.Join(curDir, names[i])); err != nil {
			// Nothing was fsynced or logged yet: putting back what
			// moved keeps the promise that none is published.
			for j := i - 1; j >= 0; j-- {
				if os.Rename(filepath.Join(curDir, names[j]), msgs[j].path) != nil {
					msgs[j].done = true // in cur/ for good: the next sync finds it
				}
			}
			st.unexpect(oc)
			return nil, fmt.Errorf("append into %q: %w", curDir, err)
		}
	}
	for _, m := range msgs {
		m.done = true
	}
	x := st.idx
	if x.uidNext > math.MaxUint32-uint32(len(msgs)) {
		// UID space exhausted: the full sync renumbers (RFC 3501 2.3.1.1).
		st.dirty = true
		if err := syncDir(curDir); err != nil {
			return nil, err
		}
		return st.appendBySync(msgs)
	}
	// RFC 4315 APPENDUID: the UIDs are given now, and both the messages'
	// names in cur/ and the log lines recording their UIDs are durable
	// before the caller answers. The two fsyncs are independent (a log
	// line whose file is missing after a crash is an expunge of a message
	// never acknowledged; a file without a line gets a UID at the next
	// sync), so they run at once and cost one journal commit.
	dirDone := make(chan error, 1)
	go func() { dirDone <- syncDir(curDir) }()
	var b logBatch
	uids := make([]uint32, len(msgs))
	touched := make(map[uint32]bool, len(msgs))
	first := len(x.entries)
	now := time.Now().Unix()
	for i, m := range msgs {
		x.highestModSeq++
		e := entry{uid: x.uidNext, modseq: x.highestModSeq, size: m.size, mtime: m.mtime,
			key: m.key, info: buildInfo(m.flags, kw), kw: mergeKeywords(nil, buildInfo(m.flags, kw), kw),
			saved: now} // RFC 8514: saved when it enters the folder
		if mine := extraOf(m.flags, extra); len(mine) > 0 {
			e.kw = sortedUnion(e.kw, mine)
		}
		x.uidNext++
		x.entries = append(x.entries, e)
		uids[i] = e.uid
		touched[e.uid] = true
	}
	for i := first; i < len(x.entries); i++ {
		b.entry(&x.entries[i])
	}
	b.durable = true
	logErr := st.appendLog(&b)
	if err := <-dirDone; err != nil {
		st.idx = nil
		return nil, err
	}
	if logErr != nil {
		st.idx = nil
		return nil, logErr
	}
	st.updateSnapshot(touched)
	return uids, nil
}

// extraOf returns the index-only keywords (extra) among one message's flags.
func extraOf(flags, extra []string) []string {
	var out []string
	for _, k := range extra {
		for _, f := range flags {
			if f == k {
				out = append(out, k)
				break
			}
		}
	}
	return out
}
