package config

import (
	"strings"
	"time"
)

// WebD configures webd, the mail system's web face: ACME http-01
// challenges, the MTA-STS policy of each local domain (RFC 8461 3.2) and
// client autoconfiguration (Thunderbird autoconfig, Outlook autodiscover,
// Apple configuration profiles). It serves nothing else.
type WebD struct {
	// Listen are plain HTTP listeners (port 80): ACME http-01 challenges
	// and autoconfig, which Thunderbird also asks for over HTTP.
	// Default: ["0.0.0.0:80"].
	Listen []string `toml:"listen"`
	// TLSListen are HTTPS listeners (port 443): everything, and the only
	// place the MTA-STS policy is served (RFC 8461 3.3). The certificate
	// must name mta-sts.DOMAIN, autoconfig.DOMAIN and
	// autodiscover.DOMAIN of each local domain (`mailq -dns` lists them).
	// Default: ["0.0.0.0:443"].
	TLSListen []string `toml:"tls_listen"`
	// MailHost is the host name mail clients and other servers connect
	// to, named in client configurations, MX records and the MTA-STS
	// policy. Default: "" (the hostname).
	MailHost string `toml:"mail_host"`
	// MTASTSMode is the published MTA-STS policy mode (RFC 8461 5):
	// "testing" (failures are only reported), "enforce" or "none".
	// Default: "testing".
	MTASTSMode string `toml:"mta_sts_mode"`
	// MTASTSMaxAge is how long senders may cache the policy (RFC 8461
	// 3.2: at most 31557600 seconds). Default: "168h" (a week).
	MTASTSMaxAge Duration `toml:"mta_sts_max_age"`
	// ReadTimeout bounds reading a request, header and body.
	// Default: "10s".
	ReadTimeout Duration `toml:"read_timeout"`
	// WriteTimeout bounds writing a response. Default: "10s".
	WriteTimeout Duration `toml:"write_timeout"`
	// MaxHeaderSize bounds a request's header. Default: "8K".
	MaxHeaderSize Size `toml:"max_header_size"`
	// MaxRequestSize bounds a request body (an autodiscover request is a
	// few hundred bytes); a larger one gets 413. Default: "64K".
	MaxRequestSize Size `toml:"max_request_size"`
	// Metrics is a "host:port" where webd serves, at GET /metrics, the
	// Prometheus metrics of every daemon in one exposition: it scrapes
	// smtpd.metrics, lmtpd.metrics, imapd.metrics and pop3d.metrics (those
	// set) and merges them. Plain HTTP without authentication: keep it on
	// loopback. Default: "" (off).
	Metrics string `toml:"metrics"`
}

func defaultWebD() WebD {
	return WebD{
		Listen:         []string{"0.0.0.0:80"},
		TLSListen:      []string{"0.0.0.0:443"},
		MTASTSMode:     "testing",
		MTASTSMaxAge:   Duration(7 * 24 * time.Hour),
		ReadTimeout:    Duration(10 * time.Second),
		WriteTimeout:   Duration(10 * time.Second),
		MaxHeaderSize:  8 << 10,
		MaxRequestSize: 64 << 10,
	}
}

// PublicHost is the host name clients and other servers are told to use.
func (c *Config) PublicHost() string {
	if c.WebD.MailHost != "" {
		return strings.ToLower(strings.TrimSuffix(c.WebD.MailHost, "."))
	}
	return strings.ToLower(c.Hostname)
}

// validateWebD checks the [webd] keys.
func (c *Config) validateWebD() []identityProblem {
	var ps []identityProblem
	bad := func(key, msg string) { ps = append(ps, identityProblem{key: key, msg: msg}) }
	w := c.WebD
	for _, l := range []struct {
		key   string
		addrs []string
	}{{"webd.listen", w.Listen}, {"webd.tls_listen", w.TLSListen}} {
		for _, a := range l.addrs {
			if err := CheckAddr(a); err != nil {
				bad(l.key, err.Error())
			}
		}
	}
	if w.MailHost != "" && strings.ContainsAny(w.MailHost, " /@:") {
		bad("webd.mail_host", "not a host name: "+w.MailHost)
	}
	switch w.MTASTSMode {
	case "testing", "enforce", "none":
	default:
		bad("webd.mta_sts_mode", "must be testing, enforce or none, got "+w.MTASTSMode)
	}
	// RFC 8461 3.2: max_age is at most 31557600 seconds.
	if w.MTASTSMaxAge.D() < time.Second || w.MTASTSMaxAge.D() > 31557600*time.Second {
		bad("webd.mta_sts_max_age", "must be between 1s and 8766h (RFC 8461 3.2)")
	}
	if w.ReadTimeout <= 0 {
		bad("webd.read_timeout", "must be greater than zero")
	}
	if w.WriteTimeout <= 0 {
		bad("webd.write_timeout", "must be greater than zero")
	}
	if w.MaxHeaderSize < 1024 {
		bad("webd.max_header_size", "must be at least 1K")
	}
	if w.Metrics != "" {
		if err := checkHostPort(w.Metrics); err != nil {
			bad("webd.metrics", err.Error())
		}
	}
	if w.MaxRequestSize < 1024 {
		bad("webd.max_request_size", "must be at least 1K")
	}
	return ps
}
