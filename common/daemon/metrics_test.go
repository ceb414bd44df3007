package daemon

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"tern/common/config"
	"tern/common/maillog"
	"tern/common/metrics"
)

// TestMainServesMetrics runs a daemon with the metrics key set: the
// endpoint answers while it runs, counts what it logs, and is closed once
// it stops.
func TestMainServesMetrics(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cfgPath := writeConfig(t, fmt.Sprintf("domains = [\"example.test\"]\n[pop3d]\nmetrics = %q\n", addr))
	var body string
	run := func(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
		maillog.AuthFailed(log, "demo@example.test", "bad password", 1, 1)
		resp, err := http.Get("http://" + addr + metrics.Path)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		body = string(b)
		return err
	}
	var out, errb bytes.Buffer
	if code := main("pop3d", []string{"-config", cfgPath}, &out, &errb, run); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if want := `tern_events_total{daemon="pop3d",event="auth_failed"} 1`; !strings.Contains(body, want+"\n") {
		t.Errorf("missing %q in:\n%s", want, body)
	}
	if !strings.Contains(errb.String(), "metrics endpoint") {
		t.Errorf("the endpoint is not logged:\n%s", errb.String())
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Error("metrics endpoint still open after the daemon stopped")
	}

	// A taken address is an error at start, before anything is served.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cfgPath = writeConfig(t, fmt.Sprintf("domains = [\"example.test\"]\n[pop3d]\nmetrics = %q\n", busy.Addr()))
	errb.Reset()
	if code := main("pop3d", []string{"-config", cfgPath}, &out, &errb, noRun); code != 1 {
		t.Fatalf("busy metrics address: exit %d", code)
	}
	if !strings.Contains(errb.String(), "metrics endpoint") {
		t.Errorf("error does not name the endpoint: %q", errb.String())
	}
}

func TestListenerKinds(t *testing.T) {
	cfg := config.Default()
	cfg.SMTPD.MX = []string{"0.0.0.0:25"}
	cfg.SMTPD.LocalSubmit = "unix:/run/tern/submit.sock"
	k := listenKinds("smtpd", &cfg)
	if k["0.0.0.0:25"] != "mx" || k["unix:/run/tern/submit.sock"] != "local" {
		t.Errorf("smtpd kinds: %v", k)
	}
	for _, name := range []string{"smtpd", "lmtpd", "imapd", "pop3d"} {
		cfg := config.Default()
		want := "127.0.0.1:9"
		switch name {
		case "smtpd":
			cfg.SMTPD.Metrics = want
		case "lmtpd":
			cfg.LMTPD.Metrics = want
		case "imapd":
			cfg.IMAPD.Metrics = want
		case "pop3d":
			cfg.POP3D.Metrics = want
		}
		if got := MetricsAddr(name, &cfg); got != want {
			t.Errorf("MetricsAddr(%s) = %q", name, got)
		}
	}
}
