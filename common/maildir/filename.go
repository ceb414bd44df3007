package maildir

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	gomaildir "github.com/emersion/go-maildir"
)

// A Maildir file name is "KEY" in new/ and "KEY:2,FLAGS" in cur/. KEY (here
// "key") is "time.unique.host" with optional ",S=size" (and Dovecot's
// ",W=vsize") and never changes; ":2,FLAGS" (here "info") carries the flags:
// uppercase letters for the system flags, sorted, then lowercase letters a-z
// for keywords, as Dovecot does (letter i is line i of dovecot-keywords).

// splitName splits a file name into key and info (info starts with ':').
func splitName(name string) (key, info string) {
	if i := strings.IndexByte(name, ':'); i >= 0 {
		return name[:i], name[i:]
	}
	return name, ""
}

// sizeFromKey extracts the ",S=" size of a key, as Maildir++ and Dovecot
// write it.
func sizeFromKey(key string) (int64, bool) { return sizeField(key, ",S=") }

// wireSizeFromKey extracts Dovecot's ",W=" size (the size with CRLF line
// ends) of a key.
func wireSizeFromKey(key string) (int64, bool) { return sizeField(key, ",W=") }

func sizeField(key, field string) (int64, bool) {
	i := strings.Index(key, field)
	if i < 0 {
		return 0, false
	}
	s := key[i+3:]
	if j := strings.IndexByte(s, ','); j >= 0 {
		s = s[:j]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || s == "" || s[0] == '+' {
		return 0, false
	}
	return n, true
}

// System flag letters of the Maildir info, in the order they are written.
// P ("passed") has no IMAP system flag; it maps to the RFC 5788 keyword
// $Forwarded, as mutt and Dovecot users expect.
var sysLetters = []struct {
	letter byte
	flag   string
}{
	{byte(gomaildir.FlagDraft), `\Draft`},
	{byte(gomaildir.FlagFlagged), `\Flagged`},
	{byte(gomaildir.FlagPassed), `$Forwarded`},
	{byte(gomaildir.FlagReplied), `\Answered`},
	{byte(gomaildir.FlagSeen), `\Seen`},
	{byte(gomaildir.FlagTrashed), `\Deleted`},
}

// infoLetters returns the flag letters of an info (empty unless ":2,").
func infoLetters(info string) string {
	if !strings.HasPrefix(info, ":2,") {
		return ""
	}
	return info[3:]
}

// flagsFromInfo gives the IMAP system flags (plus $Forwarded) in info and the
// letter keywords resolved through kw (letter a = kw[0]).
func flagsFromInfo(info string, kw []string) (sys []string, letterKW []string) {
	for _, c := range []byte(infoLetters(info)) {
		switch {
		case c >= 'a' && c <= 'z':
			if i := int(c - 'a'); i < len(kw) && kw[i] != "" {
				letterKW = append(letterKW, kw[i])
			}
		default:
			for _, s := range sysLetters {
				if s.letter == c {
					sys = append(sys, s.flag)
				}
			}
		}
	}
	return sys, letterKW
}

// canonicalFlag normalises one IMAP flag. RFC 3501 2.3.2: flags are
// case-insensitive; system flags are returned in their canonical spelling.
// \Recent is reported as ok=false: RFC 3501 2.3.2 says clients cannot set it,
// and tern never stores it.
func canonicalFlag(f string) (string, bool, error) {
	if strings.HasPrefix(f, `\`) {
		for _, s := range sysLetters {
			if strings.EqualFold(s.flag, f) {
				return s.flag, true, nil
			}
		}
		if strings.EqualFold(f, `\Recent`) {
			return "", false, nil
		}
		return "", false, fmt.Errorf("%w: %q", ErrInvalidFlag, f)
	}
	if strings.EqualFold(f, "$Forwarded") {
		return "$Forwarded", true, nil
	}
	if !validKeyword(f) {
		return "", false, fmt.Errorf("%w: %q", ErrInvalidFlag, f)
	}
	return f, true, nil
}

// maxKeywordLen bounds a keyword so that an index line stays small.
const maxKeywordLen = 128

// validKeyword: RFC 3501 9 flag-keyword = atom: ASCII without
// atom-specials ( ) { SP CTL % * " \ ].
func validKeyword(k string) bool {
	if k == "" || len(k) > maxKeywordLen {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c <= 0x20 || c >= 0x7f || strings.IndexByte(`(){%*"\]`, c) >= 0 {
			return false
		}
	}
	return true
}

// normaliseFlags canonicalises, de-duplicates (case-insensitively) and sorts
// a flag list; \Recent is dropped.
func normaliseFlags(flags []string) ([]string, error) {
	out := make([]string, 0, len(flags))
	seen := make(map[string]bool, len(flags))
	for _, f := range flags {
		c, ok, err := canonicalFlag(f)
		if err != nil {
			return nil, err
		}
		if !ok || seen[strings.ToLower(c)] {
			continue
		}
		seen[strings.ToLower(c)] = true
		out = append(out, c)
	}
	sort.Strings(out)
	return out, nil
}

// splitFlags separates normalised flags into system-letter flags and keywords.
func splitFlags(flags []string) (letters []byte, keywords []string) {
	for _, f := range flags {
		found := false
		for _, s := range sysLetters {
			if s.flag == f {
				letters = append(letters, s.letter)
				found = true
			}
		}
		if !found {
			keywords = append(keywords, f)
		}
	}
	return letters, keywords
}

// buildInfo writes ":2," + sorted system letters + sorted keyword letters.
// Keywords without a letter are not in the name (they live in the index).
func buildInfo(flags []string, kw []string) string {
	letters, keywords := splitFlags(flags)
	for _, k := range keywords {
		if i := keywordIndex(kw, k); i >= 0 && i < maxKeywordLetters {
			letters = append(letters, byte('a'+i))
		}
	}
	sort.Slice(letters, func(i, j int) bool { return letters[i] < letters[j] })
	return ":2," + string(letters)
}

// keywordIndex finds k in the keyword list, case-insensitively.
func keywordIndex(kw []string, k string) int {
	for i, x := range kw {
		if strings.EqualFold(x, k) {
			return i
		}
	}
	return -1
}

// sameFlags compares two sorted flag lists.
func sameFlags(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
