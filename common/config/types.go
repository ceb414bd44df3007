package config

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Size is a byte count written as a number with an optional K, M or G
// suffix (powers of 1024): "50M", "2G", "0".
type Size int64

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *Size) UnmarshalText(b []byte) error {
	v, err := ParseSize(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (s Size) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

func (s Size) String() string {
	for _, u := range []struct {
		suffix string
		n      int64
	}{{"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}} {
		if s != 0 && int64(s)%u.n == 0 {
			return strconv.FormatInt(int64(s)/u.n, 10) + u.suffix
		}
	}
	return strconv.FormatInt(int64(s), 10)
}

// ParseSize parses a Size.
func ParseSize(str string) (Size, error) {
	t := strings.TrimSpace(strings.ToUpper(str))
	mult := int64(1)
	switch {
	case strings.HasSuffix(t, "K"):
		mult, t = 1<<10, t[:len(t)-1]
	case strings.HasSuffix(t, "M"):
		mult, t = 1<<20, t[:len(t)-1]
	case strings.HasSuffix(t, "G"):
		mult, t = 1<<30, t[:len(t)-1]
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("bad size %q: want a number with an optional K, M or G suffix", str)
	}
	return Size(n * mult), nil
}

// Duration is a time.Duration written as Go writes one: "30s", "5m", "1h".
type Duration time.Duration

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("bad duration %q: want e.g. \"30s\", \"5m\", \"1h\"", b)
	}
	*d = Duration(v)
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Rate is a count per period, written "N/duration" ("1000/1h"); "0"
// (or N = 0) means no limit.
type Rate struct {
	N   int
	Per time.Duration
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (r *Rate) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	if s == "0" || s == "" {
		*r = Rate{}
		return nil
	}
	n, per, ok := strings.Cut(s, "/")
	v, err := strconv.Atoi(strings.TrimSpace(n))
	d, derr := time.ParseDuration(strings.TrimSpace(per))
	if !ok || err != nil || derr != nil || v < 0 || d <= 0 {
		return fmt.Errorf("bad rate %q: want a count per duration, e.g. \"1000/1h\", or \"0\" for none", b)
	}
	*r = Rate{N: v, Per: d}
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (r Rate) MarshalText() ([]byte, error) {
	if r.N == 0 {
		return []byte("0"), nil
	}
	return []byte(fmt.Sprintf("%d/%s", r.N, r.Per)), nil
}

// Expand fills a path template (maildir, sieve) for an address
// "local@domain": %d is the domain, %n the local part, %u the whole address,
// %% a percent sign. The address must already be a known user (lower case,
// no path separators), which the users file guarantees; Expand still refuses
// anything that could step out of the template's directory.
func Expand(template, address string) (string, error) {
	local, domain, ok := strings.Cut(address, "@")
	if !ok || local == "" || domain == "" {
		return "", fmt.Errorf("expand %q: %q is not user@domain", template, address)
	}
	for _, part := range []string{local, domain} {
		if part == "." || part == ".." || strings.ContainsAny(part, "/\x00") {
			return "", fmt.Errorf("expand %q: unsafe address %q", template, address)
		}
	}
	var b strings.Builder
	for i := 0; i < len(template); i++ {
		c := template[i]
		if c != '%' || i+1 == len(template) {
			b.WriteByte(c)
			continue
		}
		i++
		switch template[i] {
		case 'd':
			b.WriteString(domain)
		case 'n':
			b.WriteString(local)
		case 'u':
			b.WriteString(address)
		case '%':
			b.WriteByte('%')
		default:
			b.WriteByte('%')
			b.WriteByte(template[i])
		}
	}
	return filepath.Clean(b.String()), nil
}
