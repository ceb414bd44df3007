package tlsrpt

import (
	"bytes"
	"net/mail"
	"testing"
	"time"
)

func TestStoreAggregateMail(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	day := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	clock := day.Add(time.Hour)
	s.Now = func() time.Time { return clock }
	sts := Result{PolicyDomain: "sts.test", PolicyType: PolicySTS, PolicyString: []string{"version: STSv1", "mode: testing"},
		MXHost: []string{"mx.sts.test"}, ReceivingMX: "mx.sts.test", SendingIP: "127.0.0.1", ReceivingIP: "127.0.0.1"}
	for i := 0; i < 3; i++ {
		s.Record(sts)
	}
	bad := sts
	bad.Failure = "certificate-host-mismatch"
	s.Record(bad)
	s.Record(bad)
	nostls := sts
	nostls.Failure = "starttls-not-supported"
	s.Record(nostls)
	s.Record(Result{PolicyDomain: "other.test", PolicyType: PolicySTS})
	clock = day.Add(25 * time.Hour) // the next day: not in the report
	s.Record(sts)

	days, sent, err := s.Days()
	if err != nil || len(days) != 2 || days[0] != "2026-11-30" || sent[days[0]] {
		t.Fatalf("days %v %v %v", days, sent, err)
	}
	res, _ := s.Results(days[0])
	rep, err := Aggregate(res, "sts.test", days[0], "mail.example.test", "mailto:postmaster@example.test")
	if err != nil || len(rep.Policies) != 1 {
		t.Fatalf("report %+v %v", rep, err)
	}
	p := rep.Policies[0]
	if p.Summary.Successful != 3 || p.Summary.Failed != 3 || len(p.FailureDetails) != 2 ||
		p.FailureDetails[0].ResultType != "certificate-host-mismatch" || p.FailureDetails[0].FailedSessionCount != 2 ||
		p.FailureDetails[1].ResultType != "starttls-not-supported" || p.Policy.Type != "sts" {
		t.Errorf("policy results %+v", p)
	}
	if rep.DateRange.Start != day || rep.DateRange.End != day.Add(24*time.Hour-time.Second) {
		t.Errorf("date range %+v", rep.DateRange)
	}

	msg, err := Mail(rep, "sts.test", "mail.example.test", "postmaster@example.test", []string{"rua@sts.test"}, clock)
	if err != nil {
		t.Fatal(err)
	}
	m, err := mail.ReadMessage(bytes.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	if m.Header.Get("TLS-Report-Domain") != "sts.test" || m.Header.Get("TLS-Report-Submitter") != "mail.example.test" {
		t.Errorf("header %v", m.Header)
	}
	got, err := ParseMail(bytes.NewReader(msg))
	if err != nil || got.Policies[0].Summary != p.Summary || got.ReportID != rep.ReportID {
		t.Errorf("mailed report %+v %v", got, err)
	}

	if err := s.MarkSent(days[0]); err != nil {
		t.Fatal(err)
	}
	if _, sent, _ := s.Days(); !sent["2026-11-30"] {
		t.Error("not marked sent")
	}
}

func TestParseRecord(t *testing.T) {
	r, err := ParseRecord("v=TLSRPTv1; rua=mailto:reports@example.com,https://reporting.example.com/v1/tlsrpt")
	if err != nil || len(r.RUA) != 2 || r.RUA[0] != "mailto:reports@example.com" {
		t.Errorf("%+v %v", r, err)
	}
	for _, bad := range []string{"v=TLSRPTv2; rua=mailto:a@b", "v=TLSRPTv1;", "rua=mailto:a@b"} {
		if _, err := ParseRecord(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func FuzzParseRecord(f *testing.F) {
	f.Add("v=TLSRPTv1; rua=mailto:reports@example.com,https://reporting.example.com/v1/tlsrpt")
	f.Add("v=TLSRPTv1;rua=mailto:a@b!10m")
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRecord(s)
		if err == nil && len(r.RUA) == 0 {
			t.Fatalf("ParseRecord(%q) accepted no rua", s)
		}
	})
}

// FuzzParseMail: a report mail from anyone never crashes the reader.
func FuzzParseMail(f *testing.F) {
	f.Add([]byte("Content-Type: multipart/report; report-type=tlsrpt; boundary=b\r\n\r\n--b\r\nContent-Type: application/tlsrpt+gzip\r\n\r\nxx\r\n--b--\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ParseMail(bytes.NewReader(b))
	})
}
