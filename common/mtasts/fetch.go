package mtasts

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// ErrNoRecord is returned when a domain publishes no usable _mta-sts
// record (none, or not exactly one starting with v=STSv1).
var ErrNoRecord = errors.New("mtasts: no MTA-STS record")

// LookupRecord finds the _mta-sts TXT record of domain (RFC 8461 3.1):
// records not starting with "v=STSv1" are ignored, and anything but
// exactly one valid record means no policy (ErrNoRecord). Other errors
// are lookup failures.
func LookupRecord(ctx context.Context, r *net.Resolver, domain string) (Record, error) {
	txts, err := r.LookupTXT(ctx, "_mta-sts."+domain)
	if err != nil {
		var de *net.DNSError
		if errors.As(err, &de) && de.IsNotFound {
			return Record{}, fmt.Errorf("%w for %s", ErrNoRecord, domain)
		}
		return Record{}, fmt.Errorf("mtasts: TXT lookup for _mta-sts.%s: %w", domain, err)
	}
	var found []string
	for _, t := range txts {
		if strings.HasPrefix(t, "v="+Version+";") || t == "v="+Version {
			found = append(found, t)
		}
	}
	if len(found) != 1 {
		return Record{}, fmt.Errorf("%w for %s: %d STSv1 records", ErrNoRecord, domain, len(found))
	}
	rec, err := ParseRecord(found[0])
	if err != nil {
		return Record{}, fmt.Errorf("%w for %s: %v", ErrNoRecord, domain, err)
	}
	return rec, nil
}

// Fetcher gets policies over HTTPS.
type Fetcher struct {
	// Resolver finds the policy host's address.
	Resolver *net.Resolver
	// Roots are the trusted CAs (nil: the system's).
	Roots *x509.CertPool
	// Port is the HTTPS port: 443 (RFC 8461 3.3); only tests change it.
	Port int
	// Timeout bounds the whole fetch.
	Timeout time.Duration
}

// Fetch gets the policy of domain from
// https://mta-sts.DOMAIN/.well-known/mta-sts.txt (RFC 8461 3.3): the
// certificate must be valid for that name, the answer a 200 (redirects
// are not followed) of type text/plain, at most MaxPolicySize bytes.
func (f *Fetcher) Fetch(ctx context.Context, domain string) (*Policy, error) {
	host := "mta-sts." + domain
	port := f.Port
	if port == 0 {
		port = 443
	}
	dialer := &net.Dialer{Timeout: f.Timeout, Resolver: f.Resolver}
	tr := &http.Transport{
		Proxy: nil,
		// Whatever the URL says, the connection goes to the policy host
		// on the configured port, through tern's resolver.
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, net.JoinHostPort(host, strconv.Itoa(port)))
		},
		TLSClientConfig:     &tls.Config{RootCAs: f.Roots, ServerName: host, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout: f.Timeout,
		DisableKeepAlives:   true,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{
		Transport: tr,
		Timeout:   f.Timeout,
		// RFC 8461 3.3: "HTTP 3xx redirects MUST NOT be followed".
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+host+"/.well-known/mta-sts.txt", nil)
	if err != nil {
		return nil, fmt.Errorf("mtasts: fetch policy of %s: %w", domain, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("mtasts: fetch policy of %s: %w", domain, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("mtasts: fetch policy of %s: HTTP status %s", domain, resp.Status)
	}
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || mt != "text/plain" {
		return nil, fmt.Errorf("mtasts: fetch policy of %s: media type %q, want text/plain", domain, resp.Header.Get("Content-Type"))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxPolicySize+1))
	if err != nil {
		return nil, fmt.Errorf("mtasts: fetch policy of %s: %w", domain, err)
	}
	p, err := Parse(body)
	if err != nil {
		return nil, fmt.Errorf("mtasts: policy of %s: %w", domain, err)
	}
	return p, nil
}
