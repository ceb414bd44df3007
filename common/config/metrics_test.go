package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMetricsKey(t *testing.T) {
	for _, c := range []struct {
		value string
		ok    bool
	}{
		{"", true},
		{"127.0.0.1:9325", true},
		{"[::1]:9325", true},
		{"localhost:9325", true},
		{"127.0.0.1", false},
		{"127.0.0.1:0", false},
		{"127.0.0.1:70000", false},
		{"unix:/run/tern/metrics.sock", false},
	} {
		p := filepath.Join(t.TempDir(), "tern.toml")
		body := "domains = [\"example.test\"]\n[imapd]\nmetrics = \"" + c.value + "\"\n"
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := Load(p)
		if c.ok && (err != nil || cfg.IMAPD.Metrics != c.value) {
			t.Errorf("%q: %v", c.value, err)
		}
		if !c.ok && (err == nil || !strings.Contains(err.Error(), "imapd.metrics") || !strings.Contains(err.Error(), ":3:")) {
			t.Errorf("%q: want an error naming imapd.metrics at line 3, got %v", c.value, err)
		}
	}
	if d := Default(); d.SMTPD.Metrics != "" || d.LMTPD.Metrics != "" || d.IMAPD.Metrics != "" || d.POP3D.Metrics != "" {
		t.Error("metrics must default to off")
	}
}
