package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"tern/common/config"
	"tern/common/safeio"
)

// A user's Sieve scripts, as ManageSieve (RFC 5804) keeps them. With the
// lmtpd.sieve template /var/vmail/%d/%n/sieve/active.sieve:
//
//	sieve/scripts/NAME.sieve   one file per script, written crash-safely
//	sieve/scripts/.lock        flock(2) serialising the user's sessions
//	sieve/active.sieve         a symbolic link to scripts/NAME.sieve, or absent
//
// lmtpd's delivery only opens active.sieve (following the link), so it
// sees the old script or the new one, never a torn one, and no script when
// none is active. Every change is one rename(2) or unlink(2) followed by an
// fsync of the directory:
//   - PUTSCRIPT writes NAME.sieve.tmp, fsyncs it, renames it over
//     NAME.sieve: a crash leaves the old script or the new one (and at worst
//     a stale temp file, which is never listed and is overwritten later).
//   - SETACTIVE makes a link .active.tmp and renames it over active.sieve.
//   - RENAMESCRIPT of the active script links the new name, moves the
//     active link to it, then removes the old name: at every step
//     active.sieve points at an existing file.
//
// An active.sieve that is a regular file (written by an admin before
// ManageSieve existed) is adopted as the script "main" at the first login.

// Errors of the store, turned into ManageSieve response codes in one place
// (msReplyFor).
var (
	errNoScript     = errors.New("sieve: no such script")
	errScriptExists = errors.New("sieve: a script of that name exists")
	errScriptActive = errors.New("sieve: the script is active")
	errBadName      = errors.New("sieve: bad script name")
	errTooMany      = errors.New("sieve: too many scripts")
	errTooBig       = errors.New("sieve: script too big")
)

const (
	scriptExt     = ".sieve"
	adoptedScript = "main"
	// maxNameBytes bounds a script name; RFC 5804 1.6 asks servers to take
	// at least 128 characters, and a file name has 255 bytes.
	maxNameBytes = 200
)

// sieveStore is one user's scripts.
type sieveStore struct {
	dir     string // sieve/scripts
	active  string // sieve/active.sieve
	maxSize int64
	maxN    int
}

func openSieveStore(template, user string, maxSize int64, maxN int) (*sieveStore, error) {
	active, err := config.Expand(template, user)
	if err != nil {
		return nil, err
	}
	st := &sieveStore{
		dir:     filepath.Join(filepath.Dir(active), "scripts"),
		active:  active,
		maxSize: maxSize,
		maxN:    maxN,
	}
	if err := os.MkdirAll(st.dir, 0o700); err != nil {
		return nil, fmt.Errorf("make sieve dir: %w", err)
	}
	err = st.locked(st.adopt)
	return st, err
}

// checkScriptName applies RFC 5804 1.6 (no control characters, no line or
// paragraph separators, UTF-8) and what a file name needs (no "/", no
// leading dot, which is kept for the store's own files).
func checkScriptName(name string) error {
	if name == "" || len(name) > maxNameBytes || !utf8.ValidString(name) ||
		strings.HasPrefix(name, ".") || strings.ContainsRune(name, '/') {
		return errBadName
	}
	for _, r := range name {
		if r < 0x20 || (r >= 0x7f && r <= 0x9f) || r == 0x2028 || r == 0x2029 {
			return errBadName
		}
	}
	return nil
}

func (st *sieveStore) path(name string) string { return filepath.Join(st.dir, name+scriptExt) }

// locked runs fn under the user's lock, so that two sessions of one user
// (or a session and an admin's tool) do not interleave their steps.
func (st *sieveStore) locked(fn func() error) error {
	f, err := os.OpenFile(filepath.Join(st.dir, ".lock"), os.O_CREATE|os.O_RDWR|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("open sieve lock: %w", err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		return fmt.Errorf("lock sieve dir: %w", err)
	}
	return fn()
}

// adopt turns a regular active.sieve into the script "main" and the link.
func (st *sieveStore) adopt() error {
	fi, err := os.Lstat(st.active)
	if err != nil || !fi.Mode().IsRegular() {
		return nil
	}
	if err := os.Link(st.active, st.path(adoptedScript)); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("adopt %s: %w", st.active, err)
	}
	if err := safeio.SyncDir(st.dir); err != nil {
		return err
	}
	return st.setActive(adoptedScript)
}

// activeName is the name of the active script, "" when none is.
func (st *sieveStore) activeName() string {
	target, err := os.Readlink(st.active)
	if err != nil {
		return ""
	}
	base := filepath.Base(target)
	if filepath.Dir(target) != "scripts" || !strings.HasSuffix(base, scriptExt) {
		return ""
	}
	return strings.TrimSuffix(base, scriptExt)
}

// scriptInfo is one line of LISTSCRIPTS.
type scriptInfo struct {
	name   string
	active bool
}

func (st *sieveStore) list() ([]scriptInfo, error) {
	ents, err := os.ReadDir(st.dir)
	if err != nil {
		return nil, fmt.Errorf("list sieve scripts: %w", err)
	}
	active := st.activeName()
	var out []scriptInfo
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), scriptExt)
		if !ok || !e.Type().IsRegular() || checkScriptName(name) != nil {
			continue
		}
		out = append(out, scriptInfo{name: name, active: name == active})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}

func (st *sieveStore) exists(name string) bool {
	fi, err := os.Lstat(st.path(name))
	return err == nil && fi.Mode().IsRegular()
}

func (st *sieveStore) get(name string) ([]byte, error) {
	if err := checkScriptName(name); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(st.path(name), os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil, errNoScript
	}
	if err != nil {
		return nil, fmt.Errorf("open script: %w", err)
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, st.maxSize+1))
}

// haveSpace answers HAVESPACE and guards PUTSCRIPT (RFC 5804 2.5): size
// against lmtpd.sieve_max_size, a new name against managesieve.max_scripts.
func (st *sieveStore) haveSpace(name string, size int64) error {
	if err := checkScriptName(name); err != nil {
		return err
	}
	if size > st.maxSize {
		return errTooBig
	}
	if st.exists(name) {
		return nil
	}
	all, err := st.list()
	if err != nil {
		return err
	}
	if len(all) >= st.maxN {
		return errTooMany
	}
	return nil
}

func (st *sieveStore) put(name string, src []byte) error {
	return st.locked(func() error {
		if err := st.haveSpace(name, int64(len(src))); err != nil {
			return err
		}
		return safeio.WriteFile(st.path(name), src, 0o600)
	})
}

func (st *sieveStore) remove(name string) error {
	if err := checkScriptName(name); err != nil {
		return err
	}
	return st.locked(func() error {
		if !st.exists(name) {
			return errNoScript
		}
		// RFC 5804 2.10: the active script cannot be deleted.
		if st.activeName() == name {
			return errScriptActive
		}
		if err := os.Remove(st.path(name)); err != nil {
			return fmt.Errorf("delete script: %w", err)
		}
		return safeio.SyncDir(st.dir)
	})
}

func (st *sieveStore) rename(old, name string) error {
	if err := checkScriptName(old); err != nil {
		return err
	}
	if err := checkScriptName(name); err != nil {
		return err
	}
	return st.locked(func() error {
		if !st.exists(old) {
			return errNoScript
		}
		// RFC 5804 2.11.1: the new name must not exist.
		if _, err := os.Lstat(st.path(name)); err == nil {
			return errScriptExists
		}
		if err := os.Link(st.path(old), st.path(name)); err != nil {
			return fmt.Errorf("rename script: %w", err)
		}
		if err := safeio.SyncDir(st.dir); err != nil {
			return err
		}
		// RFC 5804 2.11.1: renaming the active script keeps it active.
		if st.activeName() == old {
			if err := st.setActive(name); err != nil {
				return err
			}
		}
		if err := os.Remove(st.path(old)); err != nil {
			return fmt.Errorf("rename script: %w", err)
		}
		return safeio.SyncDir(st.dir)
	})
}

// activate makes name the active script; "" deactivates (RFC 5804 2.8).
func (st *sieveStore) activate(name string) error {
	if name != "" {
		if err := checkScriptName(name); err != nil {
			return err
		}
	}
	return st.locked(func() error {
		if name == "" {
			if err := os.Remove(st.active); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("deactivate: %w", err)
			}
			return safeio.SyncDir(filepath.Dir(st.active))
		}
		if !st.exists(name) {
			return errNoScript
		}
		return st.setActive(name)
	})
}

// setActive points active.sieve at name: a new link renamed over the old
// one, so lmtpd sees one or the other.
func (st *sieveStore) setActive(name string) error {
	dir := filepath.Dir(st.active)
	tmp := filepath.Join(dir, ".active.tmp")
	os.Remove(tmp)
	if err := os.Symlink(filepath.Join("scripts", name+scriptExt), tmp); err != nil {
		return fmt.Errorf("link active script: %w", err)
	}
	if err := safeio.Rename(tmp, st.active); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("activate script: %w", err)
	}
	return nil
}
