package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// Every restart key names a key of tern.toml.
func TestRestartKeysExist(t *testing.T) {
	c := Default()
	for _, k := range RestartKeys {
		if !fieldByKey(reflect.ValueOf(&c).Elem(), k).IsValid() {
			t.Errorf("restart key %q is not a key of tern.toml", k)
		}
	}
}

// Reload puts a good file in force but for the restart keys, which keep
// their values and are listed; a bad file is refused and changes nothing.
func TestLiveReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tern.toml")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(`domains = ["example.test"]`+"\n"+s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("[smtpd]\nmx = [\"127.0.0.1:25\"]\nmax_recipients = 100\n")
	first, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	l := NewLive(first)

	write("[log]\nlevel = \"warn\"\n[smtpd]\nmx = [\"127.0.0.1:2525\"]\nmax_recipients = 7\nmilters = [\"inet:127.0.0.1:11332\"]\n[imapd]\nmax_connections_per_ip = 9\nmetrics = \"127.0.0.1:9\"\n")
	kept, err := l.Reload(path, RestartKeys)
	if err != nil {
		t.Fatal(err)
	}
	c := l.Load()
	// Connection limits apply to new connections (common/serve).
	if c.SMTPD.MaxRecipients != 7 || len(c.SMTPD.Milters) != 1 || c.Log.Level != "warn" || c.IMAPD.MaxConnectionsPerIP != 9 {
		t.Errorf("live keys not in force: %d %v %q %d", c.SMTPD.MaxRecipients, c.SMTPD.Milters, c.Log.Level, c.IMAPD.MaxConnectionsPerIP)
	}
	if c.SMTPD.MX[0] != "127.0.0.1:25" || c.IMAPD.Metrics != first.IMAPD.Metrics {
		t.Errorf("restart keys changed: %v %q", c.SMTPD.MX, c.IMAPD.Metrics)
	}
	if strings.Join(kept, " ") != "smtpd.mx imapd.metrics" {
		t.Errorf("kept = %q", kept)
	}

	write("[smtpd]\nmax_recipients = \"many\"\n")
	if _, err := l.Reload(path, RestartKeys); err == nil || !strings.Contains(err.Error(), "max_recipients") {
		t.Errorf("bad file: err = %v", err)
	}
	if l.Load() != c {
		t.Error("a refused file changed the configuration in force")
	}
}
