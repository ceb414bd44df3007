package maildir

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Dovecot's files beside a Maildir, read for migration and (for
// dovecot-keywords) shared so that keyword letters mean the same to both.
const (
	dovecotUIDList  = "dovecot-uidlist"
	dovecotKeywords = "dovecot-keywords"
	// maxKeywordLetters: Maildir keyword letters are a..z.
	maxKeywordLetters = 26
)

// uidList is a parsed dovecot-uidlist.
type uidList struct {
	uidValidity uint32
	uidNext     uint32
	uids        map[string]uint32 // key (file name base) -> UID
}

// parseUIDList parses dovecot-uidlist versions 1 and 3:
//
//	3 V<uidvalidity> N<nextuid> [G<guid> ...]
//	<uid> [<ext>...] :<filename-base>
//
//	1 <uidvalidity> <nextuid>
//	<uid> <filename-base>
func parseUIDList(data []byte) (*uidList, error) {
	lines := strings.Split(string(data), "\n")
	hdr := strings.Fields(lines[0])
	if len(hdr) == 0 {
		return nil, errors.New("empty dovecot-uidlist")
	}
	u := &uidList{uids: make(map[string]uint32)}
	version := hdr[0]
	switch version {
	case "1":
		if len(hdr) < 3 {
			return nil, fmt.Errorf("bad v1 header %q", lines[0])
		}
		v, err1 := strconv.ParseUint(hdr[1], 10, 32)
		n, err2 := strconv.ParseUint(hdr[2], 10, 32)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("bad v1 header %q", lines[0])
		}
		u.uidValidity, u.uidNext = uint32(v), uint32(n)
	case "2", "3":
		for _, f := range hdr[1:] {
			if len(f) < 2 {
				continue
			}
			switch f[0] {
			case 'V', 'N':
				v, err := strconv.ParseUint(f[1:], 10, 32)
				if err != nil {
					return nil, fmt.Errorf("bad header field %q", f)
				}
				if f[0] == 'V' {
					u.uidValidity = uint32(v)
				} else {
					u.uidNext = uint32(v)
				}
			}
		}
	default:
		return nil, fmt.Errorf("unsupported dovecot-uidlist version %q", version)
	}
	if u.uidValidity == 0 {
		return nil, errors.New("dovecot-uidlist without UIDVALIDITY")
	}
	for i, line := range lines[1:] {
		if line == "" {
			continue
		}
		sp := strings.IndexByte(line, ' ')
		if sp < 0 {
			return nil, fmt.Errorf("line %d: no file name", i+2)
		}
		uid, err := strconv.ParseUint(line[:sp], 10, 32)
		if err != nil || uid == 0 {
			return nil, fmt.Errorf("line %d: bad uid", i+2)
		}
		rest := line[sp+1:]
		var name string
		if version == "1" {
			name = rest
		} else {
			c := strings.IndexByte(rest, ':')
			if c < 0 {
				return nil, fmt.Errorf("line %d: no ':'", i+2)
			}
			name = rest[c+1:]
		}
		key, _ := splitName(name)
		if !validKey(key) {
			return nil, fmt.Errorf("line %d: bad file name", i+2)
		}
		u.uids[key] = uint32(uid)
		if uint32(uid) >= u.uidNext {
			u.uidNext = uint32(uid) + 1
		}
	}
	return u, nil
}

// readUIDList reads dir/dovecot-uidlist; nil without error when absent.
func readUIDList(dir string) (*uidList, error) {
	p := filepath.Join(dir, dovecotUIDList)
	data, err := readFileNoFollow(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	u, err := parseUIDList(data)
	if err != nil {
		return nil, fmt.Errorf("parse %q: %w", p, err)
	}
	return u, nil
}

// parseKeywords parses dovecot-keywords: "<index> <keyword>" per line; the
// index is the letter (0 = a). Unknown or out-of-range lines are skipped, as
// Dovecot does.
func parseKeywords(data []byte) []string {
	var kw []string
	for _, line := range strings.Split(string(data), "\n") {
		sp := strings.IndexByte(line, ' ')
		if sp < 0 {
			continue
		}
		i, err := strconv.Atoi(line[:sp])
		k := line[sp+1:]
		if err != nil || i < 0 || i >= maxKeywordLetters || !validKeyword(k) || keywordIndex(kw, k) >= 0 {
			continue
		}
		for len(kw) <= i {
			kw = append(kw, "")
		}
		kw[i] = k
	}
	return kw
}

func marshalKeywords(kw []string) []byte {
	var b strings.Builder
	for i, k := range kw {
		if k != "" {
			fmt.Fprintf(&b, "%d %s\n", i, k)
		}
	}
	return []byte(b.String())
}

// readKeywords reads dir/dovecot-keywords (none when absent).
func readKeywords(dir string) ([]string, error) {
	data, err := readFileNoFollow(filepath.Join(dir, dovecotKeywords))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return parseKeywords(data), nil
}

// addKeywords gives letters to the keywords that have none, while letters
// remain; it reports whether kw changed. Keywords beyond 26 stay in the
// index only.
func addKeywords(kw []string, add []string) ([]string, bool) {
	changed := false
	for _, k := range add {
		if keywordIndex(kw, k) >= 0 {
			continue
		}
		if k == "$Forwarded" {
			continue // carried by the P letter
		}
		slot := -1
		for i, x := range kw {
			if x == "" {
				slot = i
				break
			}
		}
		switch {
		case slot >= 0:
			kw[slot] = k
		case len(kw) < maxKeywordLetters:
			kw = append(kw, k)
		default:
			continue
		}
		changed = true
	}
	return kw, changed
}

// readFileNoFollow reads a regular file without following a final symlink.
func readFileNoFollow(p string) ([]byte, error) {
	f, err := openNoFollow(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat %q: %w", p, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%q is not a regular file", p)
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("read %q: %w", p, err)
	}
	return data, nil
}

// openNoFollow opens a file for reading, refusing a symlink as the last
// component (O_NOFOLLOW): a link planted in the tree is not followed.
//
// It is open(2) and os.NewFile rather than os.OpenFile, which tries each
// descriptor in the network poller (three more system calls, all wasted on
// a regular file); message files are opened for every FETCH of a body.
func openNoFollow(p string) (*os.File, error) {
	for {
		fd, err := unix.Open(p, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: p, Err: err}
		}
		return os.NewFile(uintptr(fd), p), nil
	}
}
