package publish

import (
	"fmt"
	"strings"

	"tern/common/config"
)

// Record is one DNS record to publish, in zone-file terms.
type Record struct {
	Name  string // fully qualified, with the final dot
	Type  string // MX, TXT, CNAME, SRV
	Value string // as in a zone file; TXT values are quoted strings
	// Why says what the record is for, printed as a comment.
	Why string
}

// String is the record as a zone-file line.
func (r Record) String() string {
	return fmt.Sprintf("%s\tIN %s\t%s", r.Name, r.Type, r.Value)
}

// TXT quotes a TXT value, split into strings of at most 255 bytes (RFC
// 1035 3.3.14), as a zone file takes them.
func TXT(v string) string {
	var parts []string
	for len(v) > 0 {
		n := min(len(v), 250)
		parts = append(parts, `"`+v[:n]+`"`)
		v = v[n:]
	}
	if len(parts) == 1 {
		return parts[0]
	}
	return "( " + strings.Join(parts, " ") + " )"
}

// DNSRecords lists every record a local domain needs, for `mailq -dns`.
// dkimTXT is the domain's DKIM public key record (dkim.TXTRecord), ""
// when the domain has no key yet.
func DNSRecords(cfg *config.Config, domain, dkimTXT string) []Record {
	host := cfg.PublicHost() + "."
	d := strings.ToLower(strings.TrimSuffix(domain, ".")) + "."
	postmaster := "postmaster@" + strings.TrimSuffix(d, ".")
	rs := []Record{
		{d, "MX", "10 " + host, "mail for the domain goes to the mail host (RFC 5321 5.1)"},
		{d, "TXT", TXT("v=spf1 mx -all"), "SPF: only the domain's MX hosts send its mail (RFC 7208)"},
	}
	if dkimTXT != "" {
		rs = append(rs, Record{cfg.DKIM.Selector + "._domainkey." + d, "TXT", TXT(dkimTXT),
			"DKIM public key of the domain's signing key (RFC 6376 3.6.2)"})
	}
	rs = append(rs,
		Record{"_dmarc." + d, "TXT", TXT("v=DMARC1; p=quarantine; rua=mailto:" + postmaster),
			"DMARC policy and aggregate reports (RFC 7489 6.1); p=reject once the reports look right"},
		Record{"_mta-sts." + d, "TXT", TXT("v=STSv1; id=" + MTASTSPolicyID(cfg)),
			"MTA-STS: a policy is published, this id changes with it (RFC 8461 3.1)"},
		Record{"mta-sts." + d, "CNAME", host, "MTA-STS policy host, served by webd over HTTPS (RFC 8461 3.3)"},
		Record{"_smtp._tls." + d, "TXT", TXT("v=TLSRPTv1; rua=mailto:" + postmaster),
			"SMTP TLS reports (RFC 8460 3)"},
		Record{"autoconfig." + d, "CNAME", host, "Thunderbird autoconfig, served by webd"},
		Record{"autodiscover." + d, "CNAME", host, "Outlook autodiscover, served by webd"},
	)
	offered := map[string]Service{}
	for _, s := range Services(cfg) {
		offered[s.SRVName()] = s
	}
	// RFC 6186 3 and RFC 8314 5.1: one SRV per service, implicit TLS
	// preferred (lower priority value); "0 0 0 ." says a service is not
	// offered (RFC 6186 3.4 / RFC 2782).
	for _, name := range []string{"_submissions._tcp", "_submission._tcp", "_imaps._tcp", "_imap._tcp", "_pop3s._tcp", "_pop3._tcp"} {
		s, ok := offered[name]
		v := "0 0 0 ."
		if ok {
			prio := 0
			if !s.TLS {
				prio = 10
			}
			v = fmt.Sprintf("%d 1 %d %s", prio, s.Port, host)
		}
		rs = append(rs, Record{name + "." + d, "SRV", v, "client service location (RFC 6186)"})
	}
	if p := ManageSievePort(cfg); p > 0 {
		rs = append(rs, Record{"_sieve._tcp." + d, "SRV", fmt.Sprintf("0 1 %d %s", p, host), "ManageSieve (RFC 5804 1.8)"})
	}
	if p := firstPort(cfg.WebD.TLSListen); p > 0 {
		rs = append(rs, Record{"_autodiscover._tcp." + d, "SRV", fmt.Sprintf("0 1 %d %s", p, host), "Outlook autodiscover by SRV"})
	}
	return rs
}
