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
	"tern/common/metrics"
)

func scrapeText(t *testing.T, reg *metrics.Registry) string {
	t.Helper()
	var b bytes.Buffer
	if _, err := reg.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestEventHandler(t *testing.T) {
	var out bytes.Buffer
	reg := metrics.NewRegistry()
	// The log shows warnings only; events at Info must still be counted.
	next := slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelWarn})
	log := slog.New(newEventHandler(next, reg, "smtpd")).With("daemon", "smtpd")

	log.Info("message received", "event", "received", "id", "q1")
	log.Info("message received", slog.String("event", "received"))
	log.Warn("refused", "event", "rejected")
	log.Info("no event here")
	log.Debug("debug with an event is below Info", "event", "debugged")
	// An event set once with With counts for every line of that logger.
	conn := log.With("conn", "c1", "event", "auth_failed")
	conn.Info("authentication failed", "ip", "192.0.2.1")
	conn.Info("authentication failed")
	// Attributes inside a group are not the line's event.
	log.WithGroup("g").Info("grouped", "event", "nested")
	log.Info("odd", "event", "Weird Value\n")
	// Delivered lines with a duration feed the histogram, by via.
	log.Info("delivered", "event", "delivered", "via", "maildir", "duration", 3*time.Millisecond)
	log.Info("delivered", "event", "delivered", "via", "lmtp", "duration", 2*time.Second)
	log.Info("delivered", "event", "delivered", "via", "mx.remote.test", "duration", time.Hour)
	log.Info("delivered", "event", "delivered", "via", "lmtpd") // no duration: counted only

	got := scrapeText(t, reg)
	for _, line := range []string{
		`tern_events_total{daemon="smtpd",event="received"} 2`,
		`tern_events_total{daemon="smtpd",event="rejected"} 1`,
		`tern_events_total{daemon="smtpd",event="auth_failed"} 2`,
		`tern_events_total{daemon="smtpd",event="other"} 1`,
		`tern_events_total{daemon="smtpd",event="delivered"} 4`,
		`tern_delivery_seconds_count{daemon="smtpd",via="maildir"} 1`,
		`tern_delivery_seconds_bucket{daemon="smtpd",via="maildir",le="0.0025"} 0`,
		`tern_delivery_seconds_bucket{daemon="smtpd",via="maildir",le="0.005"} 1`,
		`tern_delivery_seconds_sum{daemon="smtpd",via="lmtp"} 2`,
		`tern_delivery_seconds_count{daemon="smtpd",via="smtp"} 1`,
		`tern_delivery_seconds_bucket{daemon="smtpd",via="smtp",le="900"} 0`,
		`tern_delivery_seconds_bucket{daemon="smtpd",via="smtp",le="3600"} 1`,
	} {
		if !strings.Contains(got, line+"\n") {
			t.Errorf("missing %q in:\n%s", line, got)
		}
	}
	for _, not := range []string{"debugged", "nested"} {
		if strings.Contains(got, not) {
			t.Errorf("%q counted:\n%s", not, got)
		}
	}
	// The log itself still honours its level.
	if l := out.String(); strings.Contains(l, "received") || !strings.Contains(l, "msg=refused") {
		t.Errorf("log level not kept:\n%s", l)
	}
}

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
		log.Info("authentication failed", "event", "auth_failed", "ip", "192.0.2.7")
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
