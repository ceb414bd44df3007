// Command testreport runs `go test -json` with the arguments it is given and
// prints what `make test` should show: a line per package as it finishes
// (like go test), the whole output of every failing test, then every
// skipped test with its reason, and a closing line "N passed, N failed,
// N skipped". A skip is never silent: when tests were skipped and the
// caller is not root, it names the command that installs what they need.
// It exits with go test's status.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strings"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action  string
	Package string
	Test    string
	Elapsed float64
	Output  string
}

type key struct{ pkg, test string }

type report struct {
	out            io.Writer
	output         map[key]*strings.Builder
	passed, failed int
	skipped        []skip
	failedPkgs     []string
}

type skip struct{ pkg, test, reason string }

func main() {
	args := append([]string{"test", "-json"}, os.Args[1:]...)
	goCmd := os.Getenv("GO")
	if goCmd == "" {
		goCmd = "go"
	}
	cmd := exec.Command(goCmd, args...)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		fmt.Fprintln(os.Stderr, "testreport:", err)
		os.Exit(2)
	}
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "testreport:", err)
		os.Exit(2)
	}
	r := &report{out: os.Stdout, output: map[key]*strings.Builder{}}
	r.read(stdout)
	err = cmd.Wait()
	r.summary(os.Geteuid() == 0)
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			os.Exit(ee.ExitCode())
		}
		os.Exit(1)
	}
	if r.failed > 0 {
		os.Exit(1)
	}
}

func (r *report) read(in io.Reader) {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			// Not JSON (go vet or build noise): pass it through.
			fmt.Fprintln(r.out, sc.Text())
			continue
		}
		r.handle(e)
	}
}

func (r *report) buf(k key) *strings.Builder {
	b := r.output[k]
	if b == nil {
		b = &strings.Builder{}
		r.output[k] = b
	}
	return b
}

func (r *report) handle(e event) {
	k := key{e.Package, e.Test}
	switch e.Action {
	case "output", "build-output":
		r.buf(k).WriteString(e.Output)
		if e.Action == "build-output" {
			fmt.Fprint(r.out, e.Output)
		}
	case "pass":
		if e.Test != "" {
			r.passed++
			delete(r.output, k)
			return
		}
		fmt.Fprintf(r.out, "ok  \t%s\t%.3fs\n", e.Package, e.Elapsed)
		delete(r.output, k)
	case "fail":
		if e.Test != "" {
			r.failed++
			fmt.Fprint(r.out, r.buf(k).String())
			delete(r.output, k)
			return
		}
		r.failedPkgs = append(r.failedPkgs, e.Package)
		// Output outside any test: a panic, TestMain, a build failure.
		fmt.Fprint(r.out, r.buf(k).String())
		fmt.Fprintf(r.out, "FAIL\t%s\t%.3fs\n", e.Package, e.Elapsed)
		delete(r.output, k)
	case "skip":
		if e.Test == "" {
			fmt.Fprintf(r.out, "?   \t%s\t[no test files]\n", e.Package)
			delete(r.output, k)
			return
		}
		r.skipped = append(r.skipped, skip{e.Package, e.Test, skipReason(r.buf(k).String())})
		delete(r.output, k)
	}
}

// skipReason is what the test said when it skipped: its output without
// go test's own framing lines.
func skipReason(out string) string {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "=== ") || strings.HasPrefix(t, "--- SKIP") {
			continue
		}
		lines = append(lines, t)
	}
	return strings.Join(lines, " ")
}

func (r *report) summary(root bool) {
	if len(r.skipped) > 0 {
		sort.Slice(r.skipped, func(i, j int) bool {
			a, b := r.skipped[i], r.skipped[j]
			return a.pkg+" "+a.test < b.pkg+" "+b.test
		})
		fmt.Fprintf(r.out, "\nSkipped (%d):\n", len(r.skipped))
		for _, s := range r.skipped {
			fmt.Fprintf(r.out, "  %s %s: %s\n", s.pkg, s.test, s.reason)
		}
		if !root {
			fmt.Fprintln(r.out, "\nSome tests need Debian packages or root: as root, `make test` installs")
			fmt.Fprintln(r.out, "what they drive (test/deps install) and runs them all; `test/deps missing` lists it.")
		}
	}
	if len(r.failedPkgs) > 0 {
		fmt.Fprintf(r.out, "\nFAIL: %s\n", strings.Join(r.failedPkgs, " "))
	}
	fmt.Fprintf(r.out, "\n%d passed, %d failed, %d skipped\n", r.passed, r.failed, len(r.skipped))
}
