package metrics

import (
	"bufio"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
)

// ContentType is the media type of the text exposition format 0.0.4.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// WriteTo writes every family in the text exposition format 0.0.4: for
// each, sorted by name, a # HELP and a # TYPE line, then its series sorted
// by label values. Output is deterministic for the same state.
func (r *Registry) WriteTo(w io.Writer) (int64, error) {
	r.mu.Lock()
	hooks := slices.Clone(r.onScrape)
	fams := make([]*family, 0, len(r.families))
	for _, f := range r.families {
		fams = append(fams, f)
	}
	r.mu.Unlock()
	for _, fn := range hooks {
		fn()
	}
	slices.SortFunc(fams, func(a, b *family) int { return strings.Compare(a.name, b.name) })

	cw := &countingWriter{w: w}
	bw := bufio.NewWriter(cw)
	for _, f := range fams {
		f.write(bw)
	}
	err := bw.Flush()
	return cw.n, err
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// write writes one family. Write errors are left to the bufio.Writer, which
// keeps the first and reports it at Flush.
func (f *family) write(w *bufio.Writer) {
	f.mu.Lock()
	all := make([]*series, 0, len(f.series))
	fns := make(map[*series]func() float64)
	for _, s := range f.series {
		all = append(all, s)
		if s.fn != nil {
			fns[s] = s.fn
		}
	}
	f.mu.Unlock()
	slices.SortFunc(all, func(a, b *series) int { return slices.Compare(a.values, b.values) })

	w.WriteString("# HELP " + f.name + " " + escapeHelp(f.help) + "\n")
	w.WriteString("# TYPE " + f.name + " " + string(f.kind) + "\n")
	for _, s := range all {
		switch f.kind {
		case kindCounter, kindGauge:
			v := s.val.load()
			if fn := fns[s]; fn != nil {
				v = fn()
			}
			writeSample(w, f.name, f.labels, s.values, "", v)
		case kindHistogram:
			// The format's buckets are cumulative; the series keeps one
			// count per bucket so that Observe touches a single counter.
			var cum uint64
			for i := range s.counts {
				cum += s.counts[i].Load()
				le := math.Inf(1)
				if i < len(f.buckets) {
					le = f.buckets[i]
				}
				writeSample(w, f.name+"_bucket", f.labels, s.values, formatFloat(le), float64(cum))
			}
			writeSample(w, f.name+"_sum", f.labels, s.values, "", s.sum.load())
			// _count equals the +Inf bucket by definition; taking it from
			// the buckets just read keeps the two equal under concurrent
			// Observe calls.
			writeSample(w, f.name+"_count", f.labels, s.values, "", float64(cum))
		}
	}
}

// writeSample writes `name{l1="v1",…,le="x"} value`; le is left out when
// empty, and the braces when there are no labels at all.
func writeSample(w *bufio.Writer, name string, labels, values []string, le string, v float64) {
	w.WriteString(name)
	if len(labels) > 0 || le != "" {
		w.WriteByte('{')
		for i, l := range labels {
			if i > 0 {
				w.WriteByte(',')
			}
			w.WriteString(l + `="` + escapeLabel(values[i]) + `"`)
		}
		if le != "" {
			if len(labels) > 0 {
				w.WriteByte(',')
			}
			w.WriteString(`le="` + le + `"`)
		}
		w.WriteByte('}')
	}
	w.WriteByte(' ')
	w.WriteString(formatFloat(v))
	w.WriteByte('\n')
}

// formatFloat writes a value as the format wants it: Go's float syntax,
// with +Inf, -Inf and NaN spelled so.
func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// The format escapes backslash and line feed in HELP text, and those and
// the double quote in label values. Invalid UTF-8, which the format does
// not allow, becomes U+FFFD.
var (
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

func escapeHelp(s string) string  { return helpEscaper.Replace(strings.ToValidUTF8(s, "\uFFFD")) }
func escapeLabel(s string) string { return labelEscaper.Replace(strings.ToValidUTF8(s, "\uFFFD")) }
