package smtpserver

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParsePath: the path and parameter parsers never panic, and an
// address they return is valid UTF-8 without control bytes (RFC 5321
// 4.1.2), since it goes into headers and logs.
func FuzzParsePath(f *testing.F) {
	for _, s := range []string{"<a@b.test>", "<>", "<postmaster>", "<\"a b\"@c> SIZE=10", "<@r:a@b> NOTIFY=NEVER",
		"<\"a\\\"b\"@c>", "a@b", "<j\u00f6rg@b>", "<a@b> ORCPT=utf-8;a\\x{E9}@b ENVID=a+2Bb RET=FULL"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, parse := range []func(string) (string, string, error){parseForwardPath, parseReversePath} {
			addr, rest, err := parse(s)
			if err != nil {
				continue
			}
			if !utf8.ValidString(addr) || strings.ContainsFunc(addr, func(r rune) bool { return r < ' ' || r == 0x7f }) {
				t.Fatalf("%q: address %q", s, addr)
			}
			if !strings.HasSuffix(s, rest) {
				t.Fatalf("%q: rest %q", s, rest)
			}
			params, err := parseParams(rest)
			if err != nil {
				continue
			}
			for _, p := range params {
				decodeXtext(p.value)
				parseNotify(p.value)
				parseORCPT(p.value)
			}
		}
	})
}
