package main

import (
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"tern/common/config"
	"tern/common/tlsrpt"
)

// tlsReport prints, for each UTC day with results, the aggregate TLS
// report (RFC 8460 4.4) of the recipient domain, as smtpd sends it (or
// will send it once the day is over): one JSON object per day, oldest
// first.
func tlsReport(cfg *config.Config, domain string, stdout, stderr io.Writer) int {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	store, err := tlsrpt.Open(filepath.Join(cfg.StateDir, "tls-rpt"))
	if err != nil {
		fmt.Fprintf(stderr, "mailq: %v\n", err)
		return exIOErr
	}
	days, _, err := store.Days()
	if err != nil {
		fmt.Fprintf(stderr, "mailq: %v\n", err)
		return exIOErr
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	n := 0
	for _, day := range days {
		results, err := store.Results(day)
		if err != nil {
			fmt.Fprintf(stderr, "mailq: %v\n", err)
			return exIOErr
		}
		rep, err := tlsrpt.Aggregate(results, domain, day, cfg.Hostname, "mailto:postmaster@"+cfg.Hostname)
		if err != nil || rep == nil {
			continue
		}
		enc.Encode(rep)
		n++
	}
	if n == 0 {
		fmt.Fprintf(stderr, "mailq: no TLS results recorded for %s (only domains with an MTA-STS or DANE policy have them)\n", domain)
	}
	return exOK
}
