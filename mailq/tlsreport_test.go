package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"tern/common/tlsrpt"
)

// mailq -tls-report DOMAIN prints the day's aggregate report of the
// results smtpd recorded (RFC 8460 4.4), and says when there are none.
func TestTLSReportCommand(t *testing.T) {
	e := newEnv(t)
	store, err := tlsrpt.Open(filepath.Join(e.dir, "spool", "tls-rpt"))
	if err != nil {
		t.Fatal(err)
	}
	ok := tlsrpt.Result{PolicyDomain: "sts.test", PolicyType: tlsrpt.PolicySTS,
		PolicyString: []string{"version: STSv1", "mode: enforce", "mx: mx.sts.test", "max_age: 60"}, MXHost: []string{"mx.sts.test"}}
	bad := ok
	bad.Failure, bad.ReceivingMX = "starttls-not-supported", "mx.sts.test"
	for _, r := range []tlsrpt.Result{ok, ok, bad} {
		if err := store.Record(r); err != nil {
			t.Fatal(err)
		}
	}
	r := e.mailq("-tls-report", "STS.test")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	var rep tlsrpt.Report
	if err := json.NewDecoder(strings.NewReader(r.stdout)).Decode(&rep); err != nil {
		t.Fatalf("%v:\n%s", err, r.stdout)
	}
	if len(rep.Policies) != 1 || rep.Policies[0].Summary.Successful != 2 || rep.Policies[0].Summary.Failed != 1 ||
		rep.Policies[0].FailureDetails[0].ResultType != "starttls-not-supported" {
		t.Errorf("report:\n%s", r.stdout)
	}
	if r := e.mailq("-tls-report", "other.test"); r.code != 0 || r.stdout != "" || !strings.Contains(r.stderr, "no TLS results") {
		t.Errorf("a domain without results: %d %q %q", r.code, r.stdout, r.stderr)
	}
}
