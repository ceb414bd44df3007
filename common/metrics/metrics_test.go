package metrics

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func render(t testing.TB, r *Registry) string {
	t.Helper()
	var b bytes.Buffer
	n, err := r.WriteTo(&b)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(b.Len()) {
		t.Fatalf("WriteTo reported %d bytes, wrote %d", n, b.Len())
	}
	return b.String()
}

func TestFormat(t *testing.T) {
	r := NewRegistry()
	ev := r.Counter("tern_events_total", "Mail log events.", "daemon", "event")
	ev.With("smtpd", "received").Inc()
	ev.With("smtpd", "received").Add(2)
	ev.With("smtpd", "received").Add(-5) // ignored: counters never go down
	ev.With("lmtpd", "delivered").Inc()
	g := r.Gauge("tern_queue_messages", "Messages in the queue.")
	g.With().Set(7)
	g.With().Add(-2.5)
	conns := r.Gauge("tern_connections_open", "Open connections.", "kind")
	conns.Func(func() float64 { return 3 }, "mx")
	r.Histogram("tern_delivery_seconds", "Delivery latency.", []float64{0.1, 1, 10}, "via").With("lmtp").Observe(0.5)

	want := `# HELP tern_connections_open Open connections.
# TYPE tern_connections_open gauge
tern_connections_open{kind="mx"} 3
# HELP tern_delivery_seconds Delivery latency.
# TYPE tern_delivery_seconds histogram
tern_delivery_seconds_bucket{via="lmtp",le="0.1"} 0
tern_delivery_seconds_bucket{via="lmtp",le="1"} 1
tern_delivery_seconds_bucket{via="lmtp",le="10"} 1
tern_delivery_seconds_bucket{via="lmtp",le="+Inf"} 1
tern_delivery_seconds_sum{via="lmtp"} 0.5
tern_delivery_seconds_count{via="lmtp"} 1
# HELP tern_events_total Mail log events.
# TYPE tern_events_total counter
tern_events_total{daemon="lmtpd",event="delivered"} 1
tern_events_total{daemon="smtpd",event="received"} 3
# HELP tern_queue_messages Messages in the queue.
# TYPE tern_queue_messages gauge
tern_queue_messages 4.5
`
	got := render(t, r)
	if got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
	strictCheck(t, got)
}

func TestEscaping(t *testing.T) {
	r := NewRegistry()
	c := r.Counter("x_total", "Help with \\ backslash\nand newline \"quoted\".", "v")
	c.With("a\"b\\c\nd").Inc()
	c.With("bad\xffutf8").Inc()
	got := render(t, r)
	for _, line := range []string{
		`# HELP x_total Help with \\ backslash\nand newline "quoted".`,
		`x_total{v="a\"b\\c\nd"} 1`,
		"x_total{v=\"bad\uFFFDutf8\"} 1",
	} {
		if !strings.Contains(got, line+"\n") {
			t.Errorf("missing line %q in:\n%s", line, got)
		}
	}
	strictCheck(t, got)
}

func TestHistogramBuckets(t *testing.T) {
	r := NewRegistry()
	h := r.Histogram("d_seconds", "d", []float64{1, 2, 5}).With()
	// "le" is inclusive: 1 goes into the first bucket, 1.0001 into the second.
	for _, v := range []float64{0, 1, 1.0001, 2, 4.9, 5, 6, 1e9, math.Inf(1), math.NaN()} {
		h.Observe(v)
	}
	got := render(t, r)
	for _, line := range []string{
		`d_seconds_bucket{le="1"} 2`,
		`d_seconds_bucket{le="2"} 4`,
		`d_seconds_bucket{le="5"} 6`,
		`d_seconds_bucket{le="+Inf"} 9`,
		`d_seconds_count 9`,
		`d_seconds_sum +Inf`,
	} {
		if !strings.Contains(got, line+"\n") {
			t.Errorf("missing %q in:\n%s", line, got)
		}
	}
	strictCheck(t, got)

	// A trailing +Inf bound is the implicit one and is dropped.
	r2 := NewRegistry()
	r2.Histogram("e_seconds", "e", []float64{1, math.Inf(1)}).With().Observe(3)
	if got := render(t, r2); strings.Count(got, `le="+Inf"`) != 1 {
		t.Errorf("+Inf bucket written twice:\n%s", got)
	}
	if b := ExponentialBuckets(0.01, 10, 3); len(b) != 3 || b[0] != 0.01 || math.Abs(b[2]-1) > 1e-12 {
		t.Errorf("ExponentialBuckets = %v", b)
	}
}

func TestRegisterRules(t *testing.T) {
	r := NewRegistry()
	a := r.Counter("same_total", "h", "l")
	a.With("x").Inc()
	// The same shape again is the same family.
	r.Counter("same_total", "h", "l").With("x").Inc()
	if got := render(t, r); !strings.Contains(got, `same_total{l="x"} 2`+"\n") {
		t.Errorf("re-registration lost the count:\n%s", got)
	}
	for name, fn := range map[string]func(){
		"other type":       func() { r.Gauge("same_total", "h", "l") },
		"other labels":     func() { r.Counter("same_total", "h", "m") },
		"bad name":         func() { r.Counter("1bad", "h") },
		"bad label":        func() { r.Counter("ok_total", "h", "a-b") },
		"reserved label":   func() { r.Counter("ok2_total", "h", "__x") },
		"le on histogram":  func() { r.Histogram("h_seconds", "h", []float64{1}, "le") },
		"unsorted buckets": func() { r.Histogram("h2_seconds", "h", []float64{2, 1}) },
		"label count":      func() { a.With("x", "y") },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			fn()
		}()
	}
}

// TestConcurrent updates every kind of metric from many goroutines while
// scraping; run with -race.
func TestConcurrent(t *testing.T) {
	r := NewRegistry()
	c := r.Counter("c_total", "c", "w")
	g := r.Gauge("g", "g", "w")
	h := r.Histogram("h_seconds", "h", []float64{0.5}, "w")
	var scrapes int
	r.OnScrape(func() { scrapes++ }) // scraped from one goroutine below
	const workers, each = 8, 1000
	var wg sync.WaitGroup
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := strconv.Itoa(i % 2)
			for j := range each {
				c.With(w).Inc()
				g.With(w).Add(1)
				h.With(w).Observe(float64(j % 2))
			}
		}()
	}
	stop := make(chan struct{})
	scraped := make(chan struct{})
	go func() {
		defer close(scraped)
		for {
			select {
			case <-stop:
				return
			default:
				var b bytes.Buffer
				r.WriteTo(&b)
			}
		}
	}()
	wg.Wait()
	close(stop)
	<-scraped
	got := render(t, r)
	half := workers * each / 2
	for _, line := range []string{
		fmt.Sprintf(`c_total{w="0"} %d`, half),
		fmt.Sprintf(`g{w="1"} %d`, half),
		fmt.Sprintf(`h_seconds_bucket{w="0",le="0.5"} %d`, half/2),
		fmt.Sprintf(`h_seconds_count{w="1"} %d`, half),
		fmt.Sprintf(`h_seconds_sum{w="1"} %d`, half/2),
	} {
		if !strings.Contains(got, line+"\n") {
			t.Errorf("missing %q in:\n%s", line, got)
		}
	}
	if scrapes == 0 {
		t.Error("OnScrape hook never ran")
	}
	strictCheck(t, got)
}

func TestServe(t *testing.T) {
	r := NewRegistry()
	r.Counter("served_total", "s").With().Inc()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, l, r, slog.New(slog.DiscardHandler)) }()
	base := "http://" + l.Addr().String()

	resp, err := http.Get(base + Path)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != ContentType || !strings.Contains(string(body), "served_total 1\n") {
		t.Fatalf("GET %s: %d %q\n%s", Path, resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	for _, c := range []struct {
		method, path string
		code         int
	}{{"GET", "/", 404}, {"GET", "/metrics/x", 404}, {"POST", Path, 405}, {"HEAD", Path, 200}} {
		req, _ := http.NewRequest(c.method, base+c.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.code {
			t.Errorf("%s %s: %d, want %d", c.method, c.path, resp.StatusCode, c.code)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not stop")
	}
	if _, err := net.DialTimeout("tcp", l.Addr().String(), time.Second); err == nil {
		t.Error("listener still open after stop")
	}
}

// strictCheck parses the text format by its grammar, independently of the
// writer: every line is a HELP, a TYPE or a sample; each family's HELP and
// TYPE come once, before its samples; sample names belong to the family
// (with _bucket/_sum/_count for histograms); label values are well escaped;
// values parse; histogram buckets are cumulative, end in +Inf, and match
// _count.
func strictCheck(t testing.TB, text string) {
	t.Helper()
	if !strings.HasSuffix(text, "\n") {
		t.Fatalf("output does not end in a newline")
	}
	var (
		sampleRE = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$`)
		labelRE  = regexp.MustCompile(`^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)`)
		seen     = map[string]bool{}
		typ      = map[string]string{}
		current  string
		lastLE   = math.Inf(-1)
		cum      float64
	)
	sc := bufio.NewScanner(strings.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		fail := func(why string) { t.Helper(); t.Fatalf("line %d %q: %s", n, line, why) }
		if rest, ok := strings.CutPrefix(line, "# HELP "); ok {
			name, help, _ := strings.Cut(rest, " ")
			if seen[name] {
				fail("family seen before")
			}
			if regexp.MustCompile(`\\[^\\n]`).MatchString(strings.ReplaceAll(help, `\\`, "")) {
				fail("bad escape in HELP")
			}
			seen[name], current = true, name
			continue
		}
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name, k, _ := strings.Cut(rest, " ")
			if name != current || typ[name] != "" {
				fail("TYPE not right after its HELP")
			}
			switch k {
			case "counter", "gauge", "histogram":
			default:
				fail("unknown type")
			}
			typ[name] = k
			continue
		}
		m := sampleRE.FindStringSubmatch(line)
		if m == nil {
			fail("not a sample")
		}
		name, labels, value := m[1], m[3], m[4]
		suffix, _ := strings.CutPrefix(name, current)
		switch {
		case typ[current] == "histogram" && (suffix == "_bucket" || suffix == "_sum" || suffix == "_count"):
		case suffix == "":
			if typ[current] == "histogram" {
				fail("bare sample in a histogram")
			}
		default:
			fail("sample outside its family " + current)
		}
		le := ""
		for labels != "" {
			lm := labelRE.FindStringSubmatch(labels)
			if lm == nil {
				fail("bad label syntax at " + labels)
			}
			if lm[1] == "le" {
				le = lm[2]
			}
			labels = labels[len(lm[0]):]
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			fail("bad value")
		}
		switch suffix {
		case "_bucket":
			b, err := strconv.ParseFloat(le, 64)
			if err != nil || b <= lastLE || v < cum {
				fail("buckets not ascending and cumulative")
			}
			lastLE, cum = b, v
		case "_count":
			if !math.IsInf(lastLE, 1) || v != cum {
				fail("_count does not match a final +Inf bucket")
			}
			lastLE, cum = math.Inf(-1), 0
		}
	}
}

// TestPromtool feeds every kind of metric, escapes included, to
// Prometheus's own parser and linter, `promtool check metrics` from
// Debian's prometheus package.
func TestPromtool(t *testing.T) {
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (apt-get install prometheus); the strict checks of the other tests still ran")
	}
	r := NewRegistry()
	ev := r.Counter("tern_events_total", "Mail log events by daemon and event.", "daemon", "event")
	ev.With("smtpd", "received").Inc()
	ev.With("smtpd", "odd \"value\"\\\n").Add(3)
	r.Gauge("tern_queue_messages", "Messages in the queue.").With().Set(2)
	r.Gauge("tern_connections_open", "Open connections.", "kind").Func(func() float64 { return 1 }, "imap")
	h := r.Histogram("tern_delivery_seconds", "Delivery latency,\nin seconds.", ExponentialBuckets(0.001, 4, 10), "via")
	h.With("lmtp").Observe(0.2)
	h.With("smtp").Observe(1e6)
	r.Counter("tern_unused_total", "Registered, never counted.", "l")
	text := render(t, r)
	strictCheck(t, text)
	cmd := exec.Command(path, "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("promtool check metrics: %v\n%s\ninput:\n%s", err, out, text)
	}
}
