package main

import (
	"strings"
	"testing"
)

// A recorded `go test -json` stream with a pass, a failure with its
// output, a skip with its reason and a package without tests.
const stream = `{"Action":"start","Package":"tern/a"}
{"Action":"run","Package":"tern/a","Test":"TestOK"}
{"Action":"output","Package":"tern/a","Test":"TestOK","Output":"=== RUN   TestOK\n"}
{"Action":"pass","Package":"tern/a","Test":"TestOK","Elapsed":0.01}
{"Action":"run","Package":"tern/a","Test":"TestBad"}
{"Action":"output","Package":"tern/a","Test":"TestBad","Output":"    a_test.go:9: want 250, got 451\n"}
{"Action":"fail","Package":"tern/a","Test":"TestBad","Elapsed":0.02}
{"Action":"run","Package":"tern/a","Test":"TestPeer"}
{"Action":"output","Package":"tern/a","Test":"TestPeer","Output":"=== RUN   TestPeer\n"}
{"Action":"output","Package":"tern/a","Test":"TestPeer","Output":"    a_test.go:20: postfix not installed (apt-get install postfix)\n"}
{"Action":"output","Package":"tern/a","Test":"TestPeer","Output":"--- SKIP: TestPeer (0.00s)\n"}
{"Action":"skip","Package":"tern/a","Test":"TestPeer","Elapsed":0}
{"Action":"fail","Package":"tern/a","Elapsed":0.5}
{"Action":"skip","Package":"tern/b","Elapsed":0}
`

func TestReport(t *testing.T) {
	var out strings.Builder
	r := &report{out: &out, output: map[key]*strings.Builder{}}
	r.read(strings.NewReader(stream))
	r.summary(false)
	got := out.String()
	for _, want := range []string{
		"want 250, got 451",
		"FAIL\ttern/a\t0.500s",
		"?   \ttern/b\t[no test files]",
		"tern/a TestPeer: a_test.go:20: postfix not installed (apt-get install postfix)",
		"make test` installs",
		"\n1 passed, 1 failed, 1 skipped\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("report lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "=== RUN") {
		t.Errorf("report repeats go test's framing lines:\n%s", got)
	}
}
