// Package mtasts is SMTP MTA Strict Transport Security (RFC 8461): the
// policy document and its parser and writer, the _mta-sts TXT record, the
// MX pattern matching, the fetch of a policy over HTTPS, and the on-disk
// cache that keeps policies across restarts. smtpd's queue runner uses it
// to decide how a domain's MX hosts must be reached; a web server serving
// a domain's own policy writes it with Policy.String.
package mtasts

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Mode is a policy's mode (RFC 8461 5).
type Mode string

const (
	// Enforce: mail goes only to matching MX hosts over validated TLS.
	Enforce Mode = "enforce"
	// Testing: failures are reported (RFC 8460) but mail is delivered.
	Testing Mode = "testing"
	// None: the domain has no policy in force.
	None Mode = "none"
)

// Version is the only policy version (RFC 8461 3.2).
const Version = "STSv1"

// MaxMaxAge is the largest max_age (RFC 8461 3.2: 31557600 seconds).
const MaxMaxAge = 31557600 * time.Second

// MaxPolicySize bounds a policy document; RFC 8461 3.3 lets senders
// bound it, and 64 KiB is far beyond any real policy.
const MaxPolicySize = 64 << 10

// ErrSyntax wraps every reason a policy or record does not parse.
var ErrSyntax = errors.New("mtasts: malformed")

// Policy is an MTA-STS policy (RFC 8461 3.2).
type Policy struct {
	Mode   Mode
	MX     []string // patterns: "mx.example.org" or "*.example.org"
	MaxAge time.Duration
}

// Parse parses a policy document: "key: value" lines ending in CRLF or LF
// (RFC 8461 3.2). version (STSv1), mode and max_age are required, and at
// least one mx unless the mode is none; unknown keys are ignored, as the
// grammar's extension fields require.
func Parse(b []byte) (*Policy, error) {
	if len(b) > MaxPolicySize {
		return nil, fmt.Errorf("%w policy: larger than %d bytes", ErrSyntax, MaxPolicySize)
	}
	p := &Policy{}
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 1024), MaxPolicySize+1)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSuffix(sc.Text(), "\r")
		if strings.TrimSpace(text) == "" {
			continue
		}
		k, v, ok := strings.Cut(text, ":")
		if !ok {
			return nil, fmt.Errorf("%w policy: line %d: no ':' in %q", ErrSyntax, line, text)
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if k != "mx" && seen[k] {
			return nil, fmt.Errorf("%w policy: line %d: %s given twice", ErrSyntax, line, k)
		}
		seen[k] = true
		switch k {
		case "version":
			if v != Version {
				return nil, fmt.Errorf("%w policy: version %q, want %s", ErrSyntax, v, Version)
			}
		case "mode":
			switch m := Mode(v); m {
			case Enforce, Testing, None:
				p.Mode = m
			default:
				return nil, fmt.Errorf("%w policy: unknown mode %q", ErrSyntax, v)
			}
		case "max_age":
			// RFC 8461 3.2: 1 to 10 digits, at most 31557600.
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil || len(v) > 10 || time.Duration(n)*time.Second > MaxMaxAge {
				return nil, fmt.Errorf("%w policy: max_age %q", ErrSyntax, v)
			}
			p.MaxAge = time.Duration(n) * time.Second
		case "mx":
			if !validPattern(v) {
				return nil, fmt.Errorf("%w policy: mx %q is not a host name or *.name", ErrSyntax, v)
			}
			p.MX = append(p.MX, strings.ToLower(strings.TrimSuffix(v, ".")))
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w policy: %v", ErrSyntax, err)
	}
	for _, k := range []string{"version", "mode", "max_age"} {
		if !seen[k] {
			return nil, fmt.Errorf("%w policy: no %s", ErrSyntax, k)
		}
	}
	if len(p.MX) == 0 && p.Mode != None {
		return nil, fmt.Errorf("%w policy: no mx for mode %s", ErrSyntax, p.Mode)
	}
	return p, nil
}

// String writes the policy as its document, in the order of RFC 8461
// 3.2's example, with CRLF line ends.
func (p *Policy) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "version: %s\r\nmode: %s\r\n", Version, p.Mode)
	for _, mx := range p.MX {
		fmt.Fprintf(&b, "mx: %s\r\n", mx)
	}
	fmt.Fprintf(&b, "max_age: %d\r\n", int64(p.MaxAge/time.Second))
	return b.String()
}

// Match reports whether host (an MX host name) is allowed by the policy
// (RFC 8461 4.1): equal to a pattern, or, for "*.suffix", one label
// followed by the suffix. Comparison ignores case and a final dot.
func (p *Policy) Match(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, pat := range p.MX {
		if suffix, ok := strings.CutPrefix(pat, "*."); ok {
			label, rest, ok := strings.Cut(host, ".")
			if ok && label != "" && rest == suffix {
				return true
			}
			continue
		}
		if host == pat {
			return true
		}
	}
	return false
}

// validPattern: a host name, optionally with "*." in front (RFC 8461 3.2
// mx-pattern).
func validPattern(s string) bool {
	s = strings.TrimPrefix(strings.TrimSuffix(s, "."), "*.")
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// Record is the _mta-sts TXT record of a domain (RFC 8461 3.1).
type Record struct {
	ID string // changes whenever the policy does
}

// ParseRecord parses one TXT record: "v=STSv1; id=…" with further
// "key=value" fields ignored. The id is 1 to 32 letters and digits.
func ParseRecord(txt string) (Record, error) {
	fields := strings.Split(txt, ";")
	if strings.TrimSpace(fields[0]) != "v="+Version {
		return Record{}, fmt.Errorf("%w record: does not start with v=%s: %q", ErrSyntax, Version, txt)
	}
	var r Record
	for _, f := range fields[1:] {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return Record{}, fmt.Errorf("%w record: field %q", ErrSyntax, f)
		}
		if k == "id" {
			if r.ID != "" || !validID(v) {
				return Record{}, fmt.Errorf("%w record: id %q", ErrSyntax, v)
			}
			r.ID = v
		}
	}
	if r.ID == "" {
		return Record{}, fmt.Errorf("%w record: no id: %q", ErrSyntax, txt)
	}
	return r, nil
}

func validID(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}
