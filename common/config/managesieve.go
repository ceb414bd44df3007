package config

import "time"

// ManageSieve configures the ManageSieve service (RFC 5804), through which
// users upload and activate their own Sieve scripts. lmtpd hosts it: it is
// the program that runs the scripts, so the very code that validates an
// upload is the code that later runs it.
type ManageSieve struct {
	// Listen are the ManageSieve listeners, which offer STARTTLS (RFC
	// 5804 1.8: port 4190). [] turns the service off. Default: [].
	Listen []string `toml:"listen"`
	// MaxScripts is the most scripts one user may keep (RFC 5804 1.3:
	// QUOTA/MAXSCRIPTS). Default: 20.
	MaxScripts int `toml:"max_scripts"`
	// MaxLineLength is the longest command line, CRLF included, literals
	// not counted. Default: 8192.
	MaxLineLength int `toml:"max_line_length"`
	// MaxConnections is the most ManageSieve sessions at once.
	// Default: 100.
	MaxConnections int `toml:"max_connections"`
	// MaxConnectionsPerIP is the most ManageSieve sessions at once from
	// one client address. Default: 20.
	MaxConnectionsPerIP int `toml:"max_connections_per_ip"`
	// MaxErrors is how many bad commands a session may send before it is
	// closed. Default: 10.
	MaxErrors int `toml:"max_errors"`
	// IdleTimeout closes a logged-in session that sends nothing for this
	// long; before login [login] timeout applies. Default: "10m".
	IdleTimeout Duration `toml:"idle_timeout"`
}

func defaultManageSieve() ManageSieve {
	return ManageSieve{
		MaxScripts:          20,
		MaxLineLength:       8192,
		MaxConnections:      100,
		MaxConnectionsPerIP: 20,
		MaxErrors:           10,
		IdleTimeout:         Duration(10 * time.Minute),
	}
}

// validateManageSieve checks the [managesieve] keys. The script size limit
// is lmtpd.sieve_max_size: a larger script would never run.
func (c *Config) validateManageSieve() []identityProblem {
	var ps []identityProblem
	bad := func(key, msg string) { ps = append(ps, identityProblem{key: key, msg: msg}) }
	for _, a := range c.ManageSieve.Listen {
		if err := CheckAddr(a); err != nil {
			bad("managesieve.listen", err.Error())
		}
	}
	m := c.ManageSieve
	if m.MaxScripts <= 0 {
		bad("managesieve.max_scripts", "must be greater than zero")
	}
	if m.MaxLineLength < 1024 {
		bad("managesieve.max_line_length", "must be at least 1024")
	}
	if m.MaxConnections <= 0 {
		bad("managesieve.max_connections", "must be greater than zero")
	}
	if m.MaxConnectionsPerIP <= 0 {
		bad("managesieve.max_connections_per_ip", "must be greater than zero")
	}
	if m.MaxErrors <= 0 {
		bad("managesieve.max_errors", "must be greater than zero")
	}
	if m.IdleTimeout <= 0 {
		bad("managesieve.idle_timeout", "must be greater than zero")
	}
	if len(m.Listen) > 0 && c.LMTPD.Sieve == "" {
		bad("managesieve.listen", "needs lmtpd.sieve, the active script's template")
	}
	return ps
}
