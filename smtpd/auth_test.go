package main

import (
	"crypto"
	"io"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/authres"
	"github.com/emersion/go-smtp"

	"tern/common/config"
	"tern/common/dkim"
	"tern/common/dns/dnstest"
)

// authKeys are the DKIM keys of the test zones.
type authKeys struct {
	rsa, ed crypto.Signer
}

// authZones are the sender domains of the matrix, served by a real nsd.
// The client is always 127.0.0.1.
func authZones(t testing.TB) (map[string]string, authKeys) {
	t.Helper()
	rsaKey, _, err := dkim.GenerateKey("rsa")
	if err != nil {
		t.Fatal(err)
	}
	edKey, _, err := dkim.GenerateKey("ed25519")
	if err != nil {
		t.Fatal(err)
	}
	rsaRec, _ := dkim.TXTRecord(rsaKey)
	edRec, _ := dkim.TXTRecord(edKey)
	rsaLine := func(sel, dom string) string { return dkim.ZoneLines(sel, dom, rsaRec) }
	return map[string]string{
		"sender.test": `@ IN TXT "v=spf1 ip4:127.0.0.1 -all"
_dmarc IN TXT "v=DMARC1; p=reject"
nospf IN TXT "v=spf1 -all"
` + rsaLine("s1", "sender.test"),
		"quar.test": `@ IN TXT "v=spf1 -all"
_dmarc IN TXT "v=DMARC1; p=quarantine"`,
		"none.test": `@ IN TXT "v=spf1 -all"
_dmarc IN TXT "v=DMARC1; p=none"`,
		"soft.test": `@ IN TXT "v=spf1 ~all"
_dmarc IN TXT "v=DMARC1; p=reject"`,
		"nodmarc.test": `@ IN TXT "v=spf1 -all"`,
		"ed.test": `@ IN TXT "v=spf1 -all"
_dmarc IN TXT "v=DMARC1; p=reject"
s2._domainkey IN TXT "` + edRec + `"`,
		"other.test": `@ IN TXT "v=spf1 ip4:127.0.0.1 -all"
` + rsaLine("s1", "other.test"),
		"helo.test": `client IN TXT "v=spf1 ip4:127.0.0.1 -all"
_dmarc IN TXT "v=DMARC1; p=reject"`,
		"remote.test": `@ IN MX 10 mx
mx IN A 127.0.0.1`,
	}, authKeys{rsa: rsaKey, ed: edKey}
}

// authCase is one message of the matrix.
type authCase struct {
	name     string
	server   string // which smtpd: "default", "noreject" (dmarc_reject off), "spfreject" (spf_fail = reject)
	helo     string
	mailFrom string
	from     string // the From field's address
	sign     string // "", "rsa:domain:selector", "ed:domain:selector"
	tamper   bool   // change the body after signing
	extra    string // header fields added before signing
	code     int    // 0: accepted
	enh      smtp.EnhancedCode
	want     []string // in the Authentication-Results field
	spam     bool     // marked with lmtpd's spam header
}

var authMatrix = []authCase{
	{name: "all pass", helo: "client.test", mailFrom: "a@sender.test", from: "a@sender.test", sign: "rsa:sender.test:s1",
		want: []string{"spf=pass smtp.mailfrom=sender.test", "dkim=pass ", "header.d=sender.test", "header.s=s1", "dmarc=pass (p=reject dis=none) header.from=sender.test"}},
	{name: "SPF pass alone aligns", helo: "client.test", mailFrom: "a@sender.test", from: "b@sender.test",
		want: []string{"spf=pass", "dkim=none", "dmarc=pass"}},
	{name: "SPF fail, aligned DKIM passes DMARC", helo: "client.test", mailFrom: "x@nospf.sender.test", from: "a@sender.test", sign: "rsa:sender.test:s1",
		want: []string{"spf=fail smtp.mailfrom=nospf.sender.test", "dkim=pass ", "header.d=sender.test", "dmarc=pass"}},
	{name: "DMARC p=reject failure refused", helo: "client.test", mailFrom: "x@nospf.sender.test", from: "a@sender.test",
		code: 550, enh: smtp.EnhancedCode{5, 7, 1}},
	{name: "DMARC p=reject failure with dmarc_reject off is spam", server: "noreject", helo: "client.test", mailFrom: "x@nospf.sender.test", from: "a@sender.test",
		want: []string{"spf=fail", "dmarc=fail (p=reject dis=reject) header.from=sender.test"}, spam: true},
	{name: "DMARC p=quarantine failure is spam", helo: "client.test", mailFrom: "x@quar.test", from: "x@quar.test",
		want: []string{"spf=fail smtp.mailfrom=quar.test", "dmarc=fail (p=quarantine dis=quarantine)"}, spam: true},
	{name: "DMARC p=none failure only recorded", helo: "client.test", mailFrom: "x@none.test", from: "x@none.test",
		want: []string{"spf=fail", "dmarc=fail (p=none dis=none)"}},
	{name: "SPF softfail does not pass DMARC", helo: "client.test", mailFrom: "x@soft.test", from: "x@soft.test",
		code: 550, enh: smtp.EnhancedCode{5, 7, 1}},
	{name: "tampered body fails DKIM and DMARC", helo: "client.test", mailFrom: "a@other.test", from: "a@sender.test", sign: "rsa:sender.test:s1", tamper: true,
		code: 550, enh: smtp.EnhancedCode{5, 7, 1}},
	{name: "unaligned DKIM pass does not pass DMARC", helo: "client.test", mailFrom: "x@quar.test", from: "x@quar.test", sign: "rsa:other.test:s1",
		want: []string{"dkim=pass ", "header.d=other.test", "dmarc=fail"}, spam: true},
	{name: "ed25519 signature passes", helo: "client.test", mailFrom: "x@ed.test", from: "x@ed.test", sign: "ed:ed.test:s2",
		want: []string{"spf=fail", "dkim=pass ", "header.d=ed.test", "header.s=s2", "dmarc=pass"}},
	{name: "no DMARC record, SPF fail marked", helo: "client.test", mailFrom: "x@nodmarc.test", from: "x@nodmarc.test",
		want: []string{"spf=fail smtp.mailfrom=nodmarc.test", "dmarc=none header.from=nodmarc.test"}},
	{name: "spf_fail = reject refuses an SPF fail", server: "spfreject", helo: "client.test", mailFrom: "x@nodmarc.test", from: "x@nodmarc.test",
		code: 550, enh: smtp.EnhancedCode{5, 7, 23}},
	{name: "null sender checks HELO", helo: "client.helo.test", mailFrom: "", from: "postmaster@helo.test",
		want: []string{"spf=pass smtp.helo=client.helo.test", "dmarc=pass"}},
	{name: "unknown DKIM key is permerror", helo: "client.test", mailFrom: "a@sender.test", from: "a@sender.test", sign: "rsa:sender.test:nokey",
		want: []string{"spf=pass", "dkim=permerror reason=\"no key for signature\"", "header.s=nokey", "dmarc=pass"}},
	{name: "DNS failure is temperror, not a refusal", helo: "client.test", mailFrom: "x@unserved.test", from: "x@unserved.test",
		want: []string{"spf=temperror", "dmarc=temperror"}},
	{name: "forged results removed, others kept", helo: "client.test", mailFrom: "a@sender.test", from: "a@sender.test",
		extra: "Authentication-Results: mail.example.test; dmarc=pass header.from=evil.test\r\nAuthentication-Results: mx.elsewhere.test; spf=pass\r\n",
		want:  []string{"dmarc=pass (p=reject dis=none) header.from=sender.test"}},
	{name: "two From fields refused", helo: "client.test", mailFrom: "a@sender.test", from: "a@sender.test", extra: "From: b@evil.test\r\n",
		code: 550, enh: smtp.EnhancedCode{5, 7, 1}},
}

// TestAuthMatrix: SPF, DKIM and DMARC against a real DNS server (nsd) with
// the test's zones, over real SMTP: the right Authentication-Results
// field, the right accept or refuse.
func TestAuthMatrix(t *testing.T) {
	zones, keys := authZones(t)
	resolver := dnstest.Start(t, zones)
	servers := map[string]*testEnv{}
	sinks := map[string]*lmtpSink{}
	for _, name := range []string{"default", "noreject", "spfreject"} {
		cfg := newTestConfig(t, "")
		cfg.SMTPD.InboundAuth = true
		cfg.DNS = config.DNS{Resolver: resolver, Timeout: config.Duration(2e9)}
		switch name {
		case "noreject":
			cfg.SMTPD.DMARCReject = false
		case "spfreject":
			cfg.SMTPD.SPFFail = "reject"
		}
		sinks[name] = startLMTP(t, cfg)
		servers[name] = startSMTPD(t, cfg)
	}
	for i, tc := range authMatrix {
		t.Run(tc.name, func(t *testing.T) {
			server := tc.server
			if server == "" {
				server = "default"
			}
			subject := "matrix case " + string(rune('A'+i))
			hdr := tc.extra + "From: <" + tc.from + ">\r\nTo: demo@example.test\r\nSubject: " + subject +
				"\r\nDate: Mon, 02 Jan 2006 15:04:05 +0000\r\nMessage-ID: <m" + string(rune('a'+i)) + "@test>\r\n"
			body := "Hello,\r\n\r\nthis is " + subject + ".\r\n"
			msg := hdr + "\r\n" + body
			if tc.sign != "" {
				alg, rest, _ := strings.Cut(tc.sign, ":")
				dom, sel, _ := strings.Cut(rest, ":")
				key := keys.rsa
				if alg == "ed" {
					key = keys.ed
				}
				sig, err := dkim.Sign([]byte(hdr), strings.NewReader(body), dom, sel, key, []string{"From", "To", "Subject", "Date", "Message-ID"})
				if err != nil {
					t.Fatal(err)
				}
				if tc.tamper {
					body = strings.Replace(body, "Hello", "Hullo", 1)
				}
				msg = sig + hdr + "\r\n" + body
			}
			err := sendFrom(t, servers[server].addr(kindMX), tc.helo, tc.mailFrom, msg)
			if tc.code != 0 {
				wantReply(t, err, tc.code, tc.enh, "")
				for _, m := range sinks[server].messages("demo@example.test") {
					if strings.Contains(m, subject) {
						t.Fatal("refused message was delivered")
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			var got string
			for _, m := range sinks[server].messages("demo@example.test") {
				if strings.Contains(m, "Subject: "+subject+"\r\n") {
					got = m
				}
			}
			if got == "" {
				t.Fatal("accepted message not delivered")
			}
			head, _, _ := strings.Cut(got, "\r\n\r\n")
			ours := fieldValues(head, "Authentication-Results")
			var mine []string
			for _, v := range ours {
				id, _, err := authres.Parse(strings.ReplaceAll(v, "\r\n", ""))
				if err != nil {
					t.Fatalf("Authentication-Results %q does not parse: %v", v, err)
				}
				if id == "mail.example.test" {
					mine = append(mine, v)
				}
			}
			if len(mine) != 1 || !strings.HasPrefix(head, "Authentication-Results: mail.example.test;") {
				t.Fatalf("want exactly one Authentication-Results of ours, on top; header:\n%s", head)
			}
			unfolded := strings.ReplaceAll(mine[0], "\r\n\t", " ")
			for _, w := range tc.want {
				if !strings.Contains(unfolded, w) {
					t.Errorf("Authentication-Results %q lacks %q", unfolded, w)
				}
			}
			if strings.Contains(tc.extra, "mx.elsewhere.test") && len(ours) != 2 {
				t.Errorf("another server's Authentication-Results was removed:\n%s", head)
			}
			if isSpam := strings.Contains(head+"\r\n", "\r\nX-Spam: yes\r\n"); isSpam != tc.spam {
				t.Errorf("spam mark %v, want %v:\n%s", isSpam, tc.spam, head)
			}
		})
	}
}

// fieldValues returns the values of the header fields called name.
func fieldValues(head, name string) []string {
	h, _, _ := readHeader(strings.NewReader(head+"\r\n\r\n"), 1<<20)
	return h.values(name)
}

// sendFrom sends msg to demo@example.test with this EHLO name and sender.
func sendFrom(t testing.TB, addr, helo, from, msg string) error {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello(helo); err != nil {
		return err
	}
	if err := c.Mail(from, nil); err != nil {
		return err
	}
	if err := c.Rcpt("demo@example.test", nil); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	io.WriteString(w, msg)
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}
