// Package publish builds what the mail system tells the world about
// itself, all from tern.toml: the services and ports clients use, the
// MTA-STS policy (RFC 8461), the client configurations (Thunderbird
// autoconfig, Outlook autodiscover, Apple configuration profiles) and the
// DNS records an admin must publish. webd serves the first ones; `mailq
// -dns` prints the records. Both read the same functions, so the policy
// id in DNS always matches the policy served.
package publish

import (
	"net"
	"strconv"
	"strings"

	"tern/common/config"
)

// Service is one way for a client to reach the mail system.
type Service struct {
	// Kind is "imap", "pop3" or "submission".
	Kind string
	Port int
	// TLS is implicit TLS (RFC 8314); false means STARTTLS.
	TLS bool
}

// SRVName is the RFC 6186 (and RFC 8314 5.1 for submissions) service
// label of s.
func (s Service) SRVName() string {
	name := "_" + s.Kind
	if s.TLS {
		name += "s"
	}
	return name + "._tcp"
}

// Services lists the client services configured, implicit TLS first
// (RFC 8314 5.1 prefers it): IMAP, POP3, then submission.
func Services(cfg *config.Config) []Service {
	var out []Service
	add := func(kind string, addrs []string, tls bool) {
		if p := firstPort(addrs); p > 0 {
			out = append(out, Service{Kind: kind, Port: p, TLS: tls})
		}
	}
	add("imap", cfg.IMAPD.TLSListen, true)
	add("imap", cfg.IMAPD.Listen, false)
	add("pop3", cfg.POP3D.TLSListen, true)
	add("pop3", cfg.POP3D.Listen, false)
	add("submission", cfg.SMTPD.Submissions, true)
	add("submission", cfg.SMTPD.Submission, false)
	return out
}

// ManageSievePort is the port of the first ManageSieve listener, 0 if none.
func ManageSievePort(cfg *config.Config) int { return firstPort(cfg.ManageSieve.Listen) }

// firstPort is the port of the first TCP address of a listener list.
func firstPort(addrs []string) int {
	for _, a := range addrs {
		if strings.HasPrefix(a, "unix:") {
			continue
		}
		_, port, err := net.SplitHostPort(a)
		if err != nil {
			continue
		}
		if n, err := strconv.Atoi(port); err == nil && n > 0 {
			return n
		}
	}
	return 0
}

// LocalDomainOf returns the domain of address when it is local.
func LocalDomainOf(cfg *config.Config, address string) (string, bool) {
	at := strings.LastIndexByte(address, '@')
	if at <= 0 || at == len(address)-1 {
		return "", false
	}
	d := strings.ToLower(address[at+1:])
	return d, cfg.IsLocalDomain(d)
}
