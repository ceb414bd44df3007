package authguard

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"tern/common/config"
)

// testConfig is the default [login] section.
func testConfig() config.Login {
	return config.Default().Login
}

// clock is a settable time for the tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func openAt(t testing.TB, dir string, cfg config.Login, c *clock) *Guard {
	t.Helper()
	g, err := Open(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if c != nil {
		g.now = c.now
	}
	t.Cleanup(func() { g.Close() })
	return g
}

func mustDelay(t testing.TB, g *Guard, ip string) time.Duration {
	t.Helper()
	d, err := g.Delay(ip, "")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func mustFail(t testing.TB, g *Guard, ip string) int {
	t.Helper()
	n, err := g.Failure(ip, "")
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestDelayDoublesToCap(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	g := openAt(t, t.TempDir(), testConfig(), c)
	const ip = "192.0.2.7"
	if d := mustDelay(t, g, ip); d != 0 {
		t.Fatalf("fresh address: delay %v, want 0", d)
	}
	for i, want := range []time.Duration{2, 4, 8, 15, 15} {
		if n := mustFail(t, g, ip); n != i+1 {
			t.Fatalf("failure %d counted as %d", i+1, n)
		}
		if d := mustDelay(t, g, ip); d != want*time.Second {
			t.Fatalf("after %d failures: delay %v, want %v", i+1, d, want*time.Second)
		}
	}
	// The delay counts from the last failure: time already waited is
	// not waited again.
	c.add(10 * time.Second)
	if d := mustDelay(t, g, ip); d != 5*time.Second {
		t.Fatalf("10 s after the last failure: delay %v, want 5s", d)
	}
	// Another address is not affected.
	if d := mustDelay(t, g, "192.0.2.8"); d != 0 {
		t.Fatalf("other address: delay %v, want 0", d)
	}
}

func TestFailuresExpire(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	cfg := testConfig()
	g := openAt(t, t.TempDir(), cfg, c)
	mustFail(t, g, "198.51.100.1")
	mustFail(t, g, "198.51.100.1")
	c.add(cfg.FailureWindow.D())
	if d := mustDelay(t, g, "198.51.100.1"); d != 0 {
		t.Fatalf("after failure_window: delay %v, want 0", d)
	}
	if n := mustFail(t, g, "198.51.100.1"); n != 1 {
		t.Fatalf("first failure after the window counted as %d, want 1", n)
	}
}

func mustDelayFor(t testing.TB, g *Guard, ip, account string) time.Duration {
	t.Helper()
	d, err := g.Delay(ip, account)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// A good login exempts that account at that address, and nothing else:
// another account behind the same address (a guesser's target) still
// meets the brake, and the guesser's own good login does not reset it.
func TestKnownGoodPairIsNotDelayed(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	cfg := testConfig()
	g := openAt(t, t.TempDir(), cfg, c)
	const ip = "203.0.113.5"
	if err := g.Success(ip, "alice@example.test"); err != nil {
		t.Fatal(err)
	}
	c.add(time.Hour)
	// Someone behind the same address guesses demo's password.
	for range 5 {
		if _, err := g.Failure(ip, "demo@example.test"); err != nil {
			t.Fatal(err)
		}
	}
	if d := mustDelayFor(t, g, ip, "alice@example.test"); d != 0 {
		t.Fatalf("known-good pair: delay %v, want 0", d)
	}
	if d := mustDelayFor(t, g, ip, "demo@example.test"); d != 15*time.Second {
		t.Fatalf("other account at a known-good address: delay %v, want 15s", d)
	}
	if d := mustDelayFor(t, g, ip, ""); d != 15*time.Second {
		t.Fatalf("account not named yet: delay %v, want 15s", d)
	}
	// alice's good login again: demo is still braked.
	if err := g.Success(ip, "alice@example.test"); err != nil {
		t.Fatal(err)
	}
	if d := mustDelayFor(t, g, ip, "demo@example.test"); d == 0 {
		t.Fatal("a good login for alice reset the brake for demo")
	}
	// Another address, same account: not exempt.
	mustFail(t, g, "203.0.113.6")
	if d := mustDelayFor(t, g, "203.0.113.6", "alice@example.test"); d == 0 {
		t.Fatal("the exemption followed the account to another address")
	}
	// A failure for alice ends her exemption until her next success.
	if _, err := g.Failure(ip, "ALICE@example.test"); err != nil {
		t.Fatal(err)
	}
	if d := mustDelayFor(t, g, ip, "alice@example.test"); d == 0 {
		t.Fatal("exempt after a failed login for the account")
	}
	if err := g.Success(ip, "alice@example.test"); err != nil {
		t.Fatal(err)
	}
	if d := mustDelayFor(t, g, ip, "alice@example.test"); d != 0 {
		t.Fatalf("after a success: delay %v, want 0", d)
	}
	// Once the success is older than good_ip_lifetime, failures count.
	c.add(cfg.GoodIPLifetime.D())
	mustFail(t, g, ip)
	if d := mustDelayFor(t, g, ip, "alice@example.test"); d == 0 {
		t.Fatal("pair no longer known good: want a delay, got none")
	}
}

func TestSASLAccount(t *testing.T) {
	for _, c := range []struct{ mech, resp, want string }{
		{"PLAIN", "\x00demo\x00secret", "demo"},
		{"plain", "admin\x00demo@example.test\x00secret", "demo@example.test"},
		{"PLAIN", "demo", ""},
		{"LOGIN", "demo", "demo"},
		{"LOGIN", "", ""},
		{"CRAM-MD5", "demo", ""},
	} {
		if got := SASLAccount(c.mech, []byte(c.resp)); got != c.want {
			t.Errorf("SASLAccount(%s, %q) = %q, want %q", c.mech, c.resp, got, c.want)
		}
	}
}

// Two handles on one file are what two daemons have: one's failures delay
// the other's logins.
func TestSharedBetweenHandles(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	imapd := openAt(t, dir, testConfig(), c)
	pop3d := openAt(t, dir, testConfig(), c)
	mustFail(t, imapd, "192.0.2.99")
	mustFail(t, imapd, "192.0.2.99")
	if d := mustDelay(t, pop3d, "192.0.2.99"); d != 4*time.Second {
		t.Fatalf("the other daemon sees delay %v, want 4s", d)
	}
}

func TestIPv6SharesSlash64(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	g := openAt(t, t.TempDir(), testConfig(), c)
	mustFail(t, g, "2001:db8:1:2::1")
	if d := mustDelay(t, g, "2001:db8:1:2:ffff::9"); d != 2*time.Second {
		t.Fatalf("same /64: delay %v, want 2s", d)
	}
	if d := mustDelay(t, g, "2001:db8:1:3::1"); d != 0 {
		t.Fatalf("other /64: delay %v, want 0", d)
	}
	if _, err := g.Failure("not-an-ip", ""); !errors.Is(err, ErrBadAddress) {
		t.Fatalf("bad address: err %v, want ErrBadAddress", err)
	}
}

// A flood of addresses cannot grow the file, and the newest failures are
// the ones kept.
func TestTableIsBounded(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	cfg := testConfig()
	cfg.TableSize = 256
	g := openAt(t, dir, cfg, c)
	st0, err := os.Stat(g.Path())
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(headSize + 256*slotSize); st0.Size() != want {
		t.Fatalf("table size %d, want %d", st0.Size(), want)
	}
	for i := range 20000 {
		c.add(time.Millisecond)
		mustFail(t, g, fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255))
	}
	st, err := os.Stat(g.Path())
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != st0.Size() {
		t.Fatalf("table grew from %d to %d bytes", st0.Size(), st.Size())
	}
	// The latest guesser is still delayed.
	if d := mustDelay(t, g, "10.0.78.31"); d == 0 { // i = 19999
		t.Fatal("the most recent failure was pushed out of the table")
	}
}

// A damaged file, or one sized for another table_size, is reset.
func TestBadFileIsReset(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, FileName), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	g := openAt(t, dir, testConfig(), c)
	mustFail(t, g, "192.0.2.1")
	g.Close()
	cfg := testConfig()
	cfg.TableSize = 128
	g2 := openAt(t, dir, cfg, c)
	if d := mustDelay(t, g2, "192.0.2.1"); d != 0 {
		t.Fatalf("resized table kept an entry: delay %v", d)
	}
	st, err := os.Stat(g2.Path())
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != int64(headSize+128*slotSize) {
		t.Fatalf("resized table has %d bytes", st.Size())
	}
}

func TestWaitSleepsAndStopsOnCancel(t *testing.T) {
	cfg := testConfig()
	cfg.Delay = config.Duration(50 * time.Millisecond)
	g := openAt(t, t.TempDir(), cfg, nil)
	mustFail(t, g, "192.0.2.3")
	start := time.Now()
	if _, err := g.Wait(context.Background(), "192.0.2.3", ""); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < 30*time.Millisecond {
		t.Fatalf("Wait returned after %v, want about 50ms", el)
	}
	cfg.Delay, cfg.MaxDelay = config.Duration(time.Hour), config.Duration(time.Hour)
	g2 := openAt(t, t.TempDir(), cfg, nil)
	mustFail(t, g2, "192.0.2.3")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := g2.Wait(ctx, "192.0.2.3", ""); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("cancelled Wait: err %v", err)
	}
}

// Concurrent updates from several handles (as from several daemons) lose
// no failure.
func TestConcurrentFailuresAreCounted(t *testing.T) {
	dir := t.TempDir()
	var wg sync.WaitGroup
	const handles, each = 4, 50
	gs := make([]*Guard, handles)
	for i := range gs {
		gs[i] = openAt(t, dir, testConfig(), nil)
	}
	for _, g := range gs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				if _, err := g.Failure("192.0.2.200", ""); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if n := mustFail(t, gs[0], "192.0.2.200"); n != handles*each+1 {
		t.Fatalf("counted %d failures, want %d", n, handles*each+1)
	}
}

// FuzzTable: whatever bytes the table file holds (it lives on disk, where
// anything may happen to it), the guard neither panics nor grows it.
func FuzzTable(f *testing.F) {
	f.Add([]byte{}, "192.0.2.1")
	f.Add([]byte(magic+"\x00\x00\x00\x40"), "2001:db8::1")
	f.Add(make([]byte, headSize+64*slotSize), "10.0.0.1")
	f.Fuzz(func(t *testing.T, file []byte, ip string) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, FileName), file, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg := testConfig()
		cfg.TableSize = 64
		g, err := Open(dir, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer g.Close()
		g.Failure(ip, "demo")
		g.Delay(ip, "demo")
		g.Success(ip, "demo")
		st, err := os.Stat(g.Path())
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() != headSize+64*slotSize {
			t.Fatalf("table has %d bytes", st.Size())
		}
	})
}
