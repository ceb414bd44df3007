package wire

import (
	"encoding/base64"
	"errors"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// RFC 3501 5.1.3: modified BASE64 uses "," for "/" and no padding.
var b64 = base64.NewEncoding("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,").WithPadding(base64.NoPadding)

var errUTF7 = errors.New("wire: invalid modified UTF-7")

func validUTF8(s string) bool { return utf8.ValidString(s) }

// DecodeUTF7 decodes a mailbox name in modified UTF-7 (RFC 3501 5.1.3).
// Names that a conforming encoder would not produce (8-bit octets, an
// empty or unterminated shift, encoded printable ASCII) are refused.
func DecodeUTF7(s string) (string, error) {
	if strings.IndexByte(s, '&') < 0 {
		for i := 0; i < len(s); i++ {
			if s[i] >= 0x80 {
				return "", errUTF7
			}
		}
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if ch >= 0x80 {
			return "", errUTF7
		}
		if ch != '&' {
			b.WriteByte(ch)
			continue
		}
		end := strings.IndexByte(s[i+1:], '-')
		if end < 0 {
			return "", errUTF7
		}
		enc := s[i+1 : i+1+end]
		i += end + 1
		if enc == "" {
			b.WriteByte('&')
			continue
		}
		raw, err := b64.DecodeString(enc)
		if err != nil || len(raw)%2 != 0 {
			return "", errUTF7
		}
		u := make([]uint16, len(raw)/2)
		for j := range u {
			u[j] = uint16(raw[2*j])<<8 | uint16(raw[2*j+1])
		}
		runes := utf16.Decode(u)
		for _, r := range runes {
			if r == utf8.RuneError || (r >= 0x20 && r <= 0x7e) {
				return "", errUTF7
			}
			b.WriteRune(r)
		}
	}
	return b.String(), nil
}

// EncodeUTF7 encodes a mailbox name in modified UTF-7.
func EncodeUTF7(s string) string {
	simple := true
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e || s[i] == '&' {
			simple = false
			break
		}
	}
	if simple {
		return s
	}
	var b strings.Builder
	var pending []rune
	flush := func() {
		if len(pending) == 0 {
			return
		}
		u := utf16.Encode(pending)
		raw := make([]byte, 2*len(u))
		for j, x := range u {
			raw[2*j], raw[2*j+1] = byte(x>>8), byte(x)
		}
		b.WriteByte('&')
		b.WriteString(b64.EncodeToString(raw))
		b.WriteByte('-')
		pending = pending[:0]
	}
	for _, r := range s {
		if r >= 0x20 && r <= 0x7e {
			flush()
			if r == '&' {
				b.WriteString("&-")
			} else {
				b.WriteRune(r)
			}
			continue
		}
		pending = append(pending, r)
	}
	flush()
	return b.String()
}
