package config

import (
	"net/url"
	"path/filepath"
	"strings"
	"time"
)

// ACME configures certificates obtained and renewed automatically (RFC
// 8555), the value of [tls] acme. webd is the one process that obtains and
// renews them, answering the CA's http-01 challenges on webd.listen (or,
// without it, tls-alpn-01 on webd.tls_listen); every
// daemon reads the files and picks up a renewal within a second. With
// acme set, [tls] cert and key are not read: the certificate and its key
// are state_dir/acme/fullchain.pem and privkey.pem, beside the account
// key account.key.
type ACME struct {
	// Directory is the CA's ACME directory URL, e.g.
	// "https://acme-v02.api.letsencrypt.org/directory". "" turns ACME off.
	// Default: "".
	Directory string `toml:"directory"`
	// Email is the account's contact address (RFC 8555 7.3), where the CA
	// sends expiry warnings. Default: "" (none).
	Email string `toml:"email"`
	// Names are the host names of the certificate: the mail host, and
	// mta-sts.DOMAIN, autoconfig.DOMAIN, autodiscover.DOMAIN of each local
	// domain (`mailq -dns` lists them). Default: [hostname].
	Names []string `toml:"names"`
	// CA is a PEM file of certificate authorities trusted for the ACME
	// directory's own HTTPS, for a private or test CA; "" trusts the
	// system's. Default: "".
	CA string `toml:"ca"`
	// RenewBefore is how long before expiry the certificate is renewed;
	// for certificates valid less than three times as long, renewal
	// starts after two thirds of their life. Default: "720h" (30 days).
	RenewBefore Duration `toml:"renew_before"`
	// RetryMin is the wait after a failed attempt; it doubles with each
	// failure up to RetryMax. A CA's Retry-After (rate limits) is obeyed
	// when longer. Default: "1m".
	RetryMin Duration `toml:"retry_min"`
	// RetryMax caps the wait between attempts. Default: "6h".
	RetryMax Duration `toml:"retry_max"`
}

// Enabled reports whether certificates come from ACME.
func (a ACME) Enabled() bool { return a.Directory != "" }

func defaultACME() ACME {
	return ACME{
		RenewBefore: Duration(30 * 24 * time.Hour),
		RetryMin:    Duration(time.Minute),
		RetryMax:    Duration(6 * time.Hour),
	}
}

// ACMEDir is where the ACME account key and certificate live.
func (c *Config) ACMEDir() string { return filepath.Join(c.StateDir, "acme") }

// validateACME checks [tls] acme.
func (c *Config) validateACME() []identityProblem {
	a := c.TLS.ACME
	if !a.Enabled() {
		return nil
	}
	var ps []identityProblem
	bad := func(key, msg string) { ps = append(ps, identityProblem{key: "tls.acme." + key, msg: msg}) }
	if u, err := url.Parse(a.Directory); err != nil || u.Scheme != "https" || u.Host == "" {
		bad("directory", "want an https:// URL, got "+a.Directory)
	}
	if a.Email != "" && (!strings.Contains(a.Email, "@") || strings.ContainsAny(a.Email, " <>,")) {
		bad("email", "not an address: "+a.Email)
	}
	for _, n := range a.Names {
		if n == "" || strings.ContainsAny(n, " /@:*") {
			bad("names", "not a host name: "+n)
		}
	}
	if a.RenewBefore <= 0 || a.RetryMin <= 0 || a.RetryMax < a.RetryMin {
		bad("renew_before", "renew_before and retry_min must be positive, retry_max at least retry_min")
	}
	// http-01 is answered on webd.listen (port 80), tls-alpn-01 on
	// webd.tls_listen (port 443) when there is no plain listener.
	if len(c.WebD.Listen) == 0 && len(c.WebD.TLSListen) == 0 {
		bad("directory", "ACME needs webd.listen (http-01, port 80) or webd.tls_listen (tls-alpn-01, port 443)")
	}
	return ps
}

// normalizeACME points [tls] cert and key at the files webd maintains.
func (c *Config) normalizeACME() {
	if !c.TLS.ACME.Enabled() {
		return
	}
	if len(c.TLS.ACME.Names) == 0 {
		c.TLS.ACME.Names = []string{c.Hostname}
	}
	for i, n := range c.TLS.ACME.Names {
		c.TLS.ACME.Names[i] = strings.ToLower(strings.TrimSuffix(n, "."))
	}
	// ACME's files are webd's to write; no daemon makes its own.
	c.TLS.Generate = false
	c.TLS.Cert = filepath.Join(c.ACMEDir(), "fullchain.pem")
	c.TLS.Key = filepath.Join(c.ACMEDir(), "privkey.pem")
}
