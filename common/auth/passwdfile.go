package auth

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Field positions of Dovecot's passwd-file:
// user:password:uid:gid:gecos:home:shell:extra_fields.
const (
	fieldUser     = 0
	fieldPassword = 1
	fieldExtra    = 7
	fieldCount    = 8
)

// nologinField is Dovecot's extra field that refuses every login of a user.
const nologinField = "nologin"

// ParseError is a malformed line of the users file.
type ParseError struct {
	Path string
	Line int
	Err  error
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("%s:%d: %v", e.Path, e.Line, e.Err)
}

func (e *ParseError) Unwrap() error { return e.Err }

// entry is one user of the users file.
type entry struct {
	address string
	line    int
	scheme  string
	// verify is nil when the user can never log in: unknown scheme or
	// empty password (see problem).
	verify  verifier
	problem error
	nologin bool
	extra   map[string]string
}

// table is one loaded version of the users file. It is never changed once
// built, so readers use it without locks.
type table struct {
	users  map[string]*entry
	sorted []string
	// dummy is checked on every failed login that has no hash of its own to
	// check, so that those take as long as a wrong password (see doc.go). It
	// is the first user's hash that is not PLAIN, as that is the scheme most
	// users are likely to have.
	dummy verifier
}

// dummyHash is checked when the file has no usable user at all; it is the
// bcrypt hash of a random, forgotten string (mkpasswd -m bcrypt -R 10), at
// the cost HashPassword uses.
const dummyHash = "$2b$10$4MEO7etNCdM5DR/bhZa2I.lVDfKZ51/9gcmBFWJCl/kbEQLhpiGHO"

// parseLine parses one line of the users file that is neither blank nor a
// comment. An entry with a nil verify and a non-nil problem is valid but
// cannot log in; the caller logs the problem.
func parseLine(line, defaultDomain string) (*entry, error) {
	if !utf8.ValidString(line) {
		return nil, errors.New("not valid UTF-8")
	}
	fields := strings.SplitN(line, ":", fieldCount)
	if len(fields) <= fieldPassword {
		return nil, errors.New("missing ':' and password")
	}
	address, err := canonicalUser(fields[fieldUser], defaultDomain)
	if err != nil {
		return nil, err
	}
	e := &entry{address: address}
	if fields[fieldPassword] == "" {
		e.problem = errors.New("empty password")
	} else {
		e.scheme, e.verify, err = parsePassword(fields[fieldPassword])
		if errors.Is(err, ErrUnknownScheme) {
			e.problem = err
		} else if err != nil {
			return nil, err
		}
	}
	if len(fields) > fieldExtra {
		if e.extra, err = parseExtra(fields[fieldExtra]); err != nil {
			return nil, err
		}
		if _, ok := e.extra[nologinField]; ok {
			e.nologin = true
		}
	}
	return e, nil
}

// parseExtra parses Dovecot's extra fields: space-separated key=value pairs
// or bare keys, which get an empty value. A later key replaces an earlier
// one, as in Dovecot.
func parseExtra(s string) (map[string]string, error) {
	words := strings.Fields(s)
	if len(words) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(words))
	for _, w := range words {
		k, v, _ := strings.Cut(w, "=")
		if k == "" {
			return nil, fmt.Errorf("extra field %q has no name", w)
		}
		m[k] = v
	}
	return m, nil
}

// canonicalUser turns a user name from the file or from a login into the
// lower-case address it stands for, appending defaultDomain to a bare name.
func canonicalUser(name, defaultDomain string) (string, error) {
	if name == "" {
		return "", errors.New("empty user name")
	}
	for _, r := range name {
		if unicode.IsSpace(r) || unicode.IsControl(r) || r == ':' {
			return "", fmt.Errorf("user name %q contains a space, control character or ':'", name)
		}
	}
	switch strings.Count(name, "@") {
	case 0:
		if defaultDomain == "" {
			return "", fmt.Errorf("user name %q has no domain and there is no default domain", name)
		}
		name += "@" + defaultDomain
	case 1:
		if local, domain, _ := strings.Cut(name, "@"); local == "" || domain == "" {
			return "", fmt.Errorf("address %q has an empty local part or domain", name)
		}
	default:
		return "", fmt.Errorf("address %q has more than one '@'", name)
	}
	return strings.ToLower(name), nil
}

// parseFile reads a whole users file. It returns every malformed line in one
// error (each a *ParseError), and logs the users that cannot log in.
func parseFile(r io.Reader, path, defaultDomain string, log *slog.Logger) (*table, error) {
	t := &table{users: map[string]*entry{}}
	var errs []error
	sc := bufio.NewScanner(r)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSuffix(sc.Text(), "\r")
		if trimmed := strings.TrimSpace(line); trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		e, err := parseLine(line, defaultDomain)
		if err != nil {
			errs = append(errs, &ParseError{Path: path, Line: n, Err: err})
			continue
		}
		e.line = n
		if prev, ok := t.users[e.address]; ok {
			errs = append(errs, &ParseError{Path: path, Line: n,
				Err: fmt.Errorf("user %q already defined on line %d", e.address, prev.line)})
			continue
		}
		t.users[e.address] = e
		t.sorted = append(t.sorted, e.address)
		if e.verify == nil {
			log.Warn("user cannot log in", "file", path, "line", n, "user", e.address, "reason", e.problem.Error())
		} else if _, plain := e.verify.(plainVerifier); t.dummy == nil && !plain {
			t.dummy = e.verify
		}
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, &ParseError{Path: path, Line: n + 1, Err: err})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if t.dummy == nil {
		t.dummy = bcryptVerifier{hash: []byte(dummyHash)}
	}
	sort.Strings(t.sorted)
	return t, nil
}
