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
	if code := main(declared("pop3d", run), []string{"-config", cfgPath}, &out, &errb); code != 0 {
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
	if code := main(declared("pop3d", noRun), []string{"-config", cfgPath}, &out, &errb); code != 1 {
		t.Fatalf("busy metrics address: exit %d", code)
	}
	if !strings.Contains(errb.String(), "metrics endpoint") {
		t.Errorf("error does not name the endpoint: %q", errb.String())
	}
}

// declared is a daemon declared as pop3d declares itself (its [pop3d]
// listeners and metrics key), under another name where a test says so.
func declared(name string, run RunFunc) Daemon {
	return Daemon{Name: name, Run: run,
		Listeners: func(c *config.Config) []Listeners {
			return []Listeners{{"pop3", c.POP3D.Listen}, {"pop3s", c.POP3D.TLSListen}}
		},
		Metrics: func(c *config.Config) string { return c.POP3D.Metrics }}
}

func TestListenerKinds(t *testing.T) {
	cfg := config.Default()
	cfg.POP3D.Listen = []string{"0.0.0.0:110"}
	cfg.POP3D.TLSListen = []string{"unix:/run/tern/pop3s.sock"}
	k := listenKinds(declared("pop3d", nil), &cfg)
	if k["0.0.0.0:110"] != "pop3" || k["unix:/run/tern/pop3s.sock"] != "pop3s" || len(k) != 2 {
		t.Errorf("kinds: %v", k)
	}
	if got := (Daemon{Name: "mailq"}).metricsAddr(&cfg); got != "" {
		t.Errorf("a daemon without metrics: %q", got)
	}
}
