package auth

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// testUsers holds one user per interesting case. Hashes from schemeVectors.
const testUsers = `# test users
demo@example.test:{PLAIN}demo
alice@example.test:{SHA512-CRYPT}$6$.b8R.O..d0pAdHPo$caUBwKcJf4fRsqeSqe10/dXRP78NDmE72B2PCsl16k9ZQILPsNW2KIRKw9WyjO2NMzlQsAuueETfMJnoyxzzQ0::::::userdb_quota_rule=*:storage=1G
Bob@Example.TEST:{BLF-CRYPT}$2y$04$zjx9PDH9KZOnsOAI9l0zr.mmycBg5SGJ5jKyP9pZECciv1qwrbZq6
carol@example.test:{SSHA}/WHzUOIyKOhgT9Ax8ajKWQMJd5o5TZWc
dave@example.test:{PLAIN}dave::::::nologin
erin@other.test:{ARGON2ID}$argon2id$v=19$m=256,t=2,p=2$c29tZXNhbHRzb21lc2FsdA$vSr1UzaLdBVGGQDps27rA1dHW1SEBDyVY2ft1OUlluw
`

// logBuffer collects a DB's log records for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func writeUsers(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// replaceUsers writes a new version of the file the way an administrator
// should: a new file renamed over the old one.
func replaceUsers(t testing.TB, path, content string) {
	t.Helper()
	tmp := path + ".new"
	writeUsers(t, tmp, content)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func openTestDB(t testing.TB, content string, opts Options) (*DB, string, *logBuffer) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "users")
	writeUsers(t, path, content)
	logs := &logBuffer{}
	if opts.DefaultDomain == "" {
		opts.DefaultDomain = "example.test"
	}
	opts.Log = logs.logger()
	db, err := OpenOptions(path, opts)
	if err != nil {
		t.Fatalf("OpenOptions: %v", err)
	}
	return db, path, logs
}

func TestAuthenticate(t *testing.T) {
	db, _, logs := openTestDB(t, testUsers, Options{})
	tests := []struct {
		user, password, want string
	}{
		{"demo@example.test", "demo", "demo@example.test"},
		{"demo", "demo", "demo@example.test"},
		{"DEMO@EXAMPLE.TEST", "demo", "demo@example.test"},
		{"Demo", "demo", "demo@example.test"},
		{"alice", "secret", "alice@example.test"},
		{"bob@example.test", "pässwörd", "bob@example.test"},
		{"BOB", "pässwörd", "bob@example.test"},
		{"erin@other.test", "secret", "erin@other.test"},
	}
	for _, tc := range tests {
		got, err := db.Authenticate(tc.user, tc.password)
		if err != nil || got != tc.want {
			t.Errorf("Authenticate(%q, %q) = %q, %v; want %q", tc.user, tc.password, got, err, tc.want)
		}
	}
	for _, tc := range []struct{ user, password string }{
		{"demo", "Demo"},
		{"demo", ""},
		{"alice", "wrong"},
		{"bob", "passwörd"},
		{"erin", "secret"}, // other.test is not the default domain
		{"nobody", "demo"},
		{"carol", "secret"}, // unknown scheme
		{"dave", "dave"},    // nologin
		{"", "demo"},
		{"de mo", "demo"},
		{"demo@example.test@x", "demo"},
	} {
		got, err := db.Authenticate(tc.user, tc.password)
		if err != ErrFailed || got != "" {
			t.Errorf("Authenticate(%q, %q) = %q, %v; want ErrFailed", tc.user, tc.password, got, err)
		}
	}
	if l := logs.String(); !strings.Contains(l, "user cannot log in") || !strings.Contains(l, "line=5") || !strings.Contains(l, "SSHA") {
		t.Errorf("unknown scheme not logged with its line:\n%s", l)
	}
}

func TestAuthenticateEmptyPasswordHash(t *testing.T) {
	// doveadm pw -s SHA512-CRYPT -p ''
	const h = "{SHA512-CRYPT}$6$OfcpaF.nLVBy6JHk$LTZddTFwujZ8t6IEG3gaRzrYVCX1b/e8l8Xy8VGR4mTx/HnboPL2XmBuUpdad.RIhhjiR.GagCWyjaE0HxE7i1"
	if _, v, err := parsePassword(h); err != nil || !v.verify(nil) {
		t.Fatalf("the hash of the empty password does not check: %v", err)
	}
	db, _, _ := openTestDB(t, "empty@example.test:"+h+"\n", Options{})
	if _, err := db.Authenticate("empty", ""); err != ErrFailed {
		t.Errorf("empty password: err = %v, want ErrFailed", err)
	}
}

func TestLookupAndUsers(t *testing.T) {
	db, _, _ := openTestDB(t, testUsers, Options{})
	u, ok := db.Lookup("ALICE@example.test")
	if !ok || u.Address != "alice@example.test" {
		t.Fatalf("Lookup = %+v, %v", u, ok)
	}
	if v, ok := u.Field("quota_rule"); !ok || v != "*:storage=1G" {
		t.Errorf("Field(quota_rule) = %q, %v", v, ok)
	}
	if v, ok := u.Extra["userdb_quota_rule"]; !ok || v != "*:storage=1G" {
		t.Errorf("Extra = %v", u.Extra)
	}
	u.Extra["userdb_quota_rule"] = "changed"
	if u2, _ := db.Lookup("alice@example.test"); u2.Extra["userdb_quota_rule"] != "*:storage=1G" {
		t.Error("a caller's change to Extra reached the DB")
	}
	// Users that cannot log in still exist as recipients.
	if _, ok := db.Lookup("carol@example.test"); !ok {
		t.Error("carol (unknown scheme) not found")
	}
	if _, ok := db.Lookup("demo"); ok {
		t.Error("Lookup of a bare name found a user; it takes addresses")
	}
	if _, ok := db.Lookup("nobody@example.test"); ok {
		t.Error("Lookup found nobody")
	}
	want := []string{"alice@example.test", "bob@example.test", "carol@example.test", "dave@example.test", "demo@example.test", "erin@other.test"}
	got := db.Users()
	if !slices.Equal(got, want) {
		t.Errorf("Users = %v, want %v", got, want)
	}
	got[0] = "changed"
	if db.Users()[0] != want[0] {
		t.Error("a caller's change to Users reached the DB")
	}
}

func TestOpenErrors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users")
	if _, err := Open(path, "example.test", nil); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: err = %v", err)
	}
	writeUsers(t, path, "ok@example.test:{PLAIN}x\nno-password-field\n\nbad@@example.test:{PLAIN}x\n")
	_, err := Open(path, "example.test", nil)
	if err == nil {
		t.Fatal("malformed file opened")
	}
	for _, want := range []string{path + ":2: ", path + ":4: "} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
}

func TestReload(t *testing.T) {
	db, path, logs := openTestDB(t, testUsers, Options{ReloadInterval: 20 * time.Millisecond})
	waitReload := func() { time.Sleep(40 * time.Millisecond) }

	// A new file (new inode) is picked up.
	replaceUsers(t, path, "demo@example.test:{PLAIN}newpw\nnew@example.test:{PLAIN}x\n")
	waitReload()
	if _, err := db.Authenticate("demo", "newpw"); err != nil {
		t.Errorf("new password refused after reload: %v", err)
	}
	if _, err := db.Authenticate("demo", "demo"); err != ErrFailed {
		t.Errorf("old password still accepted: %v", err)
	}
	if got := db.Users(); !slices.Equal(got, []string{"demo@example.test", "new@example.test"}) {
		t.Errorf("Users after reload = %v", got)
	}
	if !strings.Contains(logs.String(), "users file reloaded") {
		t.Errorf("reload not logged:\n%s", logs)
	}

	// An edit in place (same inode, new size and mtime) is picked up.
	writeUsers(t, path, "demo@example.test:{PLAIN}edited\n")
	waitReload()
	if _, err := db.Authenticate("demo", "edited"); err != nil {
		t.Errorf("edited password refused: %v", err)
	}

	// A broken file keeps the users loaded before, and says why.
	replaceUsers(t, path, "demo@example.test:{PLAIN}broken\nthis line is broken\n")
	waitReload()
	if _, err := db.Authenticate("demo", "edited"); err != nil {
		t.Errorf("previous users lost on a broken file: %v", err)
	}
	if l := logs.String(); !strings.Contains(l, "users file not reloaded") || !strings.Contains(l, path+":2:") {
		t.Errorf("broken file not logged with its line:\n%s", l)
	}

	// A missing file too.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	waitReload()
	if _, err := db.Authenticate("demo", "edited"); err != nil {
		t.Errorf("previous users lost on a missing file: %v", err)
	}
	if !strings.Contains(logs.String(), "users file unreadable") {
		t.Errorf("missing file not logged:\n%s", logs)
	}

	// And once fixed, the new file is loaded.
	replaceUsers(t, path, "demo@example.test:{PLAIN}fixed\n")
	waitReload()
	if _, err := db.Authenticate("demo", "fixed"); err != nil {
		t.Errorf("fixed file not loaded: %v", err)
	}
}

func TestReloadInterval(t *testing.T) {
	// Within the interval the file is not even looked at.
	db, path, _ := openTestDB(t, testUsers, Options{ReloadInterval: time.Hour})
	replaceUsers(t, path, "demo@example.test:{PLAIN}newpw\n")
	if _, err := db.Authenticate("demo", "demo"); err != nil {
		t.Errorf("file reloaded within the interval: %v", err)
	}
	if db.interval != time.Hour {
		t.Errorf("interval = %v", db.interval)
	}
	db2, _, _ := openTestDB(t, testUsers, Options{})
	if db2.interval != DefaultReloadInterval || db2.maxResponse != DefaultMaxResponse {
		t.Errorf("defaults = %v, %d", db2.interval, db2.maxResponse)
	}
}

func TestConcurrentReload(t *testing.T) {
	db, path, _ := openTestDB(t, "demo@example.test:{PLAIN}demo\n", Options{ReloadInterval: time.Millisecond})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				// Every version of the file has demo with password demo.
				if _, err := db.Authenticate("demo", "demo"); err != nil {
					t.Errorf("Authenticate during reloads: %v", err)
					return
				}
				db.Users()
			}
		})
	}
	for i := range 20 {
		replaceUsers(t, path, "demo@example.test:{PLAIN}demo\n"+strings.Repeat("x@example.test:{PLAIN}x\n", i%2))
		time.Sleep(2 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
}

// TestAuthenticateTiming checks that a login for an unknown user, or for a
// user who can never log in, costs about what a wrong password costs, so
// that response times do not reveal which addresses exist. Without the dummy
// check the unknown-user path is three orders of magnitude faster, so the
// generous bound still catches its loss on a noisy machine.
func TestAuthenticateTiming(t *testing.T) {
	// doveadm pw -s BLF-CRYPT -r 6 -p alicepw
	db, _, _ := openTestDB(t, "alice@example.test:{BLF-CRYPT}$2y$06$UsOnmd5avq1rrIuhHHut2OCmL6x8UzZsNnMmk.qY3TFsQFliq645C\n"+
		"carol@example.test:{SSHA}/WHzUOIyKOhgT9Ax8ajKWQMJd5o5TZWc\n", Options{})
	try := func(user string) time.Duration {
		start := time.Now()
		if _, err := db.Authenticate(user, "guess"); err != ErrFailed {
			t.Fatalf("Authenticate(%q): %v", user, err)
		}
		return time.Since(start)
	}
	median := func(ds []time.Duration) time.Duration {
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		return ds[len(ds)/2]
	}
	for _, user := range []string{"nobody", "carol", "not an address"} {
		// The two kinds of failure alternate, so that a burst of load
		// on a shared machine weighs on both alike.
		var wrong, other []time.Duration
		for range 9 {
			wrong = append(wrong, try("alice"))
			other = append(other, try(user))
		}
		if w, d := median(wrong), median(other); d < w/3 {
			t.Errorf("failed login of %q took %v, a wrong password %v: the difference reveals the user", user, d, w)
		}
	}
}
