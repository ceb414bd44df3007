package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"tern/common/config"
	"tern/common/dkim"
	"tern/common/publish"
)

// dnsRecords is `mailq -dns DOMAIN`: every DNS record a local domain needs,
// as zone-file lines with a comment each (common/publish builds them from
// tern.toml and the domain's DKIM key), followed by the host names the
// certificate must cover.
func dnsRecords(cfg *config.Config, domain string, stdout, stderr io.Writer) int {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	if !cfg.IsLocalDomain(domain) {
		fmt.Fprintf(stderr, "mailq: %s is not one of the local domains %v\n", domain, cfg.Domains)
		return exUsage
	}
	path := dkim.KeyPath(cfg.DKIM.Key, domain)
	var dkimTXT string
	key, err := dkim.LoadKey(path)
	switch {
	case err == nil:
		if dkimTXT, err = dkim.TXTRecord(key); err != nil {
			fmt.Fprintf(stderr, "mailq: %s: %v\n", path, err)
			return exSoftware
		}
	case errors.Is(err, dkim.ErrNoKey):
		fmt.Fprintf(stdout, "; no DKIM key at %s: `mailq -dkim-keygen %s` makes one and prints its record\n", path, domain)
	default:
		fmt.Fprintf(stderr, "mailq: %v\n", err)
		return exNoPerm
	}
	fmt.Fprintf(stdout, "; DNS records for %s (mail host %s)\n", domain, cfg.PublicHost())
	for _, r := range publish.DNSRecords(cfg, domain, dkimTXT) {
		fmt.Fprintf(stdout, "; %s\n%s\n", r.Why, r)
	}
	fmt.Fprintf(stdout, "; the certificate ([tls] cert or acme names) must name: %s mta-sts.%s autoconfig.%s autodiscover.%s\n",
		cfg.PublicHost(), domain, domain, domain)
	return exOK
}
