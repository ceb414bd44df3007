package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"

	"tern/common/config"
	"tern/common/metrics"
)

// The Prometheus metrics of every daemon in one place: with webd.metrics
// set, webd answers GET /metrics there by scraping the metrics endpoint of
// each daemon that has one (smtpd.metrics, lmtpd.metrics, …) and merging
// them into one exposition, family by family, with
// tern_scrape_up{daemon} saying which answered. Every series of tern's
// families carries a daemon label, so merged series never collide.

// scrapedDaemons are the daemons whose endpoints are merged, in order,
// with their metrics keys.
var scrapedDaemons = []struct {
	name    string
	metrics func(*config.Config) string
}{
	{"smtpd", func(c *config.Config) string { return c.SMTPD.Metrics }},
	{"lmtpd", func(c *config.Config) string { return c.LMTPD.Metrics }},
	{"imapd", func(c *config.Config) string { return c.IMAPD.Metrics }},
	{"pop3d", func(c *config.Config) string { return c.POP3D.Metrics }},
}

// maxScrape bounds what one daemon's endpoint may send.
const maxScrape = 4 << 20

// aggregator serves the merged metrics.
type aggregator struct {
	cfg    *config.Config
	log    *slog.Logger
	client *http.Client
}

func newAggregator(cfg *config.Config, log *slog.Logger) *aggregator {
	return &aggregator{cfg: cfg, log: log, client: &http.Client{Timeout: cfg.WebD.ReadTimeout.D()}}
}

// promFamily is one metric family of the text exposition format 0.0.4.
type promFamily struct {
	help, typ string
	samples   []string
}

func (a *aggregator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != metrics.Path {
		http.NotFound(w, r)
		return
	}
	if !onlyGet(w, r) {
		return
	}
	fams := map[string]*promFamily{}
	up := &promFamily{help: "Whether webd could scrape the daemon's metrics endpoint (1) or not (0).", typ: "gauge"}
	var mu sync.Mutex
	var wg sync.WaitGroup
	results := make([]map[string]*promFamily, len(scrapedDaemons))
	for i, sd := range scrapedDaemons {
		d, addr := sd.name, sd.metrics(a.cfg)
		if addr == "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			f, err := a.scrape(r.Context(), addr)
			mu.Lock()
			defer mu.Unlock()
			v := 1
			if err != nil {
				a.log.Warn("metrics scrape failed", "daemon", d, "addr", addr, "err", err)
				v = 0
			}
			results[i] = f
			up.samples = append(up.samples, fmt.Sprintf("tern_scrape_up{daemon=%q} %d", d, v))
		}()
	}
	wg.Wait()
	for _, f := range results {
		for name, fam := range f {
			if have, ok := fams[name]; ok {
				have.samples = append(have.samples, fam.samples...)
			} else {
				fams[name] = fam
			}
		}
	}
	sort.Strings(up.samples)
	fams["tern_scrape_up"] = up
	names := make([]string, 0, len(fams))
	for n := range fams {
		names = append(names, n)
	}
	sort.Strings(names)
	w.Header().Set("Content-Type", metrics.ContentType)
	bw := bufio.NewWriter(w)
	for _, n := range names {
		f := fams[n]
		if f.help != "" {
			fmt.Fprintf(bw, "# HELP %s %s\n", n, f.help)
		}
		if f.typ != "" {
			fmt.Fprintf(bw, "# TYPE %s %s\n", n, f.typ)
		}
		for _, s := range f.samples {
			bw.WriteString(s + "\n")
		}
	}
	bw.Flush()
}

// scrape fetches and parses one daemon's exposition.
func (a *aggregator) scrape(ctx context.Context, addr string) (map[string]*promFamily, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+addr+metrics.Path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %s", resp.Status)
	}
	return parseExposition(io.LimitReader(resp.Body, maxScrape))
}

// parseExposition reads the text format: # HELP and # TYPE lines name a
// family; a sample belongs to the family named by its metric name, or,
// for histograms and summaries, by that name without _bucket, _sum or
// _count.
func parseExposition(r io.Reader) (map[string]*promFamily, error) {
	fams := map[string]*promFamily{}
	get := func(n string) *promFamily {
		f := fams[n]
		if f == nil {
			f = &promFamily{}
			fams[n] = f
		}
		return f
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
		case strings.HasPrefix(line, "# HELP "):
			n, text, _ := strings.Cut(strings.TrimPrefix(line, "# HELP "), " ")
			get(n).help = text
		case strings.HasPrefix(line, "# TYPE "):
			n, typ, _ := strings.Cut(strings.TrimPrefix(line, "# TYPE "), " ")
			get(n).typ = typ
		case strings.HasPrefix(line, "#"):
		default:
			name := line
			if i := strings.IndexAny(line, "{ "); i >= 0 {
				name = line[:i]
			}
			fam := name
			if _, ok := fams[fam]; !ok {
				for _, suf := range []string{"_bucket", "_sum", "_count"} {
					if base, cut := strings.CutSuffix(name, suf); cut {
						if f, ok := fams[base]; ok && (f.typ == "histogram" || f.typ == "summary") {
							fam = base
						}
					}
				}
			}
			get(fam).samples = append(get(fam).samples, line)
		}
	}
	return fams, sc.Err()
}

// newMetricsServer is the HTTP server of the aggregate endpoint.
func newMetricsServer(cfg *config.Config, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           newAggregator(cfg, log),
		ReadHeaderTimeout: cfg.WebD.ReadTimeout.D(),
		ReadTimeout:       cfg.WebD.ReadTimeout.D(),
		// A scrape waits for every daemon's answer.
		WriteTimeout:   cfg.WebD.WriteTimeout.D() + cfg.WebD.ReadTimeout.D(),
		IdleTimeout:    cfg.WebD.ReadTimeout.D(),
		MaxHeaderBytes: int(cfg.WebD.MaxHeaderSize),
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
}
