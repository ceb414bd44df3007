// Package recipient resolves envelope recipients of local domains to the
// users who get a copy and the remote addresses the message must be relayed
// to. smtpd asks it at RCPT time (to refuse unknown users with 550 5.1.1),
// lmtpd to know where to deliver.
//
// # Sources
//
// Users come from the users file (common/auth). Aliases come from the
// aliases file, in aliases(5) syntax:
//
//	# comment
//	postmaster: root
//	root:       demo
//	team:       alice, demo,
//	            someone@remote.test       # a line starting with white space continues the entry
//	list:       :include:/etc/tern/list.txt
//	sales@example.test: alice
//	@example.test: demo                   # catch-all of the domain
//
// A key without a domain applies to every local domain; "name@domain" only
// to that domain; "@domain" catches every otherwise unknown address of the
// domain. Targets are users or aliases (a bare name is taken in the domain
// of the address being resolved), remote addresses, or ":include:FILE"
// (addresses separated by commas or new lines; a relative path is taken
// from the aliases file's directory). Deliveries to commands ("|cmd") and
// files ("/path") are not supported and are errors.
//
// # Resolution
//
// Local parts and domains are compared without regard to case. An address
// is looked up as an alias first, then as a user, then (for "user+tag")
// again without the "+tag" (the tag becomes the Folder of the local
// targets), and last as the domain's catch-all. An alias may name itself
// among its targets ("demo: demo, archive"): that target is then the user,
// not the alias again. Any other cycle ends where it closes, and nobody
// gets more than one copy. An address that resolves to no one is unknown.
//
// # Reloading
//
// The aliases file and every file it includes are stat'ed at most once per
// second, on Resolve; when any changed, the aliases are read again. A file
// with errors is logged and the previous aliases stay in force until the
// next change.
package recipient

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"tern/common/auth"
	"tern/common/config"
	"tern/common/reload"
)

// Errors of Resolve.
var (
	// ErrUnknown is a local-domain address that matches no user, alias or
	// catch-all (RFC 3463 5.1.1, bad destination mailbox address).
	ErrUnknown = errors.New("recipient: unknown user")
	// ErrNotLocal is an address of a domain that is not local.
	ErrNotLocal = errors.New("recipient: domain is not local")
)

// maxAliasDepth bounds how many aliases one resolution may pass through, a
// last defence beside cycle detection (sendmail's MAXRCRSN is 10).
const maxAliasDepth = 20

// reloadInterval is how often, at most, the aliases files are stat'ed.
const reloadInterval = time.Second

// Target is a local delivery.
type Target struct {
	// User is the canonical user address from the users file.
	User string
	// Folder is the folder from a "+tag" address, "" for INBOX. lmtpd uses
	// it only when the folder exists.
	Folder string
}

// Result is the expansion of one envelope recipient.
type Result struct {
	// Local are the users who get a copy, each once, in the order found.
	Local []Target
	// Remote are addresses to relay to, each once.
	Remote []string
}

// Resolver resolves recipients. It is safe for concurrent use.
type Resolver struct {
	cfg      *config.Config
	users    *auth.DB
	log      *slog.Logger
	path     string
	interval time.Duration

	mu        sync.Mutex
	tab       *table
	lastCheck time.Time
	tried     map[string]reload.FileID // identities of the last attempted load
}

// New builds a resolver over the users DB and the aliases file named by
// cfg.Aliases. A missing aliases file means no aliases; a malformed one is
// an error listing every problem.
func New(cfg *config.Config, users *auth.DB, log *slog.Logger) (*Resolver, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Resolver{cfg: cfg, users: users, log: log, path: cfg.Aliases, interval: reloadInterval}
	if r.path == "" {
		r.tab = &table{aliases: map[string][]target{}}
		return r, nil
	}
	t, err := loadFile(r.path)
	if err != nil {
		return nil, err
	}
	r.tab, r.tried, r.lastCheck = t, t.files, time.Now()
	reload.Register(r, (*Resolver).Reload)
	return r, nil
}

// Reload re-reads the aliases now if a file changed, rather than at the
// next check (SIGHUP, through common/reload).
func (r *Resolver) Reload() {
	r.mu.Lock()
	r.lastCheck = time.Time{}
	r.mu.Unlock()
	r.current()
}

// current returns the aliases in force, reloading them first when a file
// changed and the last check is older than the interval.
func (r *Resolver) current() *table {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.path == "" || time.Since(r.lastCheck) < r.interval {
		return r.tab
	}
	r.lastCheck = time.Now()
	if !r.changed() {
		return r.tab
	}
	t, err := loadFile(r.path)
	if err != nil {
		// Remember what was tried so that the same broken files are not
		// re-read and re-logged every second.
		r.tried = r.currentIDs()
		r.log.Error("aliases not reloaded, keeping the previous ones", "file", r.path, "err", err)
		return r.tab
	}
	r.tab, r.tried = t, t.files
	r.log.Info("aliases reloaded", "file", r.path, "aliases", len(t.aliases))
	return r.tab
}

// changed reports whether any file of the last attempted load changed.
func (r *Resolver) changed() bool {
	for p, id := range r.tried {
		if reload.StatID(p) != id {
			return true
		}
	}
	return false
}

func (r *Resolver) currentIDs() map[string]reload.FileID {
	ids := make(map[string]reload.FileID, len(r.tried))
	for p := range r.tried {
		ids[p] = reload.StatID(p)
	}
	ids[r.path] = reload.StatID(r.path)
	return ids
}

// Resolve expands one envelope recipient. It returns ErrNotLocal for a
// domain that is not local and ErrUnknown (wrapped, with detail) for a
// local address that resolves to no one.
func (r *Resolver) Resolve(addr string) (Result, error) {
	local, domain, err := r.split(addr)
	if err != nil {
		return Result{}, err
	}
	if !r.cfg.IsLocalDomain(domain) {
		return Result{}, fmt.Errorf("%w: %q", ErrNotLocal, addr)
	}
	x := expansion{r: r, tab: r.current(), active: map[string]bool{}, users: map[string]bool{}, remote: map[string]bool{}}
	found := x.address(local, domain, "", 0)
	if !found {
		return Result{}, fmt.Errorf("%w: %q", ErrUnknown, addr)
	}
	if len(x.res.Local) == 0 && len(x.res.Remote) == 0 {
		return Result{}, fmt.Errorf("%w: %q: its aliases lead to no one", ErrUnknown, addr)
	}
	return x.res, nil
}

// split parses an envelope address. RFC 5321 4.5.1: the bare "postmaster"
// must be accepted, and means the postmaster of the primary domain.
func (r *Resolver) split(addr string) (local, domain string, err error) {
	addr = strings.TrimSpace(addr)
	if len(addr) >= 2 && addr[0] == '<' && addr[len(addr)-1] == '>' {
		addr = addr[1 : len(addr)-1]
	}
	local, domain, ok := cutLastAt(addr)
	if !ok {
		if strings.EqualFold(addr, "postmaster") && len(r.cfg.Domains) > 0 {
			return "postmaster", r.cfg.Domains[0], nil
		}
		return "", "", fmt.Errorf("%w: %q has no domain", ErrUnknown, addr)
	}
	if local == "" || domain == "" || strings.IndexFunc(addr, badAddrRune) >= 0 {
		return "", "", fmt.Errorf("%w: %q is not an address", ErrUnknown, addr)
	}
	return strings.ToLower(local), strings.ToLower(strings.TrimSuffix(domain, ".")), nil
}

// expansion is the state of one Resolve.
type expansion struct {
	r      *Resolver
	tab    *table
	active map[string]bool // alias keys being expanded, for cycle detection
	users  map[string]bool
	remote map[string]bool
	res    Result
}

// address expands local@domain (lower case, domain local) and reports
// whether it matched anything at all.
func (x *expansion) address(local, domain, folder string, depth int) bool {
	if depth > maxAliasDepth {
		x.r.log.Warn("alias expansion too deep, stopped", "address", local+"@"+domain)
		return true
	}
	if x.alias(local, domain, folder, depth) || x.user(local+"@"+domain, folder) {
		return true
	}
	if base, tag, ok := strings.Cut(local, "+"); ok && base != "" {
		if folder == "" {
			folder = tag
		}
		if x.alias(base, domain, folder, depth) || x.user(base+"@"+domain, folder) {
			return true
		}
	}
	if key := "@" + domain; !x.active[key] {
		if ts, ok := x.tab.aliases[key]; ok {
			x.expand(key, ts, domain, folder, depth)
			return true
		}
	}
	return false
}

// alias expands local@domain if it is an alias and not already being
// expanded (a cycle). A cycle counts as a match: the address exists, its
// copies are being delivered further up.
func (x *expansion) alias(local, domain, folder string, depth int) bool {
	for _, key := range []string{local + "@" + domain, local} {
		ts, ok := x.tab.aliases[key]
		if !ok {
			continue
		}
		if x.active[key] {
			// Traditional (sendmail) behaviour: an alias that names
			// itself delivers to the user of that name, if there is one.
			if x.user(local+"@"+domain, folder) {
				return true
			}
			x.r.log.Debug("alias loop broken", "alias", key)
			return true
		}
		x.expand(key, ts, domain, folder, depth)
		return true
	}
	return false
}

func (x *expansion) expand(key string, ts []target, domain, folder string, depth int) {
	x.active[key] = true
	defer delete(x.active, key)
	for _, t := range ts {
		switch t.kind {
		case targetName:
			if !x.address(t.value, domain, folder, depth+1) {
				x.r.log.Warn("alias target is unknown", "alias", key, "target", t.value+"@"+domain)
			}
		case targetAddress:
			l, d, _ := cutLastAt(t.value)
			if !x.r.cfg.IsLocalDomain(d) {
				x.addRemote(t.value)
				continue
			}
			if !x.address(strings.ToLower(l), d, folder, depth+1) {
				x.r.log.Warn("alias target is unknown", "alias", key, "target", t.value)
			}
		}
	}
}

// user adds the user with this address, if there is one.
func (x *expansion) user(addr, folder string) bool {
	if x.r.users == nil {
		return false
	}
	u, ok := x.r.users.Lookup(addr)
	if !ok {
		return false
	}
	if !x.users[u.Address] {
		x.users[u.Address] = true
		x.res.Local = append(x.res.Local, Target{User: u.Address, Folder: folder})
	}
	return true
}

func (x *expansion) addRemote(addr string) {
	key := strings.ToLower(addr)
	if x.remote[key] {
		return
	}
	x.remote[key] = true
	x.res.Remote = append(x.res.Remote, addr)
}
