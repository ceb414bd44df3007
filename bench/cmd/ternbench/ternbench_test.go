package main

import (
	"bufio"
	"math"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestMedianAndPercentile(t *testing.T) {
	if got := median([]float64{3, 1, 2}); got != 2 {
		t.Errorf("median of 3 values = %v, want 2", got)
	}
	if got := median([]float64{4, 1, 3, 2}); got != 2.5 {
		t.Errorf("median of 4 values = %v, want 2.5", got)
	}
	if !math.IsNaN(median(nil)) {
		t.Error("median of nothing is not NaN")
	}
	v := make([]float64, 100)
	for i := range v {
		v[i] = float64(100 - i)
	}
	if got := percentile(v, 99); got != 99 {
		t.Errorf("p99 of 1..100 = %v, want 99", got)
	}
	if got := percentile(v, 50); got != 50 {
		t.Errorf("p50 of 1..100 = %v, want 50", got)
	}
}

func TestMessageSizeAndFill(t *testing.T) {
	m := message(7, 10240)
	if len(m) < 10240 || len(m) > 10240+200 {
		t.Errorf("message of 10240 bytes is %d bytes", len(m))
	}
	if !strings.Contains(string(m), "\n\n") || strings.Contains(string(m), "\r") {
		t.Error("message is not a header, a blank line and a body with LF line ends")
	}
	dir := filepath.Join(t.TempDir(), "Maildir")
	if err := fillMaildir(dir, 30, 2000, -1, -1); err != nil {
		t.Fatal(err)
	}
	if got := countMaildir(dir); got != 30 {
		t.Errorf("countMaildir = %d, want 30", got)
	}
	ents, err := os.ReadDir(filepath.Join(dir, "cur"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		// The S= part of the name must be the real size, or servers that
		// trust it would serve truncated messages.
		if !strings.Contains(e.Name(), ",S="+strconv.FormatInt(fi.Size(), 10)+":2,") {
			t.Errorf("%s: size %d not in the name", e.Name(), fi.Size())
		}
	}
}

// serveLines writes s to a client of a pipe and returns the client end as a
// rawIMAP.
func serveLines(t testing.TB, s string) *rawIMAP {
	t.Helper()
	client, server := net.Pipe()
	go func() {
		server.Write([]byte(s))
		server.Close()
	}()
	t.Cleanup(func() { client.Close() })
	return &rawIMAP{conn: client, r: bufio.NewReaderSize(client, 16)}
}

func TestRawIMAPSkipsLiterals(t *testing.T) {
	// A literal whose content looks like the tagged reply must not end
	// the command.
	c := serveLines(t, "* 1 FETCH (BODY[] {12}\r\na1 OK fake\r\n)\r\n* 2 FETCH (FLAGS (\\Seen))\r\na1 OK done\r\n")
	n, err := c.wait("a1", " FETCH ", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("counted %d FETCH lines, want 2", n)
	}
}

func TestRawIMAPTaggedNo(t *testing.T) {
	c := serveLines(t, "* BYE\r\na1 NO [AUTHENTICATIONFAILED] no\r\n")
	if _, err := c.wait("a1", "", time.Second); err == nil || !strings.Contains(err.Error(), "AUTHENTICATIONFAILED") {
		t.Errorf("wait = %v, want the NO", err)
	}
}

func FuzzRawIMAPReadLine(f *testing.F) {
	f.Add("* OK hi\r\n")
	f.Add("* 1 FETCH (BODY[] {5}\r\nhello)\r\n")
	f.Add("* 1 FETCH (BODY[] {99999999999}\r\n")
	f.Add("* {3+}\r\nabc\r\n")
	f.Fuzz(func(t *testing.T, s string) {
		c := serveLines(t, s)
		for i := 0; i < 100; i++ {
			if _, err := c.readLine(); err != nil {
				return
			}
		}
	})
}

// imaptest's closing lines, as it prints them (stress mode, logout=0).
func TestImaptestTotals(t *testing.T) {
	out := "   0  161  170    0  320  450  120  163  320  172  10/ 10\n" +
		"   0   32   36    0   10    9   12   12   14   50 ms/cmd avg\n\nTotals:\n" +
		"Logi List Stat Sele Fetc Fet2 Stor Dele Expu Appe \n" +
		"100%  50%  50% 100% 100% 100%  50% 100% 100% 100% \n" +
		"                          30%                  5% \n" +
		"  10 2559 2561   10 5104 7263 2141 2571 5104 2650 \n"
	got, err := imaptestTotals(out)
	if err != nil || got != 29973 {
		t.Errorf("imaptestTotals = %d, %v; want 29973", got, err)
	}
	if _, err := imaptestTotals("Error: connect failed\n"); err == nil {
		t.Error("output without totals accepted")
	}
}

func TestStressMbox(t *testing.T) {
	p := filepath.Join(t.TempDir(), "m")
	if err := writeStressMbox(p, 50); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), "\nFrom stress@") + 1; n != 50 || !strings.HasPrefix(string(b), "From stress@") {
		t.Errorf("%d messages in the stress mbox, want 50", n)
	}
	if ids := strings.Count(string(b), "Message-ID: <"); ids != 50 {
		t.Errorf("%d Message-IDs, want 50", ids)
	}
}

func TestProcCPUOfSelf(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	end := time.Now().Add(150 * time.Millisecond)
	for time.Now().Before(end) {
	}
	if s, err := procCPU(os.Getpid(), true); err != nil || s <= 0 {
		t.Errorf("procCPU(self) = %v, %v", s, err)
	}
}
