package config

import (
	"strings"
	"testing"
)

func TestLocalSubmitKeys(t *testing.T) {
	base := "hostname = \"h.test\"\ndomains = [\"example.test\"]\n[smtpd]\n"
	cfg, err := Parse("t.toml", []byte(base))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.SMTPD.LocalSubmit != "unix:/run/tern/submit.sock" || len(cfg.SMTPD.TrustedUsers) != 0 {
		t.Fatalf("defaults: %q %q", cfg.SMTPD.LocalSubmit, cfg.SMTPD.TrustedUsers)
	}
	if cfg, err := Parse("t.toml", []byte(base+"local_submit = \"\"\ntrusted_users = [\"www-data\", \"33\"]\n")); err != nil ||
		cfg.SMTPD.LocalSubmit != "" || len(cfg.SMTPD.TrustedUsers) != 2 {
		t.Fatalf("off and trusted users: %v", err)
	}
	for _, bad := range []string{"local_submit = \"127.0.0.1:25\"", "local_submit = \"unix:\"", "trusted_users = [\"\"]", "trusted_users = [\"a b\"]"} {
		_, err := Parse("t.toml", []byte(base+bad+"\n"))
		if err == nil || !strings.Contains(err.Error(), "t.toml:4:") {
			t.Errorf("%s: err %v, want an error on line 4", bad, err)
		}
	}
}
