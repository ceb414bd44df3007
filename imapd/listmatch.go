package main

import "strings"

// matchList says whether the mailbox name matches a LIST reference and
// pattern (RFC 9051 6.3.9): "*" matches anything, "%" anything but the
// hierarchy delimiter. A pattern starting with the delimiter is absolute
// and ignores the reference. The match is a table walk, linear in the
// product of the lengths, so no pattern can make it slow.
func matchList(name string, delim rune, ref, pattern string) bool {
	d := string(delim)
	if strings.HasPrefix(pattern, d) {
		ref, pattern = "", pattern[len(d):]
	}
	if ref != "" {
		if !strings.HasSuffix(ref, d) && !strings.HasPrefix(pattern, d) {
			ref += d
		}
		pattern = ref + pattern
	}
	if strings.EqualFold(pattern, "INBOX") && strings.EqualFold(name, "INBOX") {
		return true
	}
	n, p := []rune(name), []rune(pattern)
	// cur[j]: the pattern's first i runes match the name's first j.
	cur := make([]bool, len(n)+1)
	next := make([]bool, len(n)+1)
	cur[0] = true
	for i := range p {
		for j := range next {
			next[j] = false
		}
		switch p[i] {
		case '*', '%':
			run := false
			for j := 0; j <= len(n); j++ {
				if cur[j] {
					run = true
				} else if run && j > 0 && p[i] == '%' && n[j-1] == delim {
					run = false
				}
				next[j] = run
			}
		default:
			for j := 1; j <= len(n); j++ {
				next[j] = cur[j-1] && n[j-1] == p[i]
			}
		}
		cur, next = next, cur
	}
	return cur[len(n)]
}
