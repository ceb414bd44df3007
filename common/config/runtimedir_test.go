package config

import "testing"

// TestRuntimeDir: the sockets follow runtime_dir unless set one by one, so
// a second instance needs one key to keep out of the first one's way.
func TestRuntimeDir(t *testing.T) {
	base := "hostname = \"h.test\"\ndomains = [\"example.test\"]\n"
	cfg, err := Parse("t.toml", []byte(base))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RuntimeDir != "/run/tern" || cfg.SMTPD.LMTP != "unix:/run/tern/lmtp.sock" ||
		cfg.LMTPD.Listen[0] != "unix:/run/tern/lmtp.sock" || cfg.SMTPD.LocalSubmit != "unix:/run/tern/submit.sock" {
		t.Errorf("defaults: %q %q %q %q", cfg.RuntimeDir, cfg.SMTPD.LMTP, cfg.LMTPD.Listen, cfg.SMTPD.LocalSubmit)
	}
	cfg, err = Parse("t.toml", []byte("runtime_dir = \"/run/tern-b\"\n"+base))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.SMTPD.LMTP != "unix:/run/tern-b/lmtp.sock" || len(cfg.LMTPD.Listen) != 1 ||
		cfg.LMTPD.Listen[0] != "unix:/run/tern-b/lmtp.sock" || cfg.SMTPD.LocalSubmit != "unix:/run/tern-b/submit.sock" {
		t.Errorf("runtime_dir: %q %q %q", cfg.SMTPD.LMTP, cfg.LMTPD.Listen, cfg.SMTPD.LocalSubmit)
	}
	// A key set in the file wins over runtime_dir.
	cfg, err = Parse("t.toml", []byte("runtime_dir = \"/run/tern-b\"\n"+base+"[smtpd]\nlmtp = \"127.0.0.1:24\"\nlocal_submit = \"\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.SMTPD.LMTP != "127.0.0.1:24" || cfg.SMTPD.LocalSubmit != "" || cfg.LMTPD.Listen[0] != "unix:/run/tern-b/lmtp.sock" {
		t.Errorf("explicit keys: %q %q %q", cfg.SMTPD.LMTP, cfg.SMTPD.LocalSubmit, cfg.LMTPD.Listen)
	}
	if _, err := Parse("t.toml", []byte("runtime_dir = \"\"\n"+base)); err == nil {
		t.Error("empty runtime_dir accepted")
	}
}
