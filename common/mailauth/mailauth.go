// Package mailauth checks where a received message comes from: SPF (RFC
// 7208) for the envelope sender, DKIM (RFC 6376) for the signatures in the
// header, and DMARC (RFC 7489) for the author's domain, and writes the
// results as one Authentication-Results header field (RFC 8601).
//
// SPF is checked by blitiri.com.ar/go/spf and DKIM by go-msgauth; DMARC's
// record is parsed by go-msgauth, and its evaluation (identifier
// alignment, the policy to apply, sp= and pct=) is done here. Every
// lookup goes through the resolver given (common/dns).
package mailauth

import (
	"context"
	"errors"
	"io"
	"net"
	"net/mail"
	"strings"
	"time"

	"blitiri.com.ar/go/spf"
	msgdkim "github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-msgauth/dmarc"
	"golang.org/x/net/publicsuffix"

	"tern/common/mailaddr"
)

// Checker runs the checks with one resolver and its limits.
type Checker struct {
	Resolver *net.Resolver
	// Timeout bounds each DNS lookup.
	Timeout time.Duration
	// MaxVerifications bounds the DKIM signatures checked per message.
	MaxVerifications int
	// Sample decides pct= sampling (RFC 7489 6.6.4): it reports whether a
	// message falls within pct percent. Nil means math/rand.
	Sample func(pct int) bool
}

// Input is what the checks look at besides the message itself.
type Input struct {
	IP       net.IP
	Helo     string
	MailFrom string // the envelope sender; "" for the null sender
	// FromFields are the values of the message's From header fields.
	FromFields []string
	// DKIMFields are the values of the DKIM-Signature header fields, in
	// header order (for the selector and signature in the results).
	DKIMFields []string
}

// Result is the outcome of every check.
type Result struct {
	SPF SPFResult
	// DKIM has one entry per signature checked, in header order.
	DKIM  []DKIMResult
	DMARC DMARCResult
}

// SPFResult is the SPF check of the MAIL FROM identity, or of the HELO
// identity for the null sender (RFC 7208 2.4).
type SPFResult struct {
	Result spf.Result
	Domain string // the domain checked
	Helo   bool   // Domain is the HELO name
}

// DKIMResult is the verification of one signature.
type DKIMResult struct {
	Result     string // pass, fail, neutral, temperror or permerror (RFC 8601 2.7.1)
	Domain     string // d=
	Selector   string // s=
	Identifier string // i=
	B          string // the first characters of b=, to tell signatures apart (RFC 6008)
	Reason     string
}

// DMARCResult is the DMARC evaluation for the author domain.
type DMARCResult struct {
	Result     string // none, pass, fail, temperror or permerror (RFC 7489 11.2)
	FromDomain string
	// Policy is the published policy that applies: p=, or sp= for a
	// subdomain covered by its organizational domain's record.
	Policy dmarc.Policy
	// Disposition is what the policy asks for this message: none,
	// quarantine or reject; pct= sampling may have lowered it one step
	// (RFC 7489 6.6.4).
	Disposition dmarc.Policy
	Reason      string
}

// Check runs SPF, DKIM and DMARC. msg is the whole message as received
// (header and body). Checks never fail as a whole: a lookup failure is a
// temperror result.
func (c *Checker) Check(ctx context.Context, in Input, msg io.Reader) Result {
	var r Result
	r.SPF = c.checkSPF(ctx, in)
	r.DKIM = c.checkDKIM(ctx, in, msg)
	r.DMARC = c.checkDMARC(ctx, in, r.SPF, r.DKIM)
	return r
}

func (c *Checker) lookupTXT(ctx context.Context) func(string) ([]string, error) {
	r := tempResolver{c.Resolver}
	return func(name string) ([]string, error) {
		lctx, cancel := context.WithTimeout(ctx, c.Timeout)
		defer cancel()
		return r.LookupTXT(lctx, name)
	}
}

// tempResolver makes every DNS failure other than "no such record"
// (SERVFAIL, REFUSED, a timeout) temporary: RFC 7208 5 and RFC 7489
// 6.6.3 make such a failure a temperror, never a reason to refuse mail.
type tempResolver struct{ r *net.Resolver }

func temporary(err error) error {
	var de *net.DNSError
	if errors.As(err, &de) && !de.IsNotFound && !de.IsTemporary {
		cp := *de
		cp.IsTemporary = true
		return &cp
	}
	return err
}

func (t tempResolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	v, err := t.r.LookupTXT(ctx, name)
	return v, temporary(err)
}

func (t tempResolver) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	v, err := t.r.LookupMX(ctx, name)
	return v, temporary(err)
}

func (t tempResolver) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	v, err := t.r.LookupIPAddr(ctx, host)
	return v, temporary(err)
}

func (t tempResolver) LookupAddr(ctx context.Context, addr string) ([]string, error) {
	v, err := t.r.LookupAddr(ctx, addr)
	return v, temporary(err)
}

// checkSPF: RFC 7208 2.4, the MAIL FROM identity; for the null sender,
// postmaster@HELO.
func (c *Checker) checkSPF(ctx context.Context, in Input) SPFResult {
	sender, helo := in.MailFrom, false
	if sender == "" {
		sender, helo = "postmaster@"+in.Helo, true
	}
	// RFC 7208 4.1: the domain of MAIL FROM, after its last '@'.
	domain := mailaddr.Domain(sender)
	res := SPFResult{Domain: domain, Helo: helo}
	if in.IP == nil || domain == "" {
		res.Result = spf.None
		return res
	}
	sctx, cancel := context.WithTimeout(ctx, c.Timeout*4)
	defer cancel()
	res.Result, _ = spf.CheckHostWithSender(in.IP, in.Helo, sender,
		spf.WithContext(sctx), spf.WithResolver(tempResolver{c.Resolver}))
	return res
}

func (c *Checker) checkDKIM(ctx context.Context, in Input, msg io.Reader) []DKIMResult {
	if len(in.DKIMFields) == 0 {
		return nil
	}
	vs, err := msgdkim.VerifyWithOptions(msg, &msgdkim.VerifyOptions{
		LookupTXT:        c.lookupTXT(ctx),
		MaxVerifications: c.MaxVerifications,
	})
	if err != nil && !errors.Is(err, msgdkim.ErrTooManySignatures) && len(vs) == 0 {
		return []DKIMResult{{Result: "temperror", Reason: "message unreadable"}}
	}
	var out []DKIMResult
	for i, v := range vs {
		if v == nil {
			continue
		}
		d := DKIMResult{Domain: strings.ToLower(v.Domain), Identifier: v.Identifier}
		if i < len(in.DKIMFields) {
			tags := ParseTags(in.DKIMFields[i])
			d.Selector = tags["s"]
			if d.Domain == "" {
				d.Domain = strings.ToLower(tags["d"])
			}
			d.B = tags["b"]
			if len(d.B) > 8 {
				d.B = d.B[:8]
			}
		}
		switch {
		case v.Err == nil:
			d.Result = "pass"
		case msgdkim.IsTempFail(v.Err):
			d.Result, d.Reason = "temperror", reason(v.Err)
		case msgdkim.IsPermFail(v.Err):
			d.Result, d.Reason = "permerror", reason(v.Err)
		default:
			d.Result, d.Reason = "fail", reason(v.Err)
		}
		out = append(out, d)
	}
	return out
}

// reason is an error's text without the library's prefix and without
// the detail after the first colon (lookup errors name our resolver).
func reason(err error) string {
	s := strings.TrimPrefix(err.Error(), "dkim: ")
	s, _, _ = strings.Cut(s, ":")
	return s
}

// ParseTags reads a DKIM tag list (RFC 6376 3.2), "a=b; c=d", dropping
// the whitespace that folding leaves inside values.
func ParseTags(s string) map[string]string {
	tags := map[string]string{}
	for _, part := range strings.Split(s, ";") {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			continue
		}
		k = strings.TrimSpace(k)
		if k == "" {
			continue
		}
		v = strings.Map(func(r rune) rune {
			if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
				return -1
			}
			return r
		}, v)
		if _, dup := tags[k]; !dup {
			tags[k] = v
		}
	}
	return tags
}

// FromDomain is the domain of the message's author: RFC 7489 6.6.1, the
// single address of the single From field. ok is false when there is no
// such address (no From, several, or unparseable).
func FromDomain(fields []string) (domain string, ok bool) {
	if len(fields) != 1 {
		return "", false
	}
	addrs, err := mail.ParseAddressList(fields[0])
	if err != nil || len(addrs) != 1 {
		// A lenient fallback for the common "<user@domain>" with odd
		// display names the strict parser refuses.
		v := fields[0]
		if i, j := strings.LastIndexByte(v, '<'), strings.LastIndexByte(v, '>'); i >= 0 && j > i {
			v = v[i+1 : j]
		} else {
			return "", false
		}
		if strings.ContainsAny(v, ",<> \t") {
			return "", false
		}
		addrs = []*mail.Address{{Address: v}}
	}
	_, d, found := strings.Cut(addrs[0].Address, "@")
	d = strings.ToLower(strings.TrimSuffix(d, "."))
	if !found || d == "" {
		return "", false
	}
	return d, true
}

// OrgDomain is a domain's organizational domain (RFC 7489 3.2): its
// public suffix and one more label.
func OrgDomain(domain string) string {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	org, err := publicsuffix.EffectiveTLDPlusOne(domain)
	if err != nil {
		return domain
	}
	return org
}

// Aligned reports whether an authenticated domain is aligned with the
// author domain (RFC 7489 3.1): the same name in strict mode, the same
// organizational domain in relaxed mode.
func Aligned(authenticated, from string, mode dmarc.AlignmentMode) bool {
	a := strings.ToLower(strings.TrimSuffix(authenticated, "."))
	f := strings.ToLower(strings.TrimSuffix(from, "."))
	if a == "" || f == "" {
		return false
	}
	if mode == dmarc.AlignmentStrict {
		return a == f
	}
	return OrgDomain(a) == OrgDomain(f)
}
