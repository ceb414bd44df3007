package queue

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"tern/common/safeio"
)

var (
	// ErrNotFound is returned for an id that is not in the queue.
	ErrNotFound = errors.New("queue: no such message")
	// ErrBusy is returned when another process holds the message's lock
	// (a delivery is in progress); try again later.
	ErrBusy = errors.New("queue: message is locked by a delivery in progress")
	// ErrBadID is returned for a string that cannot be a queue id.
	ErrBadID = errors.New("queue: malformed queue id")
)

// Queue is the on-disk queue under a state directory.
type Queue struct {
	dir string
	log *slog.Logger
}

// Directories inside the queue directory; see the package doc.
const (
	dirTmp     = "tmp"
	dirData    = "data"
	dirEnv     = "env"
	dirCorrupt = "corrupt"
	kickFile   = "kick"
	flushFile  = "flush"
)

// Open opens (creating if needed) the queue in stateDir/queue.
func Open(stateDir string, log *slog.Logger) (*Queue, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	q := &Queue{dir: filepath.Join(stateDir, "queue"), log: log}
	for _, d := range []string{dirTmp, dirData, dirEnv, dirCorrupt} {
		if err := os.MkdirAll(filepath.Join(q.dir, d), 0o750); err != nil {
			return nil, fmt.Errorf("open queue: %w", err)
		}
	}
	return q, nil
}

// Dir is the queue directory.
func (q *Queue) Dir() string { return q.dir }

func (q *Queue) path(sub, id string) string { return filepath.Join(q.dir, sub, id) }

// ValidID reports whether s has the form of a queue id: 21 lower-case hex
// digits (arrival time in microseconds, then randomness), so that an id
// given on a command line can never name a path outside the queue.
func ValidID(s string) bool {
	if len(s) != idLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

const idLen = 21

// newID makes a queue id that sorts by arrival time.
func newID(now time.Time) string {
	var r [4]byte
	_, _ = rand.Read(r[:])
	return fmt.Sprintf("%013x%s", now.UnixMicro(), hex.EncodeToString(r[:]))
}

// Spool is a message being written into the queue. Its data goes to a
// temporary file, locked from the start; Commit makes it durable and
// queued, Discard throws it away. A spool not committed before a crash is
// removed by Recover. A buffered spool (NewBufferedSpool) keeps a small
// message in memory and creates the file only when the message outgrows
// the buffer or is committed: most messages are delivered at once and
// never need it.
type Spool struct {
	q     *Queue
	id    string
	f     *os.File // nil while the data is only in buf
	buf   []byte
	limit int64 // the most bytes kept in buf
	h     hash.Hash
	size  int64
	done  bool
}

// NewSpool starts writing a message into a spool file.
func (q *Queue) NewSpool() (*Spool, error) {
	s := &Spool{q: q, id: newID(time.Now()), h: sha256.New()}
	if err := s.create(); err != nil {
		return nil, err
	}
	return s, nil
}

// NewBufferedSpool starts writing a message that is held in memory while
// it is no larger than limit bytes.
func (q *Queue) NewBufferedSpool(limit int64) *Spool {
	return &Spool{q: q, id: newID(time.Now()), h: sha256.New(), limit: limit}
}

// create creates and locks the spool file and writes into it what the
// buffer holds.
func (s *Spool) create() error {
	f, err := os.OpenFile(s.q.path(dirTmp, s.id), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return fmt.Errorf("create spool file: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		os.Remove(f.Name())
		return fmt.Errorf("lock spool file %s: %w", f.Name(), err)
	}
	if _, err := f.Write(s.buf); err != nil {
		f.Close()
		os.Remove(f.Name())
		return fmt.Errorf("write spool file: %w", err)
	}
	s.f, s.buf = f, nil
	return nil
}

// ID is the queue id the message will have once committed.
func (s *Spool) ID() string { return s.id }

// Write appends message data.
func (s *Spool) Write(p []byte) (int, error) {
	if s.done {
		return 0, errors.New("queue: spool already finished")
	}
	if s.f == nil {
		if s.size+int64(len(p)) <= s.limit {
			s.buf = append(s.buf, p...)
			s.h.Write(p)
			s.size += int64(len(p))
			return len(p), nil
		}
		if err := s.create(); err != nil {
			return 0, err
		}
	}
	n, err := s.f.Write(p)
	s.h.Write(p[:n])
	s.size += int64(n)
	if err != nil {
		return n, fmt.Errorf("write spool file: %w", err)
	}
	return n, nil
}

// Size is the number of bytes written so far.
func (s *Spool) Size() int64 { return s.size }

// Reader returns a reader of everything written so far, for delivery
// attempts made before the message is committed (or instead of it).
func (s *Spool) Reader() io.Reader {
	if s.f == nil {
		return bytes.NewReader(s.buf)
	}
	return io.NewSectionReader(s.f, 0, s.size)
}

// Commit makes the message durable and queued with envelope e (whose ID,
// Size and SHA256 are filled in): the data file is fsynced and renamed
// into data/, then the envelope is written (temp, fsync, rename, fsync of
// env/). Only once Commit returns nil may the message be acknowledged.
func (s *Spool) Commit(e *Envelope) error {
	if s.done {
		return errors.New("queue: spool already finished")
	}
	if s.f == nil {
		if err := s.create(); err != nil {
			s.done = true
			return err
		}
	}
	s.done = true
	defer s.f.Close() // releases the lock, after the envelope exists
	fail := func(err error) error {
		os.Remove(s.f.Name())
		os.Remove(s.q.path(dirData, s.id))
		return err
	}
	if err := safeio.Install(s.f, s.q.path(dirData, s.id)); err != nil {
		return fail(fmt.Errorf("commit spool file %s: %w", s.id, err))
	}
	e.ID = s.id
	e.Size = s.size
	e.SHA256 = hex.EncodeToString(s.h.Sum(nil))
	if e.Arrival.IsZero() {
		e.Arrival = time.Now()
	}
	if err := s.q.writeEnvelope(e); err != nil {
		return fail(err)
	}
	return nil
}

// Discard removes an uncommitted spool.
func (s *Spool) Discard() {
	if s.done {
		return
	}
	s.done = true
	s.buf = nil
	if s.f == nil {
		return
	}
	os.Remove(s.f.Name())
	s.f.Close()
}

// Enqueue writes a whole message from r with envelope e and returns its
// queue id once it is durable. lmtpd uses it to forward to remote
// addresses.
func (q *Queue) Enqueue(e *Envelope, r io.Reader) (string, error) {
	s, err := q.NewSpool()
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(s, r); err != nil {
		s.Discard()
		return "", fmt.Errorf("enqueue: %w", err)
	}
	if err := s.Commit(e); err != nil {
		return "", err
	}
	q.Kick()
	return s.id, nil
}

// writeEnvelope replaces env/<id> atomically and durably.
func (q *Queue) writeEnvelope(e *Envelope) error {
	if err := safeio.WriteFileVia(q.path(dirTmp, e.ID+".env"), q.path(dirEnv, e.ID), e.marshal(), 0o640); err != nil {
		return fmt.Errorf("install envelope %s: %w", e.ID, err)
	}
	return nil
}

// Get reads the envelope of one message without locking it. Because
// envelopes are replaced by rename, the result is always a consistent
// version, possibly one that a delivery is about to replace.
func (q *Queue) Get(id string) (*Envelope, error) {
	if !ValidID(id) {
		return nil, fmt.Errorf("%w: %q", ErrBadID, id)
	}
	data, err := os.ReadFile(q.path(dirEnv, id))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("read envelope %s: %w", id, err)
	}
	e, err := parseEnvelope(data)
	if err != nil {
		return nil, fmt.Errorf("envelope %s: %w", id, err)
	}
	if e.ID != id {
		return nil, fmt.Errorf("envelope %s: %w: names id %s", id, ErrTorn, e.ID)
	}
	return e, nil
}

// IDs lists the queued message ids, oldest first.
func (q *Queue) IDs() ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(q.dir, dirEnv))
	if err != nil {
		return nil, fmt.Errorf("list queue: %w", err)
	}
	var ids []string
	for _, de := range ents {
		if ValidID(de.Name()) {
			ids = append(ids, de.Name())
		}
	}
	sort.Strings(ids)
	return ids, nil
}

// List reads every envelope, oldest first. Messages removed while listing
// are skipped; a damaged envelope is logged and skipped (Recover moves it
// aside).
func (q *Queue) List() ([]*Envelope, error) {
	ids, err := q.IDs()
	if err != nil {
		return nil, err
	}
	var out []*Envelope
	for _, id := range ids {
		e, err := q.Get(id)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			q.log.Warn("skipping queue entry", "id", id, "err", err)
			continue
		}
		out = append(out, e)
	}
	return out, nil
}

// Data opens the content of a queued message for reading (mailq -show).
func (q *Queue) Data(id string) (*os.File, error) {
	if !ValidID(id) {
		return nil, fmt.Errorf("%w: %q", ErrBadID, id)
	}
	f, err := os.Open(q.path(dirData, id))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("open message %s: %w", id, err)
	}
	return f, nil
}

// Claim is exclusive use of one queued message: the flock on its data
// file is held until Close. Whoever changes a message (the queue runner,
// mailq) does it under a claim, so changes never race.
type Claim struct {
	q    *Queue
	f    *os.File
	Env  *Envelope
	gone bool
}

// Claim locks message id without waiting and reads its envelope under the
// lock. It returns ErrBusy when another process holds the lock and
// ErrNotFound when the message is gone.
func (q *Queue) Claim(id string) (*Claim, error) {
	if !ValidID(id) {
		return nil, fmt.Errorf("%w: %q", ErrBadID, id)
	}
	f, err := os.Open(q.path(dirData, id))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("open message %s: %w", id, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s", ErrBusy, id)
		}
		return nil, fmt.Errorf("lock message %s: %w", id, err)
	}
	// Read the envelope only now: a change made by the previous holder of
	// the lock is then visible.
	e, err := q.Get(id)
	if err != nil {
		f.Close()
		return nil, err
	}
	return &Claim{q: q, f: f, Env: e}, nil
}

// Data returns the message content after checking it against the size
// and digest in the envelope, so that a damaged data file is never
// delivered. The reader is valid until Close.
func (c *Claim) Data() (io.ReadSeeker, error) {
	h := sha256.New()
	n, err := io.Copy(h, io.NewSectionReader(c.f, 0, 1<<62))
	if err != nil {
		return nil, fmt.Errorf("read message %s: %w", c.Env.ID, err)
	}
	if n != c.Env.Size || hex.EncodeToString(h.Sum(nil)) != c.Env.SHA256 {
		return nil, fmt.Errorf("message %s: %w: data file does not match its envelope (%d bytes, want %d)",
			c.Env.ID, ErrTorn, n, c.Env.Size)
	}
	return io.NewSectionReader(c.f, 0, n), nil
}

// Save writes the claim's envelope durably.
func (c *Claim) Save() error {
	if c.gone {
		return fmt.Errorf("%w: %s", ErrNotFound, c.Env.ID)
	}
	return c.q.writeEnvelope(c.Env)
}

// Remove deletes the message: the envelope first (so it stops being
// queued), then the data file. A crash in between leaves an orphan data
// file that Recover removes.
func (c *Claim) Remove() error {
	if c.gone {
		return nil
	}
	id := c.Env.ID
	if err := os.Remove(c.q.path(dirEnv, id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove envelope %s: %w", id, err)
	}
	if err := syncDir(filepath.Join(c.q.dir, dirEnv)); err != nil {
		return err
	}
	c.gone = true
	if err := os.Remove(c.q.path(dirData, id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove message %s: %w", id, err)
	}
	return nil
}

// Quarantine moves a damaged message to corrupt/, where it is never
// delivered, for the administrator to look at.
func (c *Claim) Quarantine() error {
	c.gone = true
	return c.q.quarantine(c.Env.ID)
}

// Close releases the lock.
func (c *Claim) Close() error { return c.f.Close() }

func (q *Queue) quarantine(id string) error {
	var errs []error
	for _, sub := range []string{dirEnv, dirData} {
		err := os.Rename(q.path(sub, id), q.path(dirCorrupt, id+"."+sub))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	errs = append(errs, syncDir(filepath.Join(q.dir, dirEnv)), syncDir(filepath.Join(q.dir, dirCorrupt)))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("quarantine %s: %w", id, err)
	}
	q.log.Error("queue file damaged, moved aside", "id", id, "dir", filepath.Join(q.dir, dirCorrupt))
	return nil
}

// modify runs fn on the claimed envelope and saves it.
func (q *Queue) modify(id string, fn func(e *Envelope)) error {
	c, err := q.Claim(id)
	if err != nil {
		return err
	}
	defer c.Close()
	fn(c.Env)
	return c.Save()
}

// Hold stops delivery attempts for a message until Release.
func (q *Queue) Hold(id string) error {
	return q.modify(id, func(e *Envelope) { e.Held = true })
}

// Release undoes Hold and makes the message due now.
func (q *Queue) Release(id string) error {
	if err := q.modify(id, func(e *Envelope) { e.Held = false; e.NextAttempt = time.Now() }); err != nil {
		return err
	}
	q.Kick()
	return nil
}

// Delete removes a message without delivering it or sending a DSN.
func (q *Queue) Delete(id string) error {
	c, err := q.Claim(id)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Remove()
}

// Flush makes message id (or, with id "", every message not held) due
// now and tells the running queue runner, which starts within a second.
func (q *Queue) Flush(id string) error {
	ids := []string{id}
	if id == "" {
		var err error
		if ids, err = q.IDs(); err != nil {
			return err
		}
	}
	var errs []error
	for _, one := range ids {
		err := q.modify(one, func(e *Envelope) { e.NextAttempt = time.Now() })
		if id == "" && (errors.Is(err, ErrBusy) || errors.Is(err, ErrNotFound)) {
			continue // being delivered right now, or just finished
		}
		errs = append(errs, err)
	}
	// The administrator asks for a try now: of the remote hosts in
	// backoff too, which the runner learns from this file.
	q.touch(flushFile)
	q.Kick()
	return errors.Join(errs...)
}

// FlushStamp returns the modification time of the flush file (zero when
// it does not exist): it changes at each Flush.
func (q *Queue) FlushStamp() time.Time { return q.stamp(flushFile) }

// Kick tells the queue runner to look at the queue now, by touching the
// kick file whose modification time the runner watches.
func (q *Queue) Kick() { q.touch(kickFile) }

// touch sets the modification time of a stamp file, creating it.
func (q *Queue) touch(name string) {
	p := filepath.Join(q.dir, name)
	now := time.Now()
	if err := os.Chtimes(p, now, now); err != nil {
		if f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o660); err == nil {
			f.Close()
		}
	}
}

// KickStamp returns the modification time of the kick file (zero when it
// does not exist); a change means someone asked for a queue run.
func (q *Queue) KickStamp() time.Time { return q.stamp(kickFile) }

func (q *Queue) stamp(name string) time.Time {
	fi, err := os.Stat(filepath.Join(q.dir, name))
	if err != nil {
		return time.Time{}
	}
	return fi.ModTime()
}

// Recover cleans up after a crash. It is run by the queue runner at start
// and is safe while other processes enqueue: every file it removes is one
// whose writer has died, which it knows because the file's lock is free.
//   - tmp/: unlocked spool files and envelope temp files are removed.
//   - data/ without env/: an unlocked data file is an orphan (a crash
//     between the two renames of Commit, or during Remove) and is removed.
//   - env/ that does not parse, or without its data file: moved to
//     corrupt/ and logged; never delivered.
func (q *Queue) Recover() error {
	var errs []error
	tmps, err := os.ReadDir(filepath.Join(q.dir, dirTmp))
	if err != nil {
		return fmt.Errorf("recover queue: %w", err)
	}
	for _, de := range tmps {
		name := de.Name()
		if strings.HasSuffix(name, ".env") {
			// An envelope temp is only live during writeEnvelope, under the
			// message's lock.
			id := strings.TrimSuffix(name, ".env")
			if ValidID(id) && q.lockedElsewhere(q.path(dirData, id)) {
				continue
			}
			os.Remove(q.path(dirTmp, name))
			continue
		}
		if !q.lockedElsewhere(q.path(dirTmp, name)) {
			q.log.Info("removing abandoned spool file", "file", name)
			os.Remove(q.path(dirTmp, name))
		}
	}
	envs := map[string]bool{}
	ents, err := os.ReadDir(filepath.Join(q.dir, dirEnv))
	if err != nil {
		return fmt.Errorf("recover queue: %w", err)
	}
	for _, de := range ents {
		id := de.Name()
		envs[id] = true
		if !ValidID(id) {
			continue
		}
		if _, err := q.Get(id); errors.Is(err, ErrTorn) {
			errs = append(errs, q.quarantine(id))
			continue
		}
		if _, err := os.Stat(q.path(dirData, id)); errors.Is(err, os.ErrNotExist) {
			errs = append(errs, q.quarantine(id))
		}
	}
	datas, err := os.ReadDir(filepath.Join(q.dir, dirData))
	if err != nil {
		return fmt.Errorf("recover queue: %w", err)
	}
	for _, de := range datas {
		id := de.Name()
		if envs[id] {
			continue
		}
		p := q.path(dirData, id)
		if q.lockedElsewhere(p) {
			continue // Commit is between its two renames right now
		}
		// Check again: the envelope may have appeared since ReadDir.
		if _, err := os.Stat(q.path(dirEnv, id)); err == nil {
			continue
		}
		q.log.Info("removing orphan queue data file", "id", id)
		os.Remove(p)
	}
	return errors.Join(errs...)
}

// lockedElsewhere reports whether someone holds the flock on path.
func (q *Queue) lockedElsewhere(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return true
	}
	unix.Flock(int(f.Fd()), unix.LOCK_UN)
	return false
}

// syncDir fsyncs a directory so that a rename or removal in it is durable.
func syncDir(dir string) error { return safeio.SyncDir(dir) }
