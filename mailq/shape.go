package main

import (
	"fmt"
	"sort"
	"strconv"
	"time"

	"tern/common/mailaddr"
	"tern/common/queue"
)

// shapeBuckets are the upper bounds of the age columns, as Postfix's
// qshape(1) draws them: each twice the one before; the last column is
// everything older.
var shapeBuckets = []time.Duration{
	5 * time.Minute, 10 * time.Minute, 20 * time.Minute, 40 * time.Minute, 80 * time.Minute,
	160 * time.Minute, 320 * time.Minute, 640 * time.Minute, 1280 * time.Minute,
}

// shape prints how many messages wait for each destination domain, by
// age, busiest domain first. A message counts once per domain it still
// has undelivered recipients in, so a stuck destination stands out.
func (t *tool) shape() int {
	envs, err := t.q.List()
	if err != nil {
		fmt.Fprintf(t.errw, "mailq: %v\n", err)
		return exIOErr
	}
	ncol := len(shapeBuckets) + 1
	rows := map[string][]int{}
	total := make([]int, ncol)
	for _, e := range envs {
		col := ageColumn(t.now.Sub(e.Arrival))
		for d := range undeliveredDomains(e) {
			if rows[d] == nil {
				rows[d] = make([]int, ncol)
			}
			rows[d][col]++
			total[col]++
		}
	}
	domains := make([]string, 0, len(rows))
	for d := range rows {
		domains = append(domains, d)
	}
	sum := func(r []int) int {
		n := 0
		for _, v := range r {
			n += v
		}
		return n
	}
	sort.Slice(domains, func(i, j int) bool {
		si, sj := sum(rows[domains[i]]), sum(rows[domains[j]])
		if si != sj {
			return si > sj
		}
		return domains[i] < domains[j]
	})
	width := len("TOTAL")
	for _, d := range domains {
		width = max(width, len(d))
	}
	fmt.Fprintf(t.out, "%*s %5s", width, "", "T")
	for _, b := range shapeBuckets {
		fmt.Fprintf(t.out, " %5s", strconv.Itoa(int(b.Minutes())))
	}
	fmt.Fprintf(t.out, " %5s\n", strconv.Itoa(int(shapeBuckets[len(shapeBuckets)-1].Minutes()))+"+")
	line := func(name string, r []int) {
		fmt.Fprintf(t.out, "%*s %5d", width, name, sum(r))
		for _, v := range r {
			fmt.Fprintf(t.out, " %5d", v)
		}
		fmt.Fprintln(t.out)
	}
	line("TOTAL", total)
	for _, d := range domains {
		line(d, rows[d])
	}
	return exOK
}

// ageColumn is the column of a message of this age (minutes since arrival).
func ageColumn(age time.Duration) int {
	for i, b := range shapeBuckets {
		if age < b {
			return i
		}
	}
	return len(shapeBuckets)
}

func undeliveredDomains(e *queue.Envelope) map[string]bool {
	out := map[string]bool{}
	for _, r := range e.Recipients {
		if r.State == queue.Pending || r.State == queue.Failed {
			out[mailaddr.Domain(r.Addr)] = true
		}
	}
	return out
}
