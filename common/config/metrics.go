package config

import (
	"fmt"
	"net"
	"strconv"
)

// validateMetrics checks the metrics key of each daemon: empty (off) or a
// TCP "host:port". A unix socket is not offered: Prometheus scrapes over
// TCP only.
func (c *Config) validateMetrics() []identityProblem {
	var ps []identityProblem
	for _, m := range []struct{ key, addr string }{
		{"smtpd.metrics", c.SMTPD.Metrics},
		{"lmtpd.metrics", c.LMTPD.Metrics},
		{"imapd.metrics", c.IMAPD.Metrics},
		{"pop3d.metrics", c.POP3D.Metrics},
	} {
		if m.addr == "" {
			continue
		}
		if err := checkHostPort(m.addr); err != nil {
			ps = append(ps, identityProblem{key: m.key, msg: err.Error()})
		}
	}
	return ps
}

// checkHostPort accepts "host:port" with a port from 1 to 65535 (0 would be
// a port nobody could find to scrape).
func checkHostPort(a string) error {
	_, port, err := net.SplitHostPort(a)
	if err != nil {
		return fmt.Errorf("%q: want host:port, such as 127.0.0.1:9325", a)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%q: bad port", a)
	}
	return nil
}
