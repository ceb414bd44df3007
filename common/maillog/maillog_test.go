package maillog

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"tern/common/metrics"
)

// TestEvents logs every kind of delivery outcome through a JSON handler at
// Warn: each is counted whatever the level, a discard is not a delivery,
// and each line carries exactly its fixed keys.
func TestEvents(t *testing.T) {
	var out bytes.Buffer
	reg := metrics.NewRegistry()
	Count(reg, "lmtpd")
	defer func() { counters.Lock(); counters.events, counters.delivery = nil, nil; counters.Unlock() }()
	log := slog.New(slog.NewJSONHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug})).With("daemon", "lmtpd")
	quiet := slog.New(slog.NewTextHandler(&bytes.Buffer{}, &slog.HandlerOptions{Level: slog.LevelError}))

	m := Msg{From: "a@example.test", To: "b@example.test", Via: "maildir", Folder: "INBOX"}
	Delivered(log, m, 3*time.Millisecond)
	Delivered(quiet, Msg{Via: "mx.remote.test"}, time.Hour) // counted though not written
	Deferred(log, m, "disk full")
	Bounced(log, m, "550 no such user")
	Discarded(log, "", m.From, m.To, "sieve")
	Rejected(log, Rejection{Stage: "rcpt", To: "x@example.test", Code: 550, Reason: "no such user"})
	AuthFailed(log, "", "bad password", 1, 2)

	got := new(bytes.Buffer)
	if _, err := reg.WriteTo(got); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		`tern_events_total{daemon="lmtpd",event="delivered"} 2`,
		`tern_events_total{daemon="lmtpd",event="discarded"} 1`,
		`tern_events_total{daemon="lmtpd",event="deferred"} 1`,
		`tern_events_total{daemon="lmtpd",event="bounced"} 1`,
		`tern_events_total{daemon="lmtpd",event="rejected"} 1`,
		`tern_events_total{daemon="lmtpd",event="auth_failed"} 1`,
		`tern_delivery_seconds_bucket{daemon="lmtpd",via="maildir",le="0.005"} 1`,
		`tern_delivery_seconds_bucket{daemon="lmtpd",via="smtp",le="3600"} 1`,
	} {
		if !strings.Contains(got.String(), line+"\n") {
			t.Errorf("missing %q in:\n%s", line, got)
		}
	}

	want := map[string][]string{
		"delivered":   {"id", "from", "to", "via", "folder", "duration"},
		"deferred":    {"id", "from", "to", "via", "folder", "reason"},
		"bounced":     {"id", "from", "to", "via", "folder", "reason"},
		"discarded":   {"id", "from", "to", "by"},
		"rejected":    {"stage", "id", "from", "to", "code", "reason"},
		"auth_failed": {"user", "reason", "failures", "ip_failures"},
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), out.String())
	}
	for _, l := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatal(err)
		}
		ev, _ := rec["event"].(string)
		var keys []string
		for k := range rec {
			switch k {
			case "time", "level", "msg", "event", "daemon":
				continue
			}
			keys = append(keys, k)
		}
		slices.Sort(keys)
		w := slices.Clone(want[ev])
		slices.Sort(w)
		if !slices.Equal(keys, w) {
			t.Errorf("%s: keys %v, want %v", ev, keys, w)
		}
		if ev == "auth_failed" && rec["user"] != Unknown {
			t.Errorf("auth_failed without a user: user=%v, want %q", rec["user"], Unknown)
		}
	}
}
