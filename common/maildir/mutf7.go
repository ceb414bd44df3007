package maildir

import (
	"errors"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// RFC 3501 5.1.3: mailbox names are sent in "modified UTF-7": printable
// US-ASCII (0x20-0x7e) stands for itself except "&", which is written "&-";
// any other run of characters is UTF-16BE, base64-encoded with "," instead of
// "/", without padding, between "&" and "-". Folder directories use the same
// encoding on disk, as Dovecot does for Maildir++.

const mutf7Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,"

var mutf7Decode = func() (t [256]int8) {
	for i := range t {
		t[i] = -1
	}
	for i := 0; i < len(mutf7Alphabet); i++ {
		t[mutf7Alphabet[i]] = int8(i)
	}
	return
}()

// errMUTF7 is returned for a string that is not canonical modified UTF-7.
var errMUTF7 = errors.New("maildir: invalid modified UTF-7")

func isPrintableASCII(c rune) bool { return c >= 0x20 && c <= 0x7e }

// EncodeMUTF7 encodes a UTF-8 string in modified UTF-7 (RFC 3501 5.1.3).
// Invalid UTF-8 bytes are encoded as U+FFFD.
func EncodeMUTF7(s string) string {
	var b strings.Builder
	var run []uint16
	flush := func() {
		if len(run) == 0 {
			return
		}
		b.WriteByte('&')
		var acc uint32
		bits := 0
		for _, u := range run {
			acc = acc<<16 | uint32(u)
			bits += 16
			for bits >= 6 {
				bits -= 6
				b.WriteByte(mutf7Alphabet[(acc>>uint(bits))&0x3f])
			}
		}
		if bits > 0 {
			b.WriteByte(mutf7Alphabet[(acc<<uint(6-bits))&0x3f])
		}
		b.WriteByte('-')
		run = run[:0]
	}
	for _, r := range s {
		if isPrintableASCII(r) {
			flush()
			if r == '&' {
				b.WriteString("&-")
			} else {
				b.WriteRune(r)
			}
			continue
		}
		run = utf16.AppendRune(run, r)
	}
	flush()
	return b.String()
}

// DecodeMUTF7 decodes a modified UTF-7 string into UTF-8. It accepts only the
// canonical form that EncodeMUTF7 produces: printable ASCII encoded in base64,
// adjacent encoded runs, stray bits and unpaired surrogates are refused, so
// that one name has one encoding and cannot alias another.
func DecodeMUTF7(s string) (string, error) {
	var b strings.Builder
	prevEncoded := false
	for i := 0; i < len(s); {
		c := s[i]
		if c != '&' {
			if !isPrintableASCII(rune(c)) {
				return "", errMUTF7
			}
			b.WriteByte(c)
			i++
			prevEncoded = false
			continue
		}
		j := strings.IndexByte(s[i+1:], '-')
		if j < 0 {
			return "", errMUTF7
		}
		enc := s[i+1 : i+1+j]
		i += j + 2
		if enc == "" {
			b.WriteByte('&')
			prevEncoded = false
			continue
		}
		if prevEncoded {
			return "", errMUTF7
		}
		prevEncoded = true
		var acc uint32
		bits := 0
		var units []uint16
		for k := 0; k < len(enc); k++ {
			v := mutf7Decode[enc[k]]
			if v < 0 {
				return "", errMUTF7
			}
			acc = acc<<6 | uint32(v)
			bits += 6
			if bits >= 16 {
				bits -= 16
				units = append(units, uint16(acc>>uint(bits)))
				acc &= 1<<uint(bits) - 1
			}
		}
		// Leftover bits must be fewer than 6 and zero.
		if bits >= 6 || acc != 0 || len(units) == 0 {
			return "", errMUTF7
		}
		for k := 0; k < len(units); k++ {
			u := rune(units[k])
			switch {
			case utf16.IsSurrogate(u):
				if u >= 0xdc00 || k+1 >= len(units) {
					return "", errMUTF7
				}
				r := utf16.DecodeRune(u, rune(units[k+1]))
				if r == utf8.RuneError {
					return "", errMUTF7
				}
				b.WriteRune(r)
				k++
			case isPrintableASCII(u):
				return "", errMUTF7
			default:
				b.WriteRune(u)
			}
		}
	}
	return b.String(), nil
}
