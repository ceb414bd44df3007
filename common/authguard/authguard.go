// Package authguard slows password guessing: after a failed login from a
// client address, the next login from that address is checked only after
// a delay that doubles with each failure (2 s, 4 s, 8 s, capped at 15 s by
// default: Dovecot's auth penalty). An account that logged in successfully
// lately from an address (a known-good pair) is not delayed there, until
// a login for it fails again: the exemption is keyed by address and
// account, so that a user behind the same address as a guesser (a NAT, a
// shared host) does not switch the brake off for every other account, and
// a guesser's own good login neither exempts nor resets it.
//
// # Sharing between daemons
//
// smtpd, imapd and pop3d are separate processes, and a guesser switching
// from IMAP to POP3 must meet the same delay. They share it through one
// file, state_dir/authguard.table, rather than through a daemon of its own
// (one more process to run and to fail) or a file per address (a flood of
// addresses would fill the directory and its inodes):
//
//	header  64 bytes: "tern-authguard 1\n", then the slot count (uint32, big endian)
//	slots   table_size × 64 bytes, each:
//	          0  16  the key: an address (IPv4 as an IPv4-mapped IPv6
//	                 address; IPv6 cut to its /64, which one host can fill
//	                 at will), or for a pair the first 16 bytes of
//	                 SHA-256("pair", address key, lower-case account)
//	         16   1  1 if the slot is in use
//	         20   4  failures (of an address: within failure_window; of a
//	                 pair: since its last success) (uint32)
//	         24   8  time of the last failure (Unix nanoseconds, int64)
//	         32   8  time of the last success (Unix nanoseconds, int64)
//
// An address's entry counts the failures that make the delay; a pair's
// entry records the pair's last success, which is the exemption (Delay).
// A key hashes (FNV-1a) to a run of probeRun consecutive slots; its
// entry is in that run or nowhere. A slot is free when it is unused, or
// when its last failure is older than failure_window and its last success
// older than good_ip_lifetime. When the whole run is in use, the slot
// touched least recently is taken over. So the file has a fixed size
// (1 MiB for the default 16384 slots) whatever the number of addresses,
// and old entries expire by themselves.
//
// Every operation takes an exclusive flock(2) on the file (plus a mutex,
// since flock does not exclude goroutines sharing one descriptor), reads
// the run with one pread, writes back the one slot it changed with one
// pwrite, and unlocks: a few microseconds. The table is advisory state and
// is not fsynced: a crash forgets some delays, which costs nothing but a
// little protection. A file of the wrong size or with a bad header (from a
// crash, an older version, or a changed table_size) is reset.
package authguard

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"tern/common/config"
)

// FileName is the table's name under state_dir.
const FileName = "authguard.table"

const (
	slotSize = 64
	headSize = 64
	// Version 2 keys the exemption by address and account; a version 1
	// table (exempting whole addresses) is reset.
	magic = "tern-authguard 2\n"
	// probeRun is how many slots an address may occupy; more makes
	// collisions rarer and each operation a little longer.
	probeRun = 16
)

// ErrBadAddress means an address that is not an IP address.
var ErrBadAddress = errors.New("authguard: not an IP address")

// Guard is one process's handle on the shared table. It is safe for
// concurrent use.
type Guard struct {
	path  string
	cfg   config.Login
	slots int
	// now is the clock; tests replace it.
	now func() time.Time

	mu sync.Mutex
	f  *os.File
}

// tableMode lets every daemon of the group read and write the table.
const tableMode = 0o660

// isOwner reports whether this process owns the file (and so may chmod it).
func isOwner(fi os.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == os.Geteuid()
}

// Open opens (or creates) the table under stateDir, sized and tuned by cfg.
func Open(stateDir string, cfg config.Login) (*Guard, error) {
	if cfg.TableSize < probeRun {
		return nil, fmt.Errorf("authguard: table_size %d is less than %d", cfg.TableSize, probeRun)
	}
	if err := os.MkdirAll(stateDir, 0o750); err != nil {
		return nil, fmt.Errorf("authguard: state dir %q: %w", stateDir, err)
	}
	path := filepath.Join(stateDir, FileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, tableMode)
	if err != nil {
		return nil, fmt.Errorf("authguard: open %q: %w", path, err)
	}
	// smtpd, imapd and pop3d may run as different users sharing a group
	// (tern and vmail in group tern, as the package sets them up): the
	// table must be writable by the group whatever the creator's umask.
	if fi, err := f.Stat(); err == nil && fi.Mode().Perm() != tableMode && isOwner(fi) {
		f.Chmod(tableMode)
	}
	g := &Guard{path: path, cfg: cfg, slots: cfg.TableSize, now: time.Now, f: f}
	if err := g.locked(func() error { return g.checkHeader() }); err != nil {
		f.Close()
		return nil, err
	}
	return g, nil
}

// Close closes the table file.
func (g *Guard) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.f.Close()
}

// Path is the table file, for logs.
func (g *Guard) Path() string { return g.path }

// locked runs fn holding the process mutex and the file lock.
func (g *Guard) locked(fn func() error) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	fd := int(g.f.Fd())
	for {
		err := syscall.Flock(fd, syscall.LOCK_EX)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EINTR) {
			return fmt.Errorf("authguard: lock %q: %w", g.path, err)
		}
	}
	defer syscall.Flock(fd, syscall.LOCK_UN)
	return fn()
}

// checkHeader resets the file unless it has this table's header and size.
// Called with the lock held.
func (g *Guard) checkHeader() error {
	want := int64(headSize + g.slots*slotSize)
	head := make([]byte, headSize)
	st, err := g.f.Stat()
	if err != nil {
		return fmt.Errorf("authguard: stat %q: %w", g.path, err)
	}
	if st.Size() == want {
		if _, err := g.f.ReadAt(head, 0); err == nil &&
			string(head[:len(magic)]) == magic &&
			binary.BigEndian.Uint32(head[len(magic):]) == uint32(g.slots) {
			return nil
		}
	}
	// Reset: every slot free. Truncating to zero first zeroes the slots.
	if err := g.f.Truncate(0); err != nil {
		return fmt.Errorf("authguard: reset %q: %w", g.path, err)
	}
	if err := g.f.Truncate(want); err != nil {
		return fmt.Errorf("authguard: reset %q: %w", g.path, err)
	}
	clear(head)
	copy(head, magic)
	binary.BigEndian.PutUint32(head[len(magic):], uint32(g.slots))
	if _, err := g.f.WriteAt(head, 0); err != nil {
		return fmt.Errorf("authguard: write header of %q: %w", g.path, err)
	}
	return nil
}

// entry is one decoded slot.
type entry struct {
	key      [16]byte
	used     bool
	failures uint32
	lastFail int64
	lastGood int64
}

func decode(b []byte) entry {
	var e entry
	copy(e.key[:], b[:16])
	e.used = b[16] == 1
	e.failures = binary.BigEndian.Uint32(b[20:])
	e.lastFail = int64(binary.BigEndian.Uint64(b[24:]))
	e.lastGood = int64(binary.BigEndian.Uint64(b[32:]))
	return e
}

func (e entry) encode(b []byte) {
	clear(b[:slotSize])
	copy(b[:16], e.key[:])
	if e.used {
		b[16] = 1
	}
	binary.BigEndian.PutUint32(b[20:], e.failures)
	binary.BigEndian.PutUint64(b[24:], uint64(e.lastFail))
	binary.BigEndian.PutUint64(b[32:], uint64(e.lastGood))
}

// live reports whether an entry still means something at now.
func (g *Guard) live(e entry, now int64) bool {
	if !e.used {
		return false
	}
	return now-e.lastFail < int64(g.cfg.FailureWindow) && e.failures > 0 ||
		now-e.lastGood < int64(g.cfg.GoodIPLifetime) && e.lastGood != 0
}

// keyOf turns a client address into its table key. IPv6 addresses are cut
// to their /64: one host usually owns a whole /64, and would otherwise
// have 2^64 fresh addresses to guess from.
func keyOf(ip string) ([16]byte, error) {
	var k [16]byte
	p := net.ParseIP(ip)
	if p == nil {
		return k, fmt.Errorf("%w: %q", ErrBadAddress, ip)
	}
	copy(k[:], p.To16())
	if p.To4() == nil {
		clear(k[8:])
	}
	return k, nil
}

func (g *Guard) start(k [16]byte) int {
	h := fnv.New32a()
	h.Write(k[:])
	return int(h.Sum32() % uint32(g.slots))
}

// pairKey is the table key of an account at an address.
func pairKey(addr [16]byte, account string) [16]byte {
	h := sha256.New()
	h.Write([]byte("pair\x00"))
	h.Write(addr[:])
	h.Write([]byte(strings.ToLower(account)))
	var k [16]byte
	copy(k[:], h.Sum(nil))
	return k
}

// keys returns the address key of ip and, for a non-empty account, the
// pair key.
func keys(ip, account string) (addr, pair [16]byte, hasPair bool, err error) {
	addr, err = keyOf(ip)
	if err != nil || account == "" {
		return addr, pair, false, err
	}
	return addr, pairKey(addr, account), true, nil
}

// update finds the entry of key k in its run (or a slot for it), lets fn
// change it, and writes it back if fn returns true. fn sees a zero entry
// (with the key set) for a key not in the table.
func (g *Guard) update(k [16]byte, fn func(e *entry, now int64) bool) error {
	return g.locked(func() error {
		now := g.now().UnixNano()
		start := g.start(k)
		// The run may wrap around the end of the table: read it in at most
		// two pieces.
		buf := make([]byte, probeRun*slotSize)
		first := min(probeRun, g.slots-start)
		if _, err := g.f.ReadAt(buf[:first*slotSize], int64(headSize+start*slotSize)); err != nil {
			return fmt.Errorf("authguard: read %q: %w", g.path, err)
		}
		if first < probeRun {
			if _, err := g.f.ReadAt(buf[first*slotSize:], headSize); err != nil {
				return fmt.Errorf("authguard: read %q: %w", g.path, err)
			}
		}
		found, free, oldest := -1, -1, -1
		var oldestT int64
		for i := range probeRun {
			e := decode(buf[i*slotSize:])
			if e.used && e.key == k {
				found = i
				break
			}
			if !g.live(e, now) {
				if free < 0 {
					free = i
				}
				continue
			}
			if t := max(e.lastFail, e.lastGood); oldest < 0 || t < oldestT {
				oldest, oldestT = i, t
			}
		}
		i := found
		var e entry
		switch {
		case found >= 0:
			e = decode(buf[found*slotSize:])
			if !g.live(e, now) {
				e = entry{}
			}
		case free >= 0:
			i = free
		default:
			// The run is full of live entries: the least recently
			// touched one goes, so a flood of new addresses pushes out
			// old ones rather than growing anything.
			i = oldest
		}
		if e.used && e.failures > 0 && now-e.lastFail >= int64(g.cfg.FailureWindow) {
			e.failures = 0 // the failures have expired; a recent success stays
		}
		e.key, e.used = k, true
		if !fn(&e, now) {
			return nil
		}
		slot := (start + i) % g.slots
		b := buf[i*slotSize : (i+1)*slotSize]
		e.encode(b)
		if _, err := g.f.WriteAt(b, int64(headSize+slot*slotSize)); err != nil {
			return fmt.Errorf("authguard: write %q: %w", g.path, err)
		}
		return nil
	})
}

// Delay is how long a login from ip for account must wait before its
// credentials are checked: nothing when the account logged in from this
// address within good_ip_lifetime and has not failed there since, or when
// the address has no recent failures; otherwise delay·2^(failures-1),
// capped at max_delay, less the time already passed since the last
// failure. account may be empty when it is not known yet (a SASL exchange
// that has not named it): then there is no exemption.
func (g *Guard) Delay(ip, account string) (time.Duration, error) {
	addr, pair, hasPair, err := keys(ip, account)
	if err != nil {
		return 0, err
	}
	if hasPair && g.cfg.GoodIPLifetime > 0 {
		exempt := false
		err := g.update(pair, func(e *entry, now int64) bool {
			exempt = e.lastGood != 0 && now-e.lastGood < int64(g.cfg.GoodIPLifetime) && e.failures == 0
			return false
		})
		if err != nil || exempt {
			return 0, err
		}
	}
	var d time.Duration
	err = g.update(addr, func(e *entry, now int64) bool {
		if e.failures == 0 || g.cfg.Delay <= 0 {
			return false
		}
		d = g.cfg.Delay.D()
		for n := uint32(1); n < e.failures && d < g.cfg.MaxDelay.D(); n++ {
			d *= 2
		}
		d = min(d, g.cfg.MaxDelay.D()) - time.Duration(now-e.lastFail)
		d = max(d, 0)
		return false
	})
	return d, err
}

// Wait sleeps for Delay(ip, account), or until ctx ends. A table error is
// returned after no wait: the daemons log it and go on, since a broken
// table must not lock every user out.
func (g *Guard) Wait(ctx context.Context, ip, account string) (time.Duration, error) {
	d, err := g.Delay(ip, account)
	if err != nil || d <= 0 {
		return 0, err
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return d, nil
	case <-ctx.Done():
		return d, ctx.Err()
	}
}

// Failure records a failed login from ip for account (empty when not
// known) and returns how many failures the address has had within
// failure_window (for the log). The pair loses its exemption until its
// next success.
func (g *Guard) Failure(ip, account string) (int, error) {
	addr, pair, hasPair, err := keys(ip, account)
	if err != nil {
		return 0, err
	}
	var n int
	err = g.update(addr, func(e *entry, now int64) bool {
		if e.failures < 1<<31 {
			e.failures++
		}
		e.lastFail = now
		n = int(e.failures)
		return true
	})
	if err == nil && hasPair {
		err = g.update(pair, func(e *entry, now int64) bool {
			if e.lastGood == 0 {
				return false // no exemption to take away
			}
			if e.failures < 1<<31 {
				e.failures++
			}
			e.lastFail = now
			return true
		})
	}
	return n, err
}

// Success records a successful login from ip for account: the pair is
// known good for good_ip_lifetime. The address's failures stay: they may
// be another account's, and a guesser's own good login must not reset
// them.
func (g *Guard) Success(ip, account string) error {
	_, pair, hasPair, err := keys(ip, account)
	if err != nil || !hasPair {
		return err
	}
	return g.update(pair, func(e *entry, now int64) bool {
		e.failures, e.lastFail, e.lastGood = 0, 0, now
		return true
	})
}

// OpenOrOff opens the table for a daemon. When it cannot (a read-only
// state_dir, say) it logs why and returns nil: a nil *Guard's Before,
// Failed and Succeeded do nothing, and logins are then limited per
// connection only. smtpd, imapd and pop3d all start this way.
func OpenOrOff(stateDir string, cfg config.Login, log *slog.Logger) *Guard {
	g, err := Open(stateDir, cfg)
	if err != nil {
		log.Error("login delays off: cannot open the shared table", "err", err)
		return nil
	}
	return g
}

// Before waits out the delay of ip and account (empty when not known
// yet) before the credentials are checked, so that hanging up on a slow
// answer does not skip it. A problem with the table is logged and lets the
// login go on; only the end of ctx is returned.
func (g *Guard) Before(ctx context.Context, ip, account string, log *slog.Logger) error {
	if g == nil {
		return nil
	}
	d, err := g.Wait(ctx, ip, account)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		log.Warn("login delay table", "err", err)
	}
	if d > 0 {
		log.Debug("login delayed", "delay", d)
	}
	return nil
}

// Failed records a failed login from ip for account (empty when not
// known) and returns the address's count of recent failures (0 without a
// table).
func (g *Guard) Failed(ip, account string, log *slog.Logger) int {
	if g == nil {
		return 0
	}
	n, err := g.Failure(ip, account)
	if err != nil {
		log.Warn("login delay table", "err", err)
	}
	return n
}

// Succeeded marks account known good at ip after a login.
func (g *Guard) Succeeded(ip, account string, log *slog.Logger) {
	if g == nil {
		return
	}
	if err := g.Success(ip, account); err != nil {
		log.Warn("login delay table", "err", err)
	}
}

// SASLAccount returns the account a SASL response names, when it names
// one before the password is checked: the authcid of a PLAIN message
// (RFC 4616 2), or the user name a LOGIN client sends as its initial
// response. Otherwise "" (no exemption; the address's delay applies).
func SASLAccount(mech string, resp []byte) string {
	switch strings.ToUpper(mech) {
	case "PLAIN":
		parts := strings.Split(string(resp), "\x00")
		if len(parts) == 3 {
			return parts[1]
		}
	case "LOGIN":
		if len(resp) > 0 && !strings.ContainsAny(string(resp), "\x00\r\n") {
			return string(resp)
		}
	}
	return ""
}
