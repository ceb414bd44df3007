package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"tern/common/config"
	"tern/common/dkim"
	"tern/common/publish"
)

// zoneRecords parses `mailq -dns` output: each record line into "name
// TYPE" → value, TXT strings joined.
func zoneRecords(t *testing.T, out string) map[string]string {
	t.Helper()
	recs := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.HasPrefix(l, ";") {
			continue
		}
		f := strings.Fields(l)
		if len(f) < 4 || f[1] != "IN" {
			t.Fatalf("not a zone line: %q", l)
		}
		key := f[0] + " " + f[2]
		val := strings.Join(f[3:], " ")
		if f[2] == "TXT" {
			parts := strings.Split(val, `"`)
			var b strings.Builder
			for i := 1; i < len(parts); i += 2 {
				b.WriteString(parts[i])
			}
			val = b.String()
		}
		if _, dup := recs[key]; dup {
			t.Fatalf("two %s records", key)
		}
		recs[key] = val
	}
	return recs
}

// TestDNSRecords: `mailq -dns` names every record the domain needs, with
// the DKIM key of the configured key file, the MTA-STS id of the policy
// webd serves, and SRV records for exactly the services configured.
func TestDNSRecords(t *testing.T) {
	e := newEnv(t)
	keyPath := filepath.Join(e.dir, "dkim", "example.test.pem")
	key, pemData, err := dkim.GenerateKey("ed25519")
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Dir(keyPath), 0o700)
	if err := dkim.WriteKey(keyPath, pemData); err != nil {
		t.Fatal(err)
	}
	f, _ := os.OpenFile(e.config, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("[dkim]\nselector = \"s2026\"\nkey = \"" + filepath.Join(e.dir, "dkim", "%d.pem") + "\"\n" +
		"[webd]\nmail_host = \"mx.example.test\"\nmta_sts_mode = \"enforce\"\n" +
		"[managesieve]\nlisten = [\"0.0.0.0:4190\"]\n" +
		"[pop3d]\nlisten = []\n")
	f.Close()
	cfg, err := config.Load(e.config)
	if err != nil {
		t.Fatal(err)
	}

	r := e.mailq("-dns", "Example.Test")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	got := zoneRecords(t, r.stdout)
	dkimRec, _ := dkim.TXTRecord(key)
	want := map[string]string{
		"example.test. MX":                     "10 mx.example.test.",
		"example.test. TXT":                    "v=spf1 mx -all",
		"s2026._domainkey.example.test. TXT":   dkimRec,
		"_dmarc.example.test. TXT":             "v=DMARC1; p=quarantine; rua=mailto:postmaster@example.test",
		"_mta-sts.example.test. TXT":           "v=STSv1; id=" + publish.MTASTSPolicyID(cfg),
		"mta-sts.example.test. CNAME":          "mx.example.test.",
		"_smtp._tls.example.test. TXT":         "v=TLSRPTv1; rua=mailto:postmaster@example.test",
		"autoconfig.example.test. CNAME":       "mx.example.test.",
		"autodiscover.example.test. CNAME":     "mx.example.test.",
		"_submissions._tcp.example.test. SRV":  "0 0 0 .", // smtpd.submissions = [] here
		"_submission._tcp.example.test. SRV":   "0 0 0 .",
		"_imaps._tcp.example.test. SRV":        "0 1 993 mx.example.test.",
		"_imap._tcp.example.test. SRV":         "10 1 143 mx.example.test.",
		"_pop3s._tcp.example.test. SRV":        "0 1 995 mx.example.test.",
		"_pop3._tcp.example.test. SRV":         "0 0 0 .",
		"_sieve._tcp.example.test. SRV":        "0 1 4190 mx.example.test.",
		"_autodiscover._tcp.example.test. SRV": "0 1 443 mx.example.test.",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected record %s %q", k, got[k])
		}
	}
	if !strings.Contains(r.stdout, "must name: mx.example.test mta-sts.example.test autoconfig.example.test autodiscover.example.test") {
		t.Errorf("no certificate names line:\n%s", r.stdout)
	}
	// The id follows the policy: another mode, another id.
	cfg.WebD.MTASTSMode = "testing"
	if publish.MTASTSPolicyID(cfg) == strings.TrimPrefix(got["_mta-sts.example.test. TXT"], "v=STSv1; id=") {
		t.Errorf("the MTA-STS id did not change with the policy")
	}

	if r := e.mailq("-dns", "elsewhere.test"); r.code != exUsage {
		t.Errorf("a non-local domain: exit %d %s", r.code, r.stderr)
	}
	os.Remove(keyPath)
	r = e.mailq("-dns", "example.test")
	if r.code != 0 || !strings.Contains(r.stdout, "; no DKIM key at "+keyPath) || strings.Contains(r.stdout, "_domainkey") {
		t.Errorf("without a key: exit %d\n%s", r.code, r.stdout)
	}
}
