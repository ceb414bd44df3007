package config

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// ErrMilterAddr is returned by MilterAddr for an address it cannot read.
var ErrMilterAddr = errors.New("config: bad milter address")

// MilterAddr turns a milter address into a network and address for
// net.Dial. It reads Postfix's syntax, "inet:host:port" (host may be an
// IPv6 literal in brackets) and "unix:/path", and sendmail's, which
// clamav-milter and rspamd document: "inet:port@host", "inet6:port@host"
// and "local:/path".
func MilterAddr(s string) (network, address string, err error) {
	kind, rest, ok := strings.Cut(s, ":")
	if !ok || rest == "" {
		return "", "", fmt.Errorf("%w %q: want inet:host:port or unix:/path", ErrMilterAddr, s)
	}
	switch strings.ToLower(kind) {
	case "unix", "local":
		if !strings.HasPrefix(rest, "/") {
			return "", "", fmt.Errorf("%w %q: the socket path must be absolute", ErrMilterAddr, s)
		}
		return "unix", rest, nil
	case "inet", "inet6":
		var host, port string
		if p, h, ok := strings.Cut(rest, "@"); ok {
			host, port = h, p
		} else {
			h, p, err := net.SplitHostPort(rest)
			if err != nil {
				return "", "", fmt.Errorf("%w %q: want inet:host:port", ErrMilterAddr, s)
			}
			host, port = h, p
		}
		host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
		if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
			return "", "", fmt.Errorf("%w %q: bad port", ErrMilterAddr, s)
		}
		if host == "" || strings.ContainsAny(host, " /@[]") {
			return "", "", fmt.Errorf("%w %q: bad host", ErrMilterAddr, s)
		}
		return "tcp", net.JoinHostPort(host, port), nil
	}
	return "", "", fmt.Errorf("%w %q: unknown kind %q (want inet or unix)", ErrMilterAddr, s, kind)
}

// validateFilters checks the keys of milters, mail authentication, DKIM
// and DNS.
func (c *Config) validateFilters() []identityProblem {
	var ps []identityProblem
	bad := func(key, format string, args ...any) {
		ps = append(ps, identityProblem{key: key, msg: fmt.Sprintf(format, args...)})
	}
	for _, m := range c.SMTPD.Milters {
		if _, _, err := MilterAddr(m); err != nil {
			bad("smtpd.milters", "%v", err)
		}
	}
	switch c.SMTPD.MilterDefaultAction {
	case "tempfail", "accept":
	default:
		bad("smtpd.milter_default_action", "must be tempfail or accept, got %q", c.SMTPD.MilterDefaultAction)
	}
	if c.SMTPD.MilterConnectTimeout <= 0 {
		bad("smtpd.milter_connect_timeout", "must be greater than zero")
	}
	if c.SMTPD.MilterTimeout <= 0 {
		bad("smtpd.milter_timeout", "must be greater than zero")
	}
	switch c.SMTPD.SPFFail {
	case "mark", "reject":
	default:
		bad("smtpd.spf_fail", "must be mark or reject, got %q", c.SMTPD.SPFFail)
	}
	if strings.ContainsAny(c.SMTPD.AuthservID, " \t\r\n;()\"") {
		bad("smtpd.authserv_id", "%q is not a token (RFC 8601 2.5)", c.SMTPD.AuthservID)
	}
	if c.SMTPD.MaxHeaderSize <= 0 {
		bad("smtpd.max_header_size", "must be greater than zero")
	}
	if c.SMTPD.RemotePort <= 0 || c.SMTPD.RemotePort > 65535 {
		bad("smtpd.remote_port", "must be a TCP port, got %d", c.SMTPD.RemotePort)
	}
	// RFC 6376 3.1: the selector is a sequence of DNS labels.
	if c.DKIM.Selector == "" || strings.ContainsAny(c.DKIM.Selector, " \t;=/@") {
		bad("dkim.selector", "%q is not a DNS label", c.DKIM.Selector)
	}
	if !strings.Contains(c.DKIM.Key, "%d") {
		bad("dkim.key", "the template must contain %%d (the domain), got %q", c.DKIM.Key)
	}
	hasFrom := false
	for _, h := range c.DKIM.Headers {
		if h == "" || strings.ContainsAny(h, ": \t\r\n") {
			bad("dkim.headers", "%q is not a header field name", h)
		}
		hasFrom = hasFrom || strings.EqualFold(h, "From")
	}
	// RFC 6376 5.4: the From field must be signed.
	if !hasFrom {
		bad("dkim.headers", "must include From (RFC 6376 5.4)")
	}
	if c.DKIM.MaxVerifications <= 0 {
		bad("dkim.max_verifications", "must be greater than zero")
	}
	if c.DNS.Resolver != "" {
		if _, port, err := net.SplitHostPort(c.DNS.Resolver); err != nil || port == "" {
			bad("dns.resolver", "want host:port, got %q", c.DNS.Resolver)
		}
	}
	if c.DNS.Timeout <= 0 {
		bad("dns.timeout", "must be greater than zero")
	}
	return ps
}

// AuthservIDOrHost is the authserv-id of Authentication-Results headers:
// smtpd.authserv_id, or the hostname.
func (c *Config) AuthservIDOrHost() string {
	if c.SMTPD.AuthservID != "" {
		return c.SMTPD.AuthservID
	}
	return c.Hostname
}
