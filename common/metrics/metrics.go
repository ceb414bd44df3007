// Package metrics keeps a daemon's counters, gauges and histograms and
// writes them in the Prometheus text exposition format, version 0.0.4
// (https://prometheus.io/docs/instrumenting/exposition_formats/).
//
// The format is a page of code (expose.go), so it is written here by hand
// rather than taken from the Prometheus client library: that keeps tern free
// of client_golang's dependency tree (protobuf, procfs, common, …) for what
// is a few lines of text per scrape.
//
// A metric family is registered once under a name with its label names;
// With picks the series for a set of label values. Every method is safe for
// concurrent use: updates are atomic, and a scrape sees each series at one
// moment (a histogram's _count is the total of its buckets as read).
//
// The names tern exports, and where each comes from, are listed in
// tern.toml(5) under METRICS.
package metrics

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
)

// Default is the registry of the process: common/daemon serves it on the
// configured metrics address, and packages register into it.
var Default = NewRegistry()

// Registry holds metric families by name.
type Registry struct {
	mu       sync.Mutex
	families map[string]*family
	onScrape []func()
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{families: map[string]*family{}}
}

type kind string

const (
	kindCounter   kind = "counter"
	kindGauge     kind = "gauge"
	kindHistogram kind = "histogram"
)

// family is one metric name: its help, type, label names and series.
type family struct {
	name    string
	help    string
	kind    kind
	labels  []string
	buckets []float64 // histograms only: upper bounds, ascending, +Inf left out

	mu     sync.Mutex
	series map[string]*series // by labelKey of the label values
}

// series is one set of label values of a family.
type series struct {
	values []string
	val    atomicFloat     // counters and gauges
	fn     func() float64  // gauges computed at scrape time, or nil
	counts []atomic.Uint64 // histograms: per bucket (not cumulative), +Inf last
	sum    atomicFloat     // histograms
}

// atomicFloat is a float64 updated with compare-and-swap on its bits.
type atomicFloat struct{ bits atomic.Uint64 }

func (f *atomicFloat) load() float64   { return math.Float64frombits(f.bits.Load()) }
func (f *atomicFloat) store(v float64) { f.bits.Store(math.Float64bits(v)) }
func (f *atomicFloat) add(d float64) {
	for {
		old := f.bits.Load()
		if f.bits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+d)) {
			return
		}
	}
}

var (
	nameRE  = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	labelRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
)

// register returns the family called name, creating it. Registering a name
// again with the same type and labels returns the existing family, so that
// a package may register from a function that runs more than once; a
// different shape is a programming error and panics, as a bad regexp does
// in regexp.MustCompile, since no input at run time can cause it.
func (r *Registry) register(name, help string, k kind, buckets []float64, labels []string) *family {
	if !nameRE.MatchString(name) {
		panic(fmt.Sprintf("metrics: invalid metric name %q", name))
	}
	for _, l := range labels {
		if !labelRE.MatchString(l) || strings.HasPrefix(l, "__") || (k == kindHistogram && l == "le") {
			panic(fmt.Sprintf("metrics: %s: invalid label name %q", name, l))
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if f, ok := r.families[name]; ok {
		if f.kind != k || !slices.Equal(f.labels, labels) || !slices.Equal(f.buckets, buckets) {
			panic(fmt.Sprintf("metrics: %s registered again with another type, labels or buckets", name))
		}
		return f
	}
	f := &family{name: name, help: help, kind: k, labels: slices.Clone(labels),
		buckets: slices.Clone(buckets), series: map[string]*series{}}
	r.families[name] = f
	if len(labels) == 0 {
		f.with(nil) // an unlabelled metric exists, at zero, from the start
	}
	return f
}

// OnScrape runs fn at the start of every scrape, before anything is
// written: for gauges that several values computed from one look at some
// state (the queue's size and age from one listing). Scrapes may overlap,
// so fn must be safe for concurrent use.
func (r *Registry) OnScrape(fn func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.onScrape = append(r.onScrape, fn)
}

// labelKey joins label values with a byte that cannot occur in UTF-8 text,
// so that distinct value lists never share a key.
func labelKey(values []string) string { return strings.Join(values, "\xff") }

func (f *family) with(values []string) *series {
	if len(values) != len(f.labels) {
		panic(fmt.Sprintf("metrics: %s takes %d label values (%v), got %d", f.name, len(f.labels), f.labels, len(values)))
	}
	key := labelKey(values)
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.series[key]
	if !ok {
		s = &series{values: slices.Clone(values)}
		if f.kind == kindHistogram {
			s.counts = make([]atomic.Uint64, len(f.buckets)+1)
		}
		f.series[key] = s
	}
	return s
}

// CounterVec is a family of counters: values that only go up.
type CounterVec struct{ f *family }

// Counter registers a counter family. Prometheus convention: the name ends
// in _total.
func (r *Registry) Counter(name, help string, labels ...string) *CounterVec {
	return &CounterVec{r.register(name, help, kindCounter, nil, labels)}
}

// With returns the counter for the label values, in the order the labels
// were registered, creating it at zero.
func (v *CounterVec) With(values ...string) *Counter { return &Counter{v.f.with(values)} }

// Counter is one series of a CounterVec.
type Counter struct{ s *series }

// Inc adds one.
func (c *Counter) Inc() { c.s.val.add(1) }

// Add adds d; a negative d is ignored, since a counter never goes down.
func (c *Counter) Add(d float64) {
	if d > 0 {
		c.s.val.add(d)
	}
}

// GaugeVec is a family of gauges: values that go up and down.
type GaugeVec struct{ f *family }

// Gauge registers a gauge family.
func (r *Registry) Gauge(name, help string, labels ...string) *GaugeVec {
	return &GaugeVec{r.register(name, help, kindGauge, nil, labels)}
}

// With returns the gauge for the label values, creating it at zero.
func (v *GaugeVec) With(values ...string) *Gauge { return &Gauge{v.f.with(values)} }

// Func makes the series for the label values take its value from fn at
// every scrape, replacing any function set before for them. fn must be
// safe for concurrent use and quick: it runs while a scrape waits.
func (v *GaugeVec) Func(fn func() float64, values ...string) {
	s := v.f.with(values)
	v.f.mu.Lock()
	s.fn = fn
	v.f.mu.Unlock()
}

// Gauge is one series of a GaugeVec.
type Gauge struct{ s *series }

// Set sets the value.
func (g *Gauge) Set(v float64) { g.s.val.store(v) }

// Add adds d, which may be negative.
func (g *Gauge) Add(d float64) { g.s.val.add(d) }

// HistogramVec is a family of histograms: counts of observations by bucket.
type HistogramVec struct{ f *family }

// Histogram registers a histogram family with the given bucket upper
// bounds (ascending; the +Inf bucket is implicit). Prometheus convention:
// the name ends in the unit, such as _seconds.
func (r *Registry) Histogram(name, help string, buckets []float64, labels ...string) *HistogramVec {
	if len(buckets) > 0 && math.IsInf(buckets[len(buckets)-1], 1) {
		buckets = buckets[:len(buckets)-1]
	}
	for i, b := range buckets {
		if math.IsNaN(b) || i > 0 && b <= buckets[i-1] {
			panic(fmt.Sprintf("metrics: %s: buckets must be distinct and ascending, got %v", name, buckets))
		}
	}
	return &HistogramVec{r.register(name, help, kindHistogram, buckets, labels)}
}

// With returns the histogram for the label values, creating it empty.
func (v *HistogramVec) With(values ...string) *Histogram {
	return &Histogram{s: v.f.with(values), buckets: v.f.buckets}
}

// Histogram is one series of a HistogramVec.
type Histogram struct {
	s       *series
	buckets []float64
}

// Observe records one value. It lands in the first bucket whose upper bound
// is at least v (the format's "le": less than or equal).
func (h *Histogram) Observe(v float64) {
	if math.IsNaN(v) {
		return
	}
	i := sort.SearchFloat64s(h.buckets, v)
	h.s.counts[i].Add(1)
	h.s.sum.add(v)
}

// ExponentialBuckets returns n bucket bounds from start, each factor times
// the one before.
func ExponentialBuckets(start, factor float64, n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = start
		start *= factor
	}
	return out
}
