package recipient

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unicode"

	"tern/common/reload"
)

// maxIncludeDepth bounds how deeply :include: files may include other
// files, so that a cycle of includes (or a very deep chain) is reported
// rather than followed.
const maxIncludeDepth = 8

// targetKind says what a target of an alias names.
type targetKind int

const (
	// targetName is a bare name: a user or alias of the domain being
	// resolved.
	targetName targetKind = iota
	// targetAddress is a full address, local or remote.
	targetAddress
)

// target is one right-hand side element of an alias, after :include: files
// were expanded.
type target struct {
	kind  targetKind
	value string // lower-case for names and local parts; see normTarget
}

// table is one loaded aliases file.
type table struct {
	// aliases maps a key to its targets. Keys are lower case and are
	// "name" (every local domain), "name@domain" or "@domain" (catch-all).
	aliases map[string][]target
	// files are the paths read (the aliases file and every :include:),
	// with their identity, so that a change to any of them triggers a
	// reload.
	files map[string]reload.FileID
}

// problem is one error of an aliases or include file.
type problem struct {
	file string
	line int
	msg  string
}

func (p problem) String() string {
	if p.line > 0 {
		return fmt.Sprintf("%s:%d: %s", p.file, p.line, p.msg)
	}
	return fmt.Sprintf("%s: %s", p.file, p.msg)
}

// ParseError lists every problem found in an aliases file and the files it
// includes, one "file:line: message" each.
type ParseError struct {
	Problems []string
}

func (e *ParseError) Error() string {
	return strings.Join(e.Problems, "\n")
}

// CheckFile parses the aliases file at path, with its :include: files, and
// returns every problem with its file and line (a *ParseError), or nil. A
// missing file is an error here, unlike in New, because an administrator
// who checks a file means it to exist.
func CheckFile(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read aliases %q: %w", path, err)
	}
	_, err = parseAliases(path, data, os.ReadFile)
	return err
}

// loadFile reads and parses the aliases file at path. A missing file is an
// empty table.
func loadFile(path string) (*table, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return &table{aliases: map[string][]target{}, files: map[string]reload.FileID{path: {}}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open aliases %q: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat aliases %q: %w", path, err)
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(f); err != nil {
		return nil, fmt.Errorf("read aliases %q: %w", path, err)
	}
	ids := map[string]reload.FileID{path: reload.IDOf(fi)}
	read := func(p string) ([]byte, error) {
		g, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		defer g.Close()
		if fi, err := g.Stat(); err == nil {
			ids[p] = reload.IDOf(fi)
		}
		var b bytes.Buffer
		_, err = b.ReadFrom(g)
		return b.Bytes(), err
	}
	t, err := parseAliases(path, buf.Bytes(), read)
	if err != nil {
		return nil, err
	}
	t.files = ids
	return t, nil
}

// logicalLine is an entry of the aliases file with its first line number.
type logicalLine struct {
	line int
	text string
}

// splitLogical joins continuation lines (aliases(5): a line that starts
// with white space continues the previous one) and drops comments and blank
// lines.
func splitLogical(data []byte) []logicalLine {
	var out []logicalLine
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), len(data)+1)
	n := 0
	for sc.Scan() {
		n++
		l := strings.TrimRight(sc.Text(), "\r")
		trimmed := strings.TrimSpace(l)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		if (l[0] == ' ' || l[0] == '\t') && len(out) > 0 {
			out[len(out)-1].text += " " + trimmed
			continue
		}
		out = append(out, logicalLine{line: n, text: l})
	}
	return out
}

// parseAliases parses an aliases file. read loads :include: files; their
// relative paths are taken from the directory of the aliases file.
func parseAliases(name string, data []byte, read func(string) ([]byte, error)) (*table, error) {
	t := &table{aliases: map[string][]target{}}
	var probs []problem
	seen := map[string]int{}
	for _, ll := range splitLogical(data) {
		bad := func(format string, args ...any) {
			probs = append(probs, problem{file: name, line: ll.line, msg: fmt.Sprintf(format, args...)})
		}
		if ll.text[0] == ' ' || ll.text[0] == '\t' {
			bad("continuation line without an alias before it")
			continue
		}
		key, rest, err := splitKey(ll.text)
		if err != nil {
			bad("%v", err)
			continue
		}
		if first, dup := seen[key]; dup {
			bad("alias %q already defined on line %d", key, first)
			continue
		}
		seen[key] = ll.line
		items, err := splitList(rest)
		if err != nil {
			bad("alias %q: %v", key, err)
			continue
		}
		var targets []target
		for _, item := range items {
			if inc, ok := cutPrefixFold(item, ":include:"); ok {
				ts, ps := readInclude(name, resolvePath(name, inc), read, 1)
				for _, p := range ps {
					if p.file == "" {
						p.file, p.line = name, ll.line
					}
					probs = append(probs, p)
				}
				targets = append(targets, ts...)
				continue
			}
			tg, err := parseTarget(item)
			if err != nil {
				bad("alias %q: %v", key, err)
				continue
			}
			targets = append(targets, tg)
		}
		if len(targets) == 0 && !hasProblemAt(probs, name, ll.line) {
			bad("alias %q has no targets", key)
			continue
		}
		t.aliases[key] = targets
	}
	if len(probs) > 0 {
		e := &ParseError{}
		for _, p := range probs {
			e.Problems = append(e.Problems, p.String())
		}
		return nil, e
	}
	return t, nil
}

func hasProblemAt(ps []problem, file string, line int) bool {
	for _, p := range ps {
		if p.file == file && p.line == line {
			return true
		}
	}
	return false
}

// readInclude reads an :include: file: addresses or names separated by
// commas or new lines, '#' comment lines. Includes may nest up to
// maxIncludeDepth. A problem with an empty file means "the including line".
func readInclude(from, path string, read func(string) ([]byte, error), depth int) ([]target, []problem) {
	if depth > maxIncludeDepth {
		return nil, []problem{{msg: fmt.Sprintf(":include:%s: includes nested deeper than %d (a cycle?)", path, maxIncludeDepth)}}
	}
	data, err := read(path)
	if err != nil {
		return nil, []problem{{msg: fmt.Sprintf(":include:%s: %v", path, err)}}
	}
	var targets []target
	var probs []problem
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), len(data)+1)
	n := 0
	for sc.Scan() {
		n++
		l := strings.TrimSpace(strings.TrimRight(sc.Text(), "\r"))
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		items, err := splitList(l)
		if err != nil {
			probs = append(probs, problem{file: path, line: n, msg: err.Error()})
			continue
		}
		for _, item := range items {
			if inc, ok := cutPrefixFold(item, ":include:"); ok {
				ts, ps := readInclude(path, resolvePath(path, inc), read, depth+1)
				for _, p := range ps {
					if p.file == "" {
						p.file, p.line = path, n
					}
					probs = append(probs, p)
				}
				targets = append(targets, ts...)
				continue
			}
			tg, err := parseTarget(item)
			if err != nil {
				probs = append(probs, problem{file: path, line: n, msg: err.Error()})
				continue
			}
			targets = append(targets, tg)
		}
	}
	return targets, probs
}

// resolvePath makes an include path relative to the including file's
// directory.
func resolvePath(from, p string) string {
	p = strings.TrimSpace(p)
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(filepath.Dir(from), p)
}

// splitKey splits "name: targets" and normalises the name.
func splitKey(l string) (key, rest string, err error) {
	var name string
	quoted := strings.HasPrefix(l, `"`)
	if quoted {
		// Sendmail allows a quoted name, for names with spaces.
		end := strings.Index(l[1:], `"`)
		if end < 0 {
			return "", "", errors.New("unterminated quoted name")
		}
		name = l[1 : end+1]
		if strings.IndexFunc(name, unicode.IsControl) >= 0 {
			return "", "", fmt.Errorf("alias name %q has control characters", name)
		}
		rest = strings.TrimLeft(l[end+2:], " \t")
		if !strings.HasPrefix(rest, ":") {
			return "", "", errors.New(`want "name: target, ..."`)
		}
		rest = rest[1:]
	} else {
		var ok bool
		name, rest, ok = strings.Cut(l, ":")
		if !ok {
			return "", "", errors.New(`want "name: target, ..."`)
		}
		name = strings.TrimSpace(name)
	}
	if name == "" {
		return "", "", errors.New("empty alias name")
	}
	if !quoted && strings.IndexFunc(name, badAddrRune) >= 0 {
		return "", "", fmt.Errorf("alias name %q has white space or control characters", name)
	}
	local, domain, hasAt := cutLastAt(name)
	if hasAt && (domain == "" || strings.Contains(local, "@")) {
		return "", "", fmt.Errorf("alias name %q: want name, name@domain or @domain", name)
	}
	return strings.ToLower(name), rest, nil
}

// splitList splits a list of targets separated by commas or white space
// (continuation lines are joined with a space), honouring double quotes,
// and drops empty items.
func splitList(s string) ([]string, error) {
	var out []string
	var cur strings.Builder
	quoted := false
	flush := func() {
		if v := cur.String(); v != "" {
			out = append(out, v)
		}
		cur.Reset()
	}
	for _, r := range s {
		switch {
		case r == '"':
			quoted = !quoted
			cur.WriteRune(r)
		case (r == ',' || r == ' ' || r == '\t') && !quoted:
			flush()
		default:
			cur.WriteRune(r)
		}
	}
	if quoted {
		return nil, fmt.Errorf("unterminated quote in %q", strings.TrimSpace(s))
	}
	flush()
	return out, nil
}

// parseTarget parses one right-hand side element other than :include:.
func parseTarget(item string) (target, error) {
	v := item
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	if len(v) >= 2 && v[0] == '<' && v[len(v)-1] == '>' {
		v = v[1 : len(v)-1]
	}
	v = strings.TrimSpace(v)
	switch {
	case v == "":
		return target{}, fmt.Errorf("empty target %q", item)
	case v[0] == '|':
		return target{}, fmt.Errorf("target %q: delivery to a command is not supported", item)
	case v[0] == '/' || v[0] == '.':
		return target{}, fmt.Errorf("target %q: delivery to a file is not supported", item)
	case strings.IndexFunc(v, badAddrRune) >= 0:
		return target{}, fmt.Errorf("target %q has white space or control characters", item)
	case strings.ContainsAny(v, `,"<>`):
		// Quoted local parts with these are legal in RFC 5321 but are
		// not worth the ambiguity in an aliases file.
		return target{}, fmt.Errorf("target %q has quotes, commas or angle brackets inside", item)
	}
	local, domain, hasAt := cutLastAt(v)
	if !hasAt {
		return target{kind: targetName, value: strings.ToLower(v)}, nil
	}
	if local == "" || domain == "" {
		return target{}, fmt.Errorf("target %q is not an address", item)
	}
	return target{kind: targetAddress, value: local + "@" + strings.ToLower(domain)}, nil
}

func badAddrRune(r rune) bool {
	return unicode.IsSpace(r) || unicode.IsControl(r) || r == unicode.ReplacementChar
}

// cutLastAt splits an address at its last '@' (a quoted local part may
// contain '@').
func cutLastAt(s string) (local, domain string, ok bool) {
	i := strings.LastIndexByte(s, '@')
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+1:], true
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return s, false
}
