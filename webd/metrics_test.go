package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"

	"tern/common/metrics"
)

// serveRegistry serves reg as a daemon's metrics endpoint does.
func serveRegistry(t *testing.T, reg *metrics.Registry) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { metrics.Serve(ctx, l, reg, slog.New(slog.NewTextHandler(io.Discard, nil))); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return l.Addr().String()
}

// TestMetricsAggregate: webd.metrics merges the endpoints of the daemons
// into one valid exposition (promtool check metrics), each family once,
// and says which daemon did not answer.
func TestMetricsAggregate(t *testing.T) {
	daemonRegistry := func(name string, events int) *metrics.Registry {
		reg := metrics.NewRegistry()
		c := reg.Counter("tern_events_total", "Mail log events, by daemon and event.", "daemon", "event")
		for i := 0; i < events; i++ {
			c.With(name, "delivered").Inc()
		}
		reg.Histogram("tern_delivery_seconds", "Delivery time.", []float64{0.1, 1}, "daemon", "via").With(name, "maildir").Observe(0.05)
		return reg
	}
	cfg := testConfig(t)
	cfg.SMTPD.Metrics = serveRegistry(t, daemonRegistry("smtpd", 3))
	cfg.IMAPD.Metrics = serveRegistry(t, daemonRegistry("imapd", 2))
	cfg.POP3D.Metrics = freeAddr(t) // down
	log := slog.New(slog.NewTextHandler(testWriter{t}, nil))
	srv := newMetricsServer(cfg, log)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	resp, err := http.Get("http://" + l.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	out := string(b)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != metrics.ContentType {
		t.Fatalf("%d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for _, want := range []string{
		`tern_events_total{daemon="smtpd",event="delivered"} 3`,
		`tern_events_total{daemon="imapd",event="delivered"} 2`,
		`tern_delivery_seconds_count{daemon="imapd",via="maildir"} 1`,
		`tern_scrape_up{daemon="smtpd"} 1`,
		`tern_scrape_up{daemon="imapd"} 1`,
		`tern_scrape_up{daemon="pop3d"} 0`,
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("no %s in\n%s", want, out)
		}
	}
	for _, fam := range []string{"tern_events_total", "tern_delivery_seconds", "tern_scrape_up"} {
		if n := strings.Count(out, "# TYPE "+fam+" "); n != 1 {
			t.Errorf("%d TYPE lines for %s", n, fam)
		}
	}
	if strings.Contains(out, "lmtpd") {
		t.Errorf("lmtpd has no endpoint configured but appears")
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (apt-get install -y prometheus)")
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(out)
	if res, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s\n%s", err, res, out)
	}
}
