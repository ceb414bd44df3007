package auth

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"tern/common/reload"
)

// ErrFailed is the one error of a failed login, whether the user is unknown,
// the password wrong or the user barred, so that clients cannot tell these
// apart.
var ErrFailed = errors.New("auth: authentication failed")

// Defaults of Options.
const (
	// DefaultReloadInterval is how often, at most, the users file is
	// stat'ed for changes.
	DefaultReloadInterval = time.Second
	// DefaultMaxResponse bounds one SASL client response, in bytes after
	// base-64 decoding. RFC 4616 2 asks servers to accept at least 255
	// octets for each of the three PLAIN fields; this leaves ample room.
	DefaultMaxResponse = 4096
)

// Options configure a DB. The zero value of each field means its default.
type Options struct {
	// DefaultDomain is appended to a bare user name, in the file and at
	// login ("demo" -> "demo@example.test"). Empty: bare names are refused.
	DefaultDomain string
	// Log receives reload errors and warnings about unusable users, and
	// debug records of failed logins. Nil: discard.
	Log *slog.Logger
	// ReloadInterval is how often, at most, the file is checked for
	// changes. Default DefaultReloadInterval.
	ReloadInterval time.Duration
	// MaxResponse bounds one SASL client response in bytes. Default
	// DefaultMaxResponse.
	MaxResponse int
}

// User is one user of the users file.
type User struct {
	// Address is the canonical, lower-case address.
	Address string
	// Extra holds the extra fields of the user's line (key=value), keys as
	// written. It is the caller's copy.
	Extra map[string]string
}

// Field returns the extra field key, written either as key or, as Dovecot's
// passdb lines do, as userdb_key (key wins when both are present).
func (u User) Field(key string) (string, bool) {
	if v, ok := u.Extra[key]; ok {
		return v, true
	}
	v, ok := u.Extra["userdb_"+key]
	return v, ok
}

// DB is a users file, reloaded when it changes. It is safe for concurrent
// use.
type DB struct {
	path          string
	defaultDomain string
	log           *slog.Logger
	interval      time.Duration
	maxResponse   int

	table atomic.Pointer[table]

	// checkMu serialises checks of the file; lookups that find a check
	// under way use the current table rather than wait.
	checkMu   sync.Mutex
	lastCheck time.Time
	loaded    reload.FileID // identity of the file last read, loaded or not
	statErr   string        // last stat error logged, to log each once
}

// Open loads the users file. defaultDomain is appended to a bare user name
// at login ("demo" -> "demo@example.test"). Every malformed line is
// reported, with file and line, in the error.
func Open(path, defaultDomain string, log *slog.Logger) (*DB, error) {
	return OpenOptions(path, Options{DefaultDomain: defaultDomain, Log: log})
}

// OpenOptions is Open with all options.
func OpenOptions(path string, opts Options) (*DB, error) {
	db := &DB{
		path:          path,
		defaultDomain: strings.ToLower(opts.DefaultDomain),
		log:           opts.Log,
		interval:      opts.ReloadInterval,
		maxResponse:   opts.MaxResponse,
	}
	if db.log == nil {
		db.log = slog.New(slog.DiscardHandler)
	}
	if db.interval <= 0 {
		db.interval = DefaultReloadInterval
	}
	if db.maxResponse <= 0 {
		db.maxResponse = DefaultMaxResponse
	}
	t, id, err := db.load()
	if err != nil {
		return nil, err
	}
	db.table.Store(t)
	db.loaded = id
	db.lastCheck = time.Now()
	reload.Register(db, (*DB).Reload)
	return db, nil
}

// Reload re-reads the users file now if it changed, rather than at the
// next check (SIGHUP, through common/reload).
func (db *DB) Reload() {
	db.checkMu.Lock()
	db.lastCheck = time.Time{}
	db.checkMu.Unlock()
	db.maybeReload()
}

// load reads the file. The identity is taken from the open file so that it
// belongs to the bytes read even if the file is replaced meanwhile.
func (db *DB) load() (*table, reload.FileID, error) {
	f, err := os.Open(db.path)
	if err != nil {
		return nil, reload.FileID{}, fmt.Errorf("open users file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, reload.FileID{}, fmt.Errorf("stat users file %q: %w", db.path, err)
	}
	id := reload.IDOf(fi)
	t, err := parseFile(f, db.path, db.defaultDomain, db.log)
	return t, id, err
}

// current returns the users, first reloading the file if it is time to
// check and it changed.
func (db *DB) current() *table {
	db.maybeReload()
	return db.table.Load()
}

func (db *DB) maybeReload() {
	if !db.checkMu.TryLock() {
		return
	}
	defer db.checkMu.Unlock()
	now := time.Now()
	if now.Sub(db.lastCheck) < db.interval {
		return
	}
	db.lastCheck = now
	fi, err := os.Stat(db.path)
	if err != nil {
		if msg := err.Error(); msg != db.statErr {
			db.statErr = msg
			db.log.Error("users file unreadable, keeping the users loaded before", "file", db.path, "err", err)
		}
		return
	}
	db.statErr = ""
	if reload.IDOf(fi) == db.loaded {
		return
	}
	t, id, err := db.load()
	if err != nil {
		// Remember the broken version so that it is not parsed (and
		// logged) again every interval; the next change is tried.
		db.loaded = id
		db.log.Error("users file not reloaded, keeping the users loaded before", "file", db.path, "err", err)
		return
	}
	db.loaded = id
	db.table.Store(t)
	db.log.Info("users file reloaded", "file", db.path, "users", len(t.sorted))
}

// Authenticate checks a login name (address or bare local part) and
// password. It returns the canonical address on success, ErrFailed (same
// error whether the user is unknown or the password is wrong) otherwise.
func (db *DB) Authenticate(username, password string) (address string, err error) {
	t := db.current()
	pw := []byte(password)
	address, err = canonicalUser(username, db.defaultDomain)
	var e *entry
	if err == nil {
		e = t.users[address]
	}
	switch {
	case password == "":
		// An empty password never logs in, even if the file holds a hash
		// of the empty string.
		t.dummy.verify(pw)
		db.log.Debug("login failed", "user", username, "reason", "empty password")
	case e == nil:
		t.dummy.verify(pw)
		db.log.Debug("login failed", "user", username, "reason", "unknown user")
	case e.verify == nil:
		t.dummy.verify(pw)
		db.log.Debug("login failed", "user", address, "reason", e.problem.Error())
	case !e.verify.verify(pw):
		db.log.Debug("login failed", "user", address, "reason", "wrong password")
	case e.nologin:
		db.log.Debug("login failed", "user", address, "reason", nologinField)
	default:
		return e.address, nil
	}
	return "", ErrFailed
}

// Lookup returns the user with this address (case-insensitive).
func (db *DB) Lookup(address string) (User, bool) {
	e, ok := db.current().users[strings.ToLower(address)]
	if !ok {
		return User{}, false
	}
	return User{Address: e.address, Extra: maps.Clone(e.extra)}, true
}

// Users returns the addresses of all users, sorted.
func (db *DB) Users() []string {
	return slices.Clone(db.current().sorted)
}

// Canonical returns the address a login name stands for ("demo" ->
// "demo@example.test"), or "" if it cannot be one. It checks no password:
// the login brake (common/authguard) keys its exemption by it before the
// credentials are checked.
func (db *DB) Canonical(username string) string {
	a, err := canonicalUser(username, db.defaultDomain)
	if err != nil {
		return ""
	}
	return a
}
