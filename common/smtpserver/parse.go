package smtpserver

import (
	"errors"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-smtp"
)

var errSyntax = errors.New("smtpserver: syntax error")

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) < len(prefix) || !strings.EqualFold(s[:len(prefix)], prefix) {
		return "", false
	}
	return s[len(prefix):], true
}

// parseReversePath reads MAIL's argument (RFC 5321 4.1.2): "<>" for the
// null sender, or a path. It returns the address and what follows it.
func parseReversePath(s string) (addr, rest string, err error) {
	if strings.HasPrefix(s, "<>") {
		return "", s[2:], nil
	}
	return parsePath(s)
}

// parsePath reads "<" [source route ":"] mailbox ">" (RFC 5321 4.1.2); the
// source route is dropped (RFC 5321 C). A mailbox without the angle
// brackets is taken too, as many clients send it. A quoted local part is
// returned unquoted, as go-smtp's server did, so that sessions see the
// same addresses.
func parsePath(s string) (addr, rest string, err error) {
	bracket := strings.HasPrefix(s, "<")
	if bracket {
		s = s[1:]
		if strings.HasPrefix(s, "@") {
			i := strings.IndexByte(s, ':')
			if i < 0 {
				return "", "", errSyntax
			}
			s = s[i+1:]
		}
	}
	var b strings.Builder
	// local-part: quoted-string or dot-string.
	if strings.HasPrefix(s, `"`) {
		i := 1
		for ; ; i++ {
			if i >= len(s) {
				return "", "", errSyntax
			}
			if s[i] == '\\' {
				i++
				if i >= len(s) {
					return "", "", errSyntax
				}
			} else if s[i] == '"' {
				break
			}
			// RFC 5321 4.1.2: qtextSMTP and quoted-pairSMTP are
			// printable; a control byte is no more allowed inside
			// the quotes than outside.
			if s[i] < ' ' || s[i] == 0x7f {
				return "", "", errSyntax
			}
			b.WriteByte(s[i])
		}
		s = s[i+1:]
	} else {
		i := 0
		for ; i < len(s) && s[i] != '@'; i++ {
			if strings.IndexByte("()<>[]:;\\,\" \t", s[i]) >= 0 || s[i] < ' ' || s[i] == 0x7f {
				return "", "", errSyntax
			}
		}
		b.WriteString(s[:i])
		s = s[i:]
	}
	if b.Len() == 0 || !strings.HasPrefix(s, "@") {
		return "", "", errSyntax
	}
	s = s[1:]
	i := 0
	for i < len(s) && s[i] != ' ' && s[i] != '\t' && s[i] != '>' {
		if s[i] < ' ' || s[i] == 0x7f {
			return "", "", errSyntax // RFC 5321 4.1.2: no controls in a domain
		}
		i++
	}
	if i == 0 {
		return "", "", errSyntax
	}
	b.WriteByte('@')
	b.WriteString(s[:i])
	s = s[i:]
	if bracket {
		if !strings.HasPrefix(s, ">") {
			return "", "", errSyntax
		}
		s = s[1:]
	}
	if s != "" && s[0] != ' ' {
		return "", "", errSyntax
	}
	if !utf8.ValidString(b.String()) {
		// RFC 6531 3.3: a non-ASCII address is UTF-8.
		return "", "", errSyntax
	}
	return b.String(), s, nil
}

// parseForwardPath reads RCPT's argument: a path, or "<Postmaster>"
// without a domain, in any case, which every server must accept (RFC
// 5321 4.1.1.3 and 4.5.1). That one is returned as "postmaster", for the
// session to map to its primary domain.
func parseForwardPath(s string) (addr, rest string, err error) {
	const pm = "<postmaster>"
	if len(s) >= len(pm) && strings.EqualFold(s[:len(pm)], pm) && (len(s) == len(pm) || s[len(pm)] == ' ') {
		return "postmaster", s[len(pm):], nil
	}
	return parsePath(s)
}

// IsASCII reports whether s is all ASCII: an address that is not needs
// SMTPUTF8 (RFC 6531 3.4), here and on the next hop.
func IsASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// param is one ESMTP parameter (RFC 5321 4.1.2: esmtp-keyword ["=" value]).
type param struct{ key, value string }

// parseParams reads the parameters after a path; a keyword given twice is
// a syntax error.
func parseParams(s string) ([]param, error) {
	var out []param
	seen := map[string]bool{}
	for _, f := range strings.Fields(s) {
		k, v, hasValue := strings.Cut(f, "=")
		k = strings.ToUpper(k)
		// RFC 3461 4: xtext and RFC 5321's esmtp-value hold no "=".
		if k == "" || seen[k] || (hasValue && v == "") || strings.ContainsRune(v, '=') {
			return nil, errSyntax
		}
		for i := 0; i < len(k); i++ {
			if !(k[i] >= 'A' && k[i] <= 'Z' || k[i] >= '0' && k[i] <= '9' || k[i] == '-' && i > 0) {
				return nil, errSyntax
			}
		}
		seen[k] = true
		out = append(out, param{k, v})
	}
	return out, nil
}

// decodeXtext decodes RFC 3461 4's xtext ("+" and two upper-case hex
// digits for a special character).
func decodeXtext(s string) (string, error) {
	if !strings.Contains(s, "+") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '+' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", errSyntax
		}
		h := s[i+1 : i+3]
		if strings.ToUpper(h) != h {
			return "", errSyntax
		}
		n, err := strconv.ParseUint(h, 16, 8)
		if err != nil {
			return "", errSyntax
		}
		b.WriteByte(byte(n))
		i += 2
	}
	return b.String(), nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// parseNotify reads RFC 3461 4.1's NOTIFY: NEVER, or a list of SUCCESS,
// FAILURE and DELAY, each at most once.
func parseNotify(v string) ([]smtp.DSNNotify, bool) {
	var out []smtp.DSNNotify
	seen := map[smtp.DSNNotify]bool{}
	for _, f := range strings.Split(v, ",") {
		n := smtp.DSNNotify(strings.ToUpper(f))
		switch n {
		case smtp.DSNNotifyNever, smtp.DSNNotifySuccess, smtp.DSNNotifyFailure, smtp.DSNNotifyDelayed:
		default:
			return nil, false
		}
		if seen[n] {
			return nil, false
		}
		seen[n] = true
		out = append(out, n)
	}
	if seen[smtp.DSNNotifyNever] && len(out) > 1 {
		return nil, false
	}
	return out, true
}

// parseORCPT reads RFC 3461 4.2's ORCPT: addr-type ";" xtext, where
// addr-type is rfc822 or utf-8 (RFC 6533).
func parseORCPT(v string) (smtp.DSNAddressType, string, bool) {
	typ, addr, ok := strings.Cut(v, ";")
	if !ok || addr == "" {
		return "", "", false
	}
	t := smtp.DSNAddressType(strings.ToUpper(typ))
	switch t {
	case smtp.DSNAddressTypeRFC822:
		a, err := decodeXtext(addr)
		if err != nil || a == "" || !printableASCII(a) {
			return "", "", false
		}
		return t, a, true
	case smtp.DSNAddressTypeUTF8:
		a, err := decodeUTF8Xtext(addr)
		if err != nil || a == "" {
			return "", "", false
		}
		return t, a, true
	}
	return "", "", false
}

// decodeUTF8Xtext decodes RFC 6533 3's utf-8-addr-xtext and
// utf-8-addr-unitext: "\x{HEX}" for a code point; ASCII controls, space,
// "+", "=" and "\" only in that form.
func decodeUTF8Xtext(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch == '\\':
			if !strings.HasPrefix(s[i:], `\x{`) {
				return "", errSyntax
			}
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				return "", errSyntax
			}
			hex := s[i+3 : i+end]
			if len(hex) < 2 || len(hex) > 6 || strings.ToUpper(hex) != hex {
				return "", errSyntax
			}
			n, err := strconv.ParseUint(hex, 16, 21)
			if err != nil || n > 0x10FFFF || n >= 0xD800 && n <= 0xDFFF {
				return "", errSyntax
			}
			b.WriteRune(rune(n))
			i += end
		case ch <= ' ' || ch == '+' || ch == '=' || ch == 0x7f:
			return "", errSyntax
		default:
			b.WriteByte(ch)
		}
	}
	return b.String(), nil
}

// safeParam is a client's parameter keyword fit to echo in a reply.
func safeParam(k string) string {
	if len(k) > 20 {
		k = k[:20]
	}
	return k
}
