package courier

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"tern/common/config"
	"tern/common/dane"
	"tern/common/maillog"
	"tern/common/mtasts"
	"tern/common/tlsrpt"
	"tern/common/trace"
)

// errPolicy marks a failure to meet a domain's TLS policy (MTA-STS
// enforce): unlike errTLS it never falls back to plain text.
var errPolicy = errors.New("courier: TLS policy not met")

// The result types of RFC 8460 4.3 that tern reports.
const (
	failStartTLS     = "starttls-not-supported"
	failHostMismatch = "certificate-host-mismatch"
	failExpired      = "certificate-expired"
	failNotTrusted   = "certificate-not-trusted"
	failValidation   = "validation-failure"
	failSTSFetch     = "sts-policy-fetch-error"
	failTLSAInvalid  = "tlsa-invalid"
	failDNSSEC       = "dnssec-invalid"
)

// outboundTLS is what a recipient domain's policies ask of the
// connections to its MX hosts. A nil *outboundTLS asks nothing: TLS is
// opportunistic.
type outboundTLS struct {
	domain string
	sts    *mtasts.Policy // in force, nil when none
	stsID  string
	// mxSecure: the domain's MX records are DNSSEC-validated, so DANE
	// applies to its MX hosts (RFC 7672 2.2.1).
	mxSecure bool
	// dane is set, for one MX host, when it has usable validated TLSA
	// records (dane.go); DANE then wins over MTA-STS (RFC 8461 2).
	dane *daneHost
	// requireTLS: the message asks for REQUIRETLS (requiretls.go), so a
	// policy must authenticate the host and testing counts as enforce.
	requireTLS bool
}

// enforced reports whether the policy must be met for delivery.
func (o *outboundTLS) enforced() bool {
	return o != nil && (o.dane != nil || o.sts != nil && (o.sts.Mode == mtasts.Enforce || o.requireTLS))
}

// checked reports whether the MX certificate is checked (and the outcome
// reported) at all.
func (o *outboundTLS) checked() bool { return o != nil && (o.dane != nil || o.sts != nil) }

func (o *outboundTLS) describe() string {
	if o.dane != nil {
		return fmt.Sprintf("DANE policy of %s (TLSA records of %s)", o.domain, o.dane.name)
	}
	return fmt.Sprintf("MTA-STS policy of %s (mode %s, id %s)", o.domain, o.sts.Mode, o.stsID)
}

// policyFor finds the policies of domain. MTA-STS and DANE apply only to
// mail routed by the domain's MX records (RFC 8461 4, RFC 7672 2.2), not
// to relay_host or the transport map.
func (cr *Courier) policyFor(ctx context.Context, domain string, viaMX bool) *outboundTLS {
	if !viaMX {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, cr.cfg().DNS.Timeout.D()+cr.cfg().SMTPD.ConnectTimeout.D())
	defer cancel()
	o := &outboundTLS{domain: domain}
	if cr.secure != nil {
		var err error
		if o.mxSecure, err = cr.secure.SecureMX(ctx, domain); err != nil {
			cr.log.Info("MX validation", "domain", domain, "err", err)
		}
	}
	if cr.sts == nil {
		return o
	}
	res, err := cr.sts.Lookup(ctx, domain)
	if err != nil {
		cr.log.Error("MTA-STS policy cache", "domain", domain, "err", err)
	}
	if res.FetchErr != nil {
		cr.log.Info("no MTA-STS policy", "domain", domain, "err", res.FetchErr)
		if !errors.Is(res.FetchErr, mtasts.ErrNoRecord) {
			cr.tlsOutcome(&outboundTLS{domain: domain}, "", nil, failSTSFetch, res.FetchErr)
		}
	}
	o.sts, o.stsID = res.Policy, res.ID
	return o
}

// allowHost checks an MX host against the policy's mx patterns (RFC 8461
// 4.1): under enforce a host that does not match is not used.
func (o *outboundTLS) allowHost(cr *Courier, hop string) error {
	if o == nil || o.sts == nil || o.dane != nil {
		return nil
	}
	host, _, _ := net.SplitHostPort(hop)
	if o.sts.Match(host) {
		return nil
	}
	err := fmt.Errorf("MX host %s is not named by the %s", host, o.describe())
	cr.tlsOutcome(o, host, nil, failValidation, err)
	if o.enforced() {
		return fmt.Errorf("%w: %v", errPolicy, err)
	}
	return nil
}

// noSTARTTLS: the MX host did not offer STARTTLS. Under enforce that
// ends the attempt (RFC 8461 4.2); under testing it is reported.
func (o *outboundTLS) noSTARTTLS(cr *Courier, hop string, conn net.Conn) error {
	if !o.checked() {
		return nil
	}
	return o.tlsFailed(cr, hop, conn, failStartTLS, errors.New("STARTTLS not offered"))
}

// tlsFailed reports a failed STARTTLS or handshake and returns the error
// to give: errPolicy under enforce, errTLS (fall back to plain text)
// otherwise.
func (o *outboundTLS) tlsFailed(cr *Courier, hop string, conn net.Conn, kind string, err error) error {
	host, _, _ := net.SplitHostPort(hop)
	if o.checked() {
		cr.tlsOutcome(o, host, conn, kind, err)
	}
	if o.enforced() {
		return fmt.Errorf("%w: %s requires TLS with a valid certificate: %s: %s: %v", errPolicy, o.describe(), host, kind, err)
	}
	return fmt.Errorf("%w: %s: %v", errTLS, hop, err)
}

// handshake runs the TLS handshake on raw after STARTTLS. Under a policy
// the certificate must chain to a trusted root and be valid for the MX
// host name (RFC 8461 4.2); under enforce the handshake fails otherwise,
// under testing the outcome is only reported.
func (cr *Courier) handshake(ctx context.Context, raw net.Conn, hop string, o *outboundTLS) (*tls.Conn, error) {
	host, _, _ := net.SplitHostPort(hop)
	cfg := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12, InsecureSkipVerify: true}
	if o != nil && o.dane != nil {
		// RFC 7672 3: the TLSA records, not the WebPKI, authenticate.
		cfg.VerifyConnection = o.dane.verify
	} else if o.enforced() {
		cfg.InsecureSkipVerify = false
		cfg.RootCAs = cr.roots
	}
	tc := tls.Client(raw, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, o.tlsFailed(cr, hop, raw, certFailure(err), err)
	}
	if o.checked() && !o.enforced() {
		certs := tc.ConnectionState().PeerCertificates
		inter := x509.NewCertPool()
		for _, c := range certs[1:] {
			inter.AddCert(c)
		}
		if _, err := certs[0].Verify(x509.VerifyOptions{DNSName: host, Roots: cr.roots, Intermediates: inter}); err != nil {
			cr.tlsOutcome(o, host, raw, certFailure(err), err)
			return tc, nil
		}
	}
	if o.checked() {
		cr.tlsOutcome(o, host, raw, "", nil)
	}
	return tc, nil
}

// certFailure classifies a certificate error as RFC 8460 4.3 does.
func certFailure(err error) string {
	var he x509.HostnameError
	var ua x509.UnknownAuthorityError
	var ci x509.CertificateInvalidError
	switch {
	case errors.Is(err, dane.ErrNoMatch):
		return failTLSAInvalid
	case errors.As(err, &he):
		return failHostMismatch
	case errors.As(err, &ua):
		return failNotTrusted
	case errors.As(err, &ci) && ci.Reason == x509.Expired:
		return failExpired
	}
	return failValidation
}

// tlsOutcome records the result of one TLS negotiation under a policy
// (failure "" is a success) for the logs and the TLS reports (RFC 8460):
// conn, when there was one, gives the addresses of the session.
func (cr *Courier) tlsOutcome(o *outboundTLS, mx string, conn net.Conn, failure string, err error) {
	r := tlsrpt.Result{PolicyDomain: o.domain, ReceivingMX: mx, Failure: failure}
	switch {
	case o.dane != nil:
		r.PolicyType = tlsrpt.PolicyTLSA
		for _, t := range o.dane.recs {
			r.PolicyString = append(r.PolicyString, fmt.Sprintf("%d %d %d %x", t.Usage, t.Selector, t.MatchingType, t.Data))
		}
		r.MXHost = []string{mx}
	default:
		r.PolicyType = tlsrpt.PolicySTS
		if o.sts != nil {
			r.PolicyString = strings.Split(strings.TrimSuffix(o.sts.String(), "\r\n"), "\r\n")
			r.MXHost = o.sts.MX
		}
	}
	if conn != nil {
		r.SendingIP = ipOf(conn.LocalAddr())
		r.ReceivingIP = ipOf(conn.RemoteAddr())
	}
	if err != nil {
		r.Detail = trace.Reply(err.Error())
	}
	if cr.tlsrpt != nil {
		if err := cr.tlsrpt.Record(r); err != nil {
			cr.log.Error("record TLS result", "err", err)
		}
	}
	reason := ""
	if err != nil && failure != "" {
		reason = err.Error()
	}
	maillog.TLSPolicy(cr.log, o.domain, mx, string(r.PolicyType), string(failure), reason)
}

func ipOf(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	return ""
}

// loadRoots is the system's trusted roots plus smtpd.tls_ca_file.
func loadRoots(cfg *config.Config) (*x509.CertPool, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if f := cfg.SMTPD.TLSCAFile; f != "" {
		pem, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("smtpd.tls_ca_file: %w", err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("smtpd.tls_ca_file %s: no PEM certificate in it", f)
		}
	}
	return pool, nil
}

// newSTSSource is the MTA-STS policy source of smtpd.mta_sts, with its
// cache in state_dir/mta-sts.
func newSTSSource(cfg *config.Config, resolver *net.Resolver, roots *x509.CertPool) (*mtasts.Source, error) {
	cache, err := mtasts.OpenCache(filepath.Join(cfg.StateDir, "mta-sts"))
	if err != nil {
		return nil, err
	}
	f := &mtasts.Fetcher{Resolver: resolver, Roots: roots, Port: cfg.SMTPD.MTASTSPort,
		Timeout: max(cfg.SMTPD.ConnectTimeout.D(), 10*time.Second)}
	return &mtasts.Source{Resolver: resolver, Fetcher: f, Cache: cache}, nil
}
