package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestShippedConfigsAreValid(t *testing.T) {
	for _, f := range []string{"../../etc/dev.toml", "../../etc/tern.toml"} {
		if _, err := Load(f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func TestDefaults(t *testing.T) {
	c, err := Parse("t.toml", []byte(`domains = ["Example.TEST."]`))
	if err != nil {
		t.Fatal(err)
	}
	if c.SMTPD.MaxMessageSize != 50<<20 || c.SMTPD.ReadTimeout.D() != 5*time.Minute {
		t.Errorf("defaults not applied: %+v", c.SMTPD)
	}
	if c.Domains[0] != "example.test" || !c.IsLocalDomain("EXAMPLE.test.") || c.IsLocalDomain("other.test") {
		t.Errorf("domains not normalized: %v", c.Domains)
	}
}

func TestUnknownKeyNamedWithLine(t *testing.T) {
	src := "domains = [\"example.test\"]\n\n[smtpd]\nmx = [\"127.0.0.1:25\"]\nmax_mesage_size = \"10M\"\n\n[imapd]\nlistn = []\n"
	_, err := Parse("bad.toml", []byte(src))
	var es Errors
	if !errors.As(err, &es) || len(es) != 2 {
		t.Fatalf("want 2 errors, got %v", err)
	}
	if es[0].Line != 5 || !strings.Contains(es[0].Msg, `"smtpd.max_mesage_size"`) {
		t.Errorf("first error = %v", es[0])
	}
	if es[1].Line != 8 || !strings.Contains(es[1].Msg, `"imapd.listn"`) {
		t.Errorf("second error = %v", es[1])
	}
	if !strings.HasPrefix(err.Error(), "bad.toml:5: ") {
		t.Errorf("message should start with file:line, got %q", err)
	}
}

func TestAllProblemsReportedAtOnce(t *testing.T) {
	src := `domains = []
[log]
level = "loud"
[smtpd]
mx = ["nonsense"]
max_recipients = 0
read_timeout = "forever"
`
	_, err := Parse("bad.toml", []byte(src))
	if err == nil {
		t.Fatal("no error")
	}
	// A type error stops the TOML decoder before validation, so check the
	// decodable problems separately.
	if !strings.Contains(err.Error(), "forever") {
		t.Errorf("bad duration not reported: %v", err)
	}
	src = strings.Replace(src, `read_timeout = "forever"`, "", 1)
	_, err = Parse("bad.toml", []byte(src))
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("got %v", err)
	}
	for _, want := range []string{"domains", "log.level", "smtpd.mx", "smtpd.max_recipients"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q not reported in:\n%v", want, err)
		}
	}
}

func TestSyntaxErrorHasLine(t *testing.T) {
	_, err := Parse("s.toml", []byte("domains = [\"a.test\"]\nhostname = \n"))
	var es Errors
	if !errors.As(err, &es) || es[0].Line != 2 {
		t.Fatalf("want line 2, got %v", err)
	}
}

func TestLMTPNeverOnPort25(t *testing.T) {
	_, err := Parse("t.toml", []byte("domains = [\"a.test\"]\n[lmtpd]\nlisten = [\"127.0.0.1:25\"]\n"))
	if err == nil || !strings.Contains(err.Error(), "port 25") {
		t.Fatalf("got %v", err)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]Size{"0": 0, "10": 10, "10k": 10 << 10, "50M": 50 << 20, "2G": 2 << 30} {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1", "1T", "M", "1.5G", "99999999999999999999G"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) accepted", in)
		}
	}
	if s := Size(2 << 30).String(); s != "2G" {
		t.Errorf("String = %q", s)
	}
}

func TestExpand(t *testing.T) {
	got, err := Expand("/var/vmail/%d/%n/Maildir", "alice@example.test")
	if err != nil || got != "/var/vmail/example.test/alice/Maildir" {
		t.Errorf("got %q, %v", got, err)
	}
	got, _ = Expand("/m/%u/100%%", "a@b")
	if got != "/m/a@b/100%" {
		t.Errorf("got %q", got)
	}
	for _, bad := range []string{"../x@example.test", "a/b@example.test", "a@..", "noat", "@d", "x@"} {
		if _, err := Expand("/v/%d/%n", bad); err == nil {
			t.Errorf("Expand accepted %q", bad)
		}
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "none.toml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("got %v", err)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"domains = [\"a.test\"]\n",
		"[smtpd]\nmx = [\"127.0.0.1:25\"]\n",
		"[lmtpd]\nquota = \"2G\"\n",
		"x = 1\n[[y]]\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.toml", data)
		if err == nil && len(c.Domains) == 0 {
			t.Fatalf("accepted a config without domains")
		}
	})
}

func TestParseRate(t *testing.T) {
	for in, want := range map[string]Rate{"0": {}, "1000/1h": {1000, time.Hour}, " 5 / 30s ": {5, 30 * time.Second}} {
		var r Rate
		if err := r.UnmarshalText([]byte(in)); err != nil || r != want {
			t.Errorf("Rate(%q) = %v, %v; want %v", in, r, err, want)
		}
	}
	for _, in := range []string{"5", "x/1h", "5/x", "-1/1h", "5/0s", "5/-1h"} {
		var r Rate
		if err := r.UnmarshalText([]byte(in)); err == nil {
			t.Errorf("Rate(%q) accepted", in)
		}
	}
}

// [storage] shared takes a boolean or "auto"; shared_poll is bounded.
func TestStorageShared(t *testing.T) {
	for src, want := range map[string]SharedStorage{
		"":                             "auto",
		"[storage]\nshared = true":     "true",
		"[storage]\nshared = false":    "false",
		"[storage]\nshared = \"auto\"": "auto",
	} {
		c, err := Parse("t.toml", []byte("domains = [\"example.test\"]\n"+src))
		if err != nil {
			t.Fatalf("%q: %v", src, err)
		}
		if c.Storage.Shared != want || c.Storage.SharedPoll.D() != 250*time.Millisecond {
			t.Errorf("%q: shared %q poll %v", src, c.Storage.Shared, c.Storage.SharedPoll.D())
		}
	}
	for _, src := range []string{"shared = \"yes\"", "shared = 1", "shared_poll = \"5s\"", "shared_poll = \"1ms\""} {
		if _, err := Parse("t.toml", []byte("domains = [\"example.test\"]\n[storage]\n"+src)); err == nil {
			t.Errorf("%q accepted", src)
		}
	}
}
