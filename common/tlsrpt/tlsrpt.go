// Package tlsrpt is SMTP TLS Reporting (RFC 8460): the results of
// outbound TLS negotiations under a policy (MTA-STS or DANE), stored per
// day, aggregated into the JSON report of RFC 8460 4, and the mail that
// carries it to a domain's rua address (RFC 8460 5.3).
package tlsrpt

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"tern/common/safeio"
)

// Policy types of RFC 8460 4.4.
const (
	PolicySTS  = "sts"
	PolicyTLSA = "tlsa"
)

// Result is the outcome of one TLS negotiation (or of a policy lookup)
// for a recipient domain under a policy.
type Result struct {
	Time         time.Time `json:"time"`
	PolicyDomain string    `json:"policy_domain"`
	PolicyType   string    `json:"policy_type"`
	PolicyString []string  `json:"policy_string,omitempty"`
	MXHost       []string  `json:"mx_host,omitempty"` // the policy's MX patterns, or the TLSA's MX host
	ReceivingMX  string    `json:"receiving_mx,omitempty"`
	SendingIP    string    `json:"sending_ip,omitempty"`
	ReceivingIP  string    `json:"receiving_ip,omitempty"`
	// Failure is the RFC 8460 4.3 result type; "" is a success.
	Failure string `json:"failure,omitempty"`
	Detail  string `json:"detail,omitempty"`
}

// Store keeps results in dir, one file of JSON lines per UTC day
// (YYYY-MM-DD.jsonl), renamed YYYY-MM-DD.sent once the day's reports are
// sent and removed a week later. A line is appended without fsync: a
// crash may lose the last results, which only makes a report smaller.
type Store struct {
	dir string
	mu  sync.Mutex
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Open opens (creating) the store in dir.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("tlsrpt: %w", err)
	}
	return &Store{dir: dir}, nil
}

func (s *Store) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Day is the UTC day of t as the store names it.
func Day(t time.Time) string { return t.UTC().Format(time.DateOnly) }

// Record adds a result (stamped now when its Time is zero).
func (s *Store) Record(r Result) error {
	if r.Time.IsZero() {
		r.Time = s.now()
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	f, err := os.OpenFile(filepath.Join(s.dir, Day(r.Time)+".jsonl"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("tlsrpt: %w", err)
	}
	defer f.Close()
	if _, err := f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("tlsrpt: %w", err)
	}
	return nil
}

// Days lists the days with results, oldest first, and whether each was
// reported.
func (s *Store) Days() (days []string, sent map[string]bool, err error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, nil, fmt.Errorf("tlsrpt: %w", err)
	}
	sent = map[string]bool{}
	for _, e := range ents {
		name := e.Name()
		day, ext, _ := strings.Cut(name, ".")
		if _, perr := time.Parse(time.DateOnly, day); perr != nil || (ext != "jsonl" && ext != "sent") {
			continue
		}
		days = append(days, day)
		sent[day] = ext == "sent"
	}
	sort.Strings(days)
	return days, sent, nil
}

// Results reads the results of one day.
func (s *Store) Results(day string) ([]Result, error) {
	var out []Result
	for _, ext := range []string{".jsonl", ".sent"} {
		f, err := os.Open(filepath.Join(s.dir, day+ext))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("tlsrpt: %w", err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 0, 4096), 1<<20)
		for sc.Scan() {
			var r Result
			if json.Unmarshal(sc.Bytes(), &r) == nil {
				out = append(out, r)
			}
		}
		f.Close()
	}
	return out, nil
}

// MarkSent records that day's reports were sent, and forgets reported
// days older than a week.
func (s *Store) MarkSent(day string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := safeio.Rename(filepath.Join(s.dir, day+".jsonl"), filepath.Join(s.dir, day+".sent"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("tlsrpt: %w", err)
	}
	old := Day(s.now().AddDate(0, 0, -7))
	ents, _ := os.ReadDir(s.dir)
	for _, e := range ents {
		if d, ok := strings.CutSuffix(e.Name(), ".sent"); ok && d < old {
			os.Remove(filepath.Join(s.dir, e.Name()))
		}
	}
	return nil
}

// Report is the JSON report of RFC 8460 4.4.
type Report struct {
	OrganizationName string         `json:"organization-name"`
	DateRange        DateRange      `json:"date-range"`
	ContactInfo      string         `json:"contact-info"`
	ReportID         string         `json:"report-id"`
	Policies         []PolicyResult `json:"policies"`
}

// DateRange is the report's period.
type DateRange struct {
	Start time.Time `json:"start-datetime"`
	End   time.Time `json:"end-datetime"`
}

// PolicyResult is the results under one policy.
type PolicyResult struct {
	Policy         Policy          `json:"policy"`
	Summary        Summary         `json:"summary"`
	FailureDetails []FailureDetail `json:"failure-details,omitempty"`
}

// Policy identifies the policy applied.
type Policy struct {
	Type   string   `json:"policy-type"`
	String []string `json:"policy-string,omitempty"`
	Domain string   `json:"policy-domain"`
	MXHost []string `json:"mx-host,omitempty"`
}

// Summary counts the sessions.
type Summary struct {
	Successful int `json:"total-successful-session-count"`
	Failed     int `json:"total-failure-session-count"`
}

// FailureDetail counts one kind of failure.
type FailureDetail struct {
	ResultType          string `json:"result-type"`
	SendingMTAIP        string `json:"sending-mta-ip,omitempty"`
	ReceivingMXHostname string `json:"receiving-mx-hostname,omitempty"`
	ReceivingIP         string `json:"receiving-ip,omitempty"`
	FailedSessionCount  int    `json:"failed-session-count"`
	AdditionalInfo      string `json:"additional-information,omitempty"`
	FailureReasonCode   string `json:"failure-reason-code,omitempty"`
}

// Aggregate makes the report of one day's results for domain, or nil when
// there are none.
func Aggregate(results []Result, domain, day, org, contact string) (*Report, error) {
	start, err := time.Parse(time.DateOnly, day)
	if err != nil {
		return nil, fmt.Errorf("tlsrpt: day %q: %w", day, err)
	}
	type pkey struct{ typ, str, mx string }
	type fkey struct{ typ, sip, mx, rip, reason string }
	byPolicy := map[pkey]*PolicyResult{}
	details := map[pkey]map[fkey]int{}
	var order []pkey
	for _, r := range results {
		if !strings.EqualFold(r.PolicyDomain, domain) {
			continue
		}
		k := pkey{r.PolicyType, strings.Join(r.PolicyString, "\n"), strings.Join(r.MXHost, "\n")}
		pr := byPolicy[k]
		if pr == nil {
			pr = &PolicyResult{Policy: Policy{Type: r.PolicyType, String: r.PolicyString, Domain: domain, MXHost: r.MXHost}}
			byPolicy[k] = pr
			details[k] = map[fkey]int{}
			order = append(order, k)
		}
		if r.Failure == "" {
			pr.Summary.Successful++
			continue
		}
		pr.Summary.Failed++
		details[k][fkey{r.Failure, r.SendingIP, r.ReceivingMX, r.ReceivingIP, r.Detail}]++
	}
	if len(order) == 0 {
		return nil, nil
	}
	var id [8]byte
	rand.Read(id[:])
	rep := &Report{
		OrganizationName: org,
		DateRange:        DateRange{Start: start, End: start.Add(24*time.Hour - time.Second)},
		ContactInfo:      contact,
		ReportID:         day + "." + hex.EncodeToString(id[:]) + "@" + org,
	}
	for _, k := range order {
		pr := byPolicy[k]
		var fks []fkey
		for fk := range details[k] {
			fks = append(fks, fk)
		}
		sort.Slice(fks, func(i, j int) bool { return fmt.Sprint(fks[i]) < fmt.Sprint(fks[j]) })
		for _, fk := range fks {
			pr.FailureDetails = append(pr.FailureDetails, FailureDetail{ResultType: fk.typ, SendingMTAIP: fk.sip,
				ReceivingMXHostname: fk.mx, ReceivingIP: fk.rip, FailureReasonCode: fk.reason,
				FailedSessionCount: details[k][fk]})
		}
		rep.Policies = append(rep.Policies, *pr)
	}
	return rep, nil
}

// Record is a domain's _smtp._tls TXT record (RFC 8460 3).
type Record struct {
	RUA []string // "mailto:…" and "https://…" URIs
}

// ErrNoRecord: the domain asks for no reports.
var ErrNoRecord = errors.New("tlsrpt: no TLSRPTv1 record")

// ParseRecord parses "v=TLSRPTv1; rua=mailto:a@b,https://c".
func ParseRecord(txt string) (Record, error) {
	fields := strings.Split(txt, ";")
	if strings.TrimSpace(fields[0]) != "v=TLSRPTv1" {
		return Record{}, fmt.Errorf("%w: %q", ErrNoRecord, txt)
	}
	var r Record
	for _, f := range fields[1:] {
		k, v, ok := strings.Cut(strings.TrimSpace(f), "=")
		if ok && k == "rua" {
			for _, u := range strings.Split(v, ",") {
				if u = strings.TrimSpace(u); u != "" {
					r.RUA = append(r.RUA, u)
				}
			}
		}
	}
	if len(r.RUA) == 0 {
		return Record{}, fmt.Errorf("%w: no rua in %q", ErrNoRecord, txt)
	}
	return r, nil
}

// LookupRecord finds the _smtp._tls record of domain: exactly one record
// starting with v=TLSRPTv1 (RFC 8460 3).
func LookupRecord(ctx context.Context, res *net.Resolver, domain string) (Record, error) {
	txts, err := res.LookupTXT(ctx, "_smtp._tls."+domain)
	if err != nil {
		var de *net.DNSError
		if errors.As(err, &de) && de.IsNotFound {
			return Record{}, fmt.Errorf("%w for %s", ErrNoRecord, domain)
		}
		return Record{}, fmt.Errorf("tlsrpt: TXT _smtp._tls.%s: %w", domain, err)
	}
	var found []string
	for _, t := range txts {
		if strings.HasPrefix(t, "v=TLSRPTv1") {
			found = append(found, t)
		}
	}
	if len(found) != 1 {
		return Record{}, fmt.Errorf("%w for %s: %d records", ErrNoRecord, domain, len(found))
	}
	return ParseRecord(found[0])
}

// Mail is the report as a message (RFC 8460 5.3): multipart/report of
// report-type "tlsrpt" with a text part and the gzipped JSON report
// (application/tlsrpt+gzip) named as RFC 8460 5.1 says.
func Mail(rep *Report, domain, submitter, from string, to []string, now time.Time) ([]byte, error) {
	js, err := json.Marshal(rep)
	if err != nil {
		return nil, err
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(js)
	if err := zw.Close(); err != nil {
		return nil, err
	}
	var rb [12]byte
	rand.Read(rb[:])
	boundary := "=_tlsrpt_" + hex.EncodeToString(rb[:])
	name := fmt.Sprintf("%s!%s!%d!%d!%s.json.gz", submitter, domain, rep.DateRange.Start.Unix(),
		rep.DateRange.End.Unix(), hex.EncodeToString(rb[:4]))
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: TLS reports <%s>\r\n", from)
	fmt.Fprintf(&b, "To: %s\r\n", "<"+strings.Join(to, ">, <")+">")
	fmt.Fprintf(&b, "Subject: Report Domain: %s Submitter: %s Report-ID: <%s>\r\n", domain, submitter, rep.ReportID)
	fmt.Fprintf(&b, "Date: %s\r\n", now.Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: <%s>\r\n", rep.ReportID)
	// RFC 8460 5.3: the two header fields that name the report.
	fmt.Fprintf(&b, "TLS-Report-Domain: %s\r\n", domain)
	fmt.Fprintf(&b, "TLS-Report-Submitter: %s\r\n", submitter)
	b.WriteString("Auto-Submitted: auto-generated\r\nMIME-Version: 1.0\r\n")
	fmt.Fprintf(&b, "Content-Type: multipart/report; report-type=\"tlsrpt\";\r\n\tboundary=\"%s\"\r\n\r\n", boundary)
	fmt.Fprintf(&b, "--%s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n", boundary)
	fmt.Fprintf(&b, "This is an aggregate TLS report (RFC 8460) from %s for %s, %s.\r\n\r\n",
		submitter, domain, rep.DateRange.Start.Format(time.DateOnly))
	fmt.Fprintf(&b, "--%s\r\nContent-Type: application/tlsrpt+gzip\r\nContent-Transfer-Encoding: base64\r\n", boundary)
	fmt.Fprintf(&b, "Content-Disposition: attachment; filename=\"%s\"\r\n\r\n", name)
	enc := base64.StdEncoding.EncodeToString(gz.Bytes())
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\r\n")
	fmt.Fprintf(&b, "--%s--\r\n", boundary)
	return b.Bytes(), nil
}

// ParseMail reads the report out of a report mail, as its receiver does:
// the application/tlsrpt+gzip part of a multipart/report (RFC 8460 5.3).
func ParseMail(r io.Reader) (*Report, error) {
	m, err := mail.ReadMessage(r)
	if err != nil {
		return nil, fmt.Errorf("tlsrpt: %w", err)
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/report" || params["report-type"] != "tlsrpt" {
		return nil, fmt.Errorf("tlsrpt: Content-Type %q is not a TLS report", m.Header.Get("Content-Type"))
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		part, err := mr.NextPart()
		if err != nil {
			return nil, fmt.Errorf("tlsrpt: no application/tlsrpt+gzip part: %w", err)
		}
		if ct, _, _ := mime.ParseMediaType(part.Header.Get("Content-Type")); ct != "application/tlsrpt+gzip" {
			continue
		}
		var body io.Reader = part
		if strings.EqualFold(part.Header.Get("Content-Transfer-Encoding"), "base64") {
			body = base64.NewDecoder(base64.StdEncoding, part)
		}
		zr, err := gzip.NewReader(body)
		if err != nil {
			return nil, fmt.Errorf("tlsrpt: %w", err)
		}
		js, err := io.ReadAll(io.LimitReader(zr, 16<<20))
		if err != nil {
			return nil, fmt.Errorf("tlsrpt: %w", err)
		}
		var rep Report
		if err := json.Unmarshal(js, &rep); err != nil {
			return nil, fmt.Errorf("tlsrpt: report JSON: %w", err)
		}
		return &rep, nil
	}
}
