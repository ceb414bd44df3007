package main

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// row is one line of the report: a figure of tern beside the same figure
// of a peer, each the median of the rounds.
type row struct {
	Load   string
	Unit   string
	Higher bool // a higher figure is better (rates); else lower (times, memory)
	Tern   []float64
	Peer   string // "" when there is no peer (the disk ceiling)
	Peers  []float64
	// Target, when set, is judged by Met on the medians.
	Target string
	Met    func(tern, peer float64) bool
	Errs   []string
	Note   string
}

func (r *row) fail(who string, err error) {
	msg := fmt.Sprintf("%s: %v", who, err)
	for _, e := range r.Errs {
		if e == msg {
			return
		}
	}
	r.Errs = append(r.Errs, msg)
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// percentile is the p-th percentile (0..100) by the nearest-rank method.
func percentile(v []float64, p float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	k := int(math.Ceil(p/100*float64(len(s)))) - 1
	if k < 0 {
		k = 0
	}
	return s[k]
}

func num(v float64) string {
	switch {
	case math.IsNaN(v):
		return "—"
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

func spread(v []float64) string {
	if len(v) < 2 {
		return ""
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return fmt.Sprintf(" <sub>(%s–%s)</sub>", num(s[0]), num(s[len(s)-1]))
}

// markdown renders the report: the machine, then the table, then errors.
func markdown(m machine, set string, rounds int, rows []*row, details []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# ternbench %s — %s\n\n", set, m.Date)
	fmt.Fprintf(&b, "| machine | |\n| --- | --- |\n")
	fmt.Fprintf(&b, "| cores | %d (%s) |\n", m.Cores, m.CPU)
	fmt.Fprintf(&b, "| memory | %.1f GiB |\n", m.MemGiB)
	fmt.Fprintf(&b, "| file system of %s | %s |\n", m.Dir, m.FS)
	fmt.Fprintf(&b, "| kernel | %s (%s) |\n", m.Kernel, m.OS)
	fmt.Fprintf(&b, "| software | %s; Postfix %s; %s; %s |\n\n", m.Tern, m.Postfix, "Dovecot "+m.Dovecot, m.Go)
	fmt.Fprintf(&b, "Medians of %d rounds, tern and peer alternating (A B A B); the range of the rounds in small print. "+
		"tern/peer > 1 means tern is ahead for rates, behind for times and memory.\n\n", rounds)
	b.WriteString("| load | unit | tern | peer | peer figure | tern/peer | target | met |\n")
	b.WriteString("| --- | --- | ---: | --- | ---: | ---: | --- | --- |\n")
	for _, r := range rows {
		t, p := median(r.Tern), median(r.Peers)
		ratio, peerCell, peerName := "—", "—", "—"
		if r.Peer != "" {
			peerName = r.Peer
			peerCell = num(p) + spread(r.Peers)
			if !math.IsNaN(t) && !math.IsNaN(p) && p != 0 {
				ratio = fmt.Sprintf("%.2f×", t/p)
			}
		}
		met := ""
		if r.Met != nil {
			switch {
			case math.IsNaN(t) || (r.Peer != "" && math.IsNaN(p)):
				met = "?"
			case r.Met(t, p):
				met = "yes"
			default:
				met = "**no**"
			}
		}
		load := r.Load
		if r.Note != "" {
			load += " — " + r.Note
		}
		fmt.Fprintf(&b, "| %s | %s | %s%s | %s | %s | %s | %s | %s |\n",
			load, r.Unit, num(t), spread(r.Tern), peerName, peerCell, ratio, r.Target, met)
	}
	var errs []string
	for _, r := range rows {
		for _, e := range r.Errs {
			errs = append(errs, fmt.Sprintf("- %s: %s", r.Load, e))
		}
	}
	if len(errs) > 0 {
		b.WriteString("\n## Errors\n\n" + strings.Join(errs, "\n") + "\n")
	}
	if len(details) > 0 {
		b.WriteString("\n## Details\n\n" + strings.Join(details, "\n\n") + "\n")
	}
	return b.String()
}
