package mailauth

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"

	"blitiri.com.ar/go/spf"
	"github.com/emersion/go-msgauth/dmarc"
)

// checkDMARC evaluates DMARC (RFC 7489 6.6) for the author domain, with
// the SPF and DKIM results already had.
func (c *Checker) checkDMARC(ctx context.Context, in Input, s SPFResult, dkims []DKIMResult) DMARCResult {
	from, ok := FromDomain(in.FromFields)
	if !ok {
		// RFC 7489 6.6.1: without a single author domain there is nothing
		// to evaluate; smtpd refuses messages with several From fields.
		return DMARCResult{Result: "permerror", Reason: "no single author domain in From"}
	}
	res := DMARCResult{FromDomain: from}
	// RFC 7489 6.6.3: the author domain's record, else its organizational
	// domain's.
	rec, err := c.lookupDMARC(ctx, from)
	usedOrg := false
	if errors.Is(err, dmarc.ErrNoPolicy) {
		if org := OrgDomain(from); org != from {
			rec, err = c.lookupDMARC(ctx, org)
			usedOrg = true
		}
	}
	switch {
	case errors.Is(err, dmarc.ErrNoPolicy):
		res.Result = "none"
		return res
	case err != nil && dmarc.IsTempFail(err):
		res.Result, res.Reason = "temperror", "DMARC record lookup failed"
		return res
	case err != nil:
		res.Result, res.Reason = "permerror", "unusable DMARC record"
		return res
	}
	res.Policy = rec.Policy
	// RFC 7489 6.3: sp= applies to subdomains covered by the
	// organizational domain's record.
	if usedOrg && rec.SubdomainPolicy != "" {
		res.Policy = rec.SubdomainPolicy
	}

	// RFC 7489 3.1.2: SPF's authenticated identifier is the MAIL FROM
	// domain, or the HELO name for the null sender.
	spfAligned := s.Result == spf.Pass && Aligned(s.Domain, from, alignMode(rec.SPFAlignment))
	dkimAligned := false
	for _, d := range dkims {
		if d.Result == "pass" && Aligned(d.Domain, from, alignMode(rec.DKIMAlignment)) {
			dkimAligned = true
		}
	}
	if spfAligned || dkimAligned {
		res.Result, res.Disposition = "pass", dmarc.PolicyNone
		return res
	}
	res.Result, res.Disposition = "fail", res.Policy
	// RFC 7489 6.6.4: with pct= below 100, messages outside the sample get
	// the next policy down.
	if rec.Percent != nil && *rec.Percent < 100 && !c.sample(*rec.Percent) {
		switch res.Disposition {
		case dmarc.PolicyReject:
			res.Disposition = dmarc.PolicyQuarantine
		case dmarc.PolicyQuarantine:
			res.Disposition = dmarc.PolicyNone
		}
	}
	return res
}

func (c *Checker) lookupDMARC(ctx context.Context, domain string) (*dmarc.Record, error) {
	return dmarc.LookupWithOptions(domain, &dmarc.LookupOptions{LookupTXT: c.lookupTXT(ctx)})
}

func (c *Checker) sample(pct int) bool {
	if c.Sample != nil {
		return c.Sample(pct)
	}
	return rand.IntN(100) < pct
}

// alignMode: RFC 7489 6.3, adkim= and aspf= default to relaxed.
func alignMode(m dmarc.AlignmentMode) dmarc.AlignmentMode {
	if strings.EqualFold(string(m), "s") {
		return dmarc.AlignmentStrict
	}
	return dmarc.AlignmentRelaxed
}
