package courier

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"time"

	"tern/common/dkim"
	"tern/common/maillog"
	"tern/common/queue"
	"tern/common/tlsrpt"
)

// openTLSReports opens the store of TLS results, state_dir/tls-rpt.
func openTLSReports(stateDir string) (*tlsrpt.Store, error) {
	return tlsrpt.Open(filepath.Join(stateDir, "tls-rpt"))
}

// tlsReportInterval is how often the runner looks for a finished day
// whose TLS reports are not sent yet.
const tlsReportInterval = time.Hour

// SendTLSReports sends the aggregate TLS report (RFC 8460) of every
// finished UTC day before now not reported yet, to each policy domain that
// asks for reports with a mailto: rua in its _smtp._tls record, as mail
// from the null sender (so that a failed report makes no bounce). https
// rua are not supported. A report comes from postmaster@ the first local
// domain, DKIM-signed with its key when it has one. A day is marked sent
// once its reports are queued.
func (cr *Courier) SendTLSReports(ctx context.Context, now time.Time) {
	log := cr.log
	days, sent, err := cr.tlsrpt.Days()
	if err != nil {
		log.Error("TLS reports", "err", err)
		return
	}
	host := cr.cfg().Hostname
	for _, day := range days {
		if sent[day] || day >= tlsrpt.Day(now) {
			continue
		}
		results, err := cr.tlsrpt.Results(day)
		if err != nil {
			log.Error("TLS reports", "day", day, "err", err)
			continue
		}
		domains := map[string]bool{}
		for _, r := range results {
			domains[strings.ToLower(r.PolicyDomain)] = true
		}
		queued := true
		for domain := range domains {
			lctx, cancel := context.WithTimeout(ctx, cr.cfg().DNS.Timeout.D())
			rec, err := tlsrpt.LookupRecord(lctx, cr.resolver, domain)
			cancel()
			if err != nil {
				if !errors.Is(err, tlsrpt.ErrNoRecord) {
					log.Info("no TLS report sent", "domain", domain, "day", day, "err", err)
				}
				continue
			}
			var to []string
			for _, u := range rec.RUA {
				if addr, ok := strings.CutPrefix(u, "mailto:"); ok {
					if a, _, ok := strings.Cut(addr, "!"); ok { // RFC 8460 3: a size limit may follow
						addr = a
					}
					to = append(to, addr)
				}
			}
			if len(to) == 0 {
				continue
			}
			rep, err := tlsrpt.Aggregate(results, domain, day, host, "mailto:postmaster@"+host)
			if err != nil || rep == nil {
				continue
			}
			from := "postmaster@" + cr.cfg().Domains[0]
			msg, err := tlsrpt.Mail(rep, domain, host, from, to, now)
			if err != nil {
				log.Error("TLS report", "domain", domain, "err", err)
				continue
			}
			msg = cr.signReport(msg, cr.cfg().Domains[0])
			env := &queue.Envelope{From: "", Body: "7BIT"}
			for _, a := range to {
				env.Recipients = append(env.Recipients, queue.Recipient{Addr: a, State: queue.Pending})
			}
			id, err := cr.queue.Enqueue(env, bytes.NewReader(msg))
			if err != nil {
				log.Error("queue TLS report", "domain", domain, "err", err)
				queued = false
				continue
			}
			maillog.TLSReport(log, domain, day, id, strings.Join(to, ","))
		}
		if queued {
			if err := cr.tlsrpt.MarkSent(day); err != nil {
				log.Error("TLS reports", "day", day, "err", err)
			}
		}
	}
	cr.Wake()
}

// signReport adds a DKIM signature (RFC 6376) of domain to a report, as
// RFC 8460 5.3 asks, when the domain has a key; without one the report
// goes unsigned.
func (cr *Courier) signReport(msg []byte, domain string) []byte {
	header, body, ok := bytes.Cut(msg, []byte("\r\n\r\n"))
	if !ok {
		return msg
	}
	sig, err := dkim.SignFor(cr.cfg().DKIM, domain, header, bytes.NewReader(body))
	if err != nil {
		if !errors.Is(err, dkim.ErrNoKey) {
			cr.log.Error("DKIM signing of a TLS report", "domain", domain, "err", err)
		}
		return msg
	}
	return append([]byte(sig), msg...)
}
