package daemon

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"tern/common/config"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "tern.toml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func noRun(context.Context, *config.Config, *slog.Logger) error { return nil }

func TestCheck(t *testing.T) {
	var out, errb bytes.Buffer
	good := writeConfig(t, "domains = [\"example.test\"]\n")
	if code := main(declared("smtpd", noRun), []string{"-config", good, "-check"}, &out, &errb); code != 0 {
		t.Fatalf("good config: exit %d, %s", code, errb.String())
	}
	bad := writeConfig(t, "domains = [\"example.test\"]\n[smtpd]\nmxx = []\n")
	out.Reset()
	errb.Reset()
	if code := main(declared("smtpd", noRun), []string{"-config", bad, "-check"}, &out, &errb); code != 1 {
		t.Fatalf("bad config: exit %d", code)
	}
	if !strings.Contains(errb.String(), "smtpd.mxx") || !strings.Contains(errb.String(), ":3:") {
		t.Errorf("message does not name the key and line: %q", errb.String())
	}
}

func TestVersion(t *testing.T) {
	var out, errb bytes.Buffer
	if code := main(declared("imapd", noRun), []string{"-version"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if !strings.HasPrefix(out.String(), "tern imapd ") {
		t.Errorf("got %q", out.String())
	}
}

func TestRunError(t *testing.T) {
	var out, errb bytes.Buffer
	good := writeConfig(t, "domains = [\"example.test\"]\n")
	fail := func(context.Context, *config.Config, *slog.Logger) error { return os.ErrPermission }
	if code := main(declared("pop3d", fail), []string{"-config", good}, &out, &errb); code != 1 {
		t.Fatalf("exit %d", code)
	}
	if code := main(declared("pop3d", noRun), []string{"-bogus"}, &out, &errb); code != 2 {
		t.Fatalf("unknown flag: exit %d", code)
	}
}

func TestTemplateRoot(t *testing.T) {
	for tmpl, want := range map[string]string{
		"/var/vmail/%d/%n/Maildir": "/var/vmail",
		"/home/%n/Maildir":         "/home",
		"/srv/mail/x%u":            "/srv/mail",
		"/srv/mail/":               "/srv/mail",
	} {
		if got := templateRoot(tmpl); got != want {
			t.Errorf("templateRoot(%q) = %q, want %q", tmpl, got, want)
		}
	}
}
