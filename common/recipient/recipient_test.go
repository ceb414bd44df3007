package recipient

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"tern/common/auth"
	"tern/common/config"
)

const testUsers = `demo@example.test:{PLAIN}demo
alice@example.test:{PLAIN}alice
bob@other.test:{PLAIN}bob
Root@Example.Test:{PLAIN}root
`

// newTestResolver writes the users and aliases files into a temp dir and
// opens a resolver over them. aliases "" leaves the aliases file missing.
func newTestResolver(t testing.TB, aliases string) (*Resolver, string) {
	t.Helper()
	dir := t.TempDir()
	users := filepath.Join(dir, "users")
	if err := os.WriteFile(users, []byte(testUsers), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Domains = []string{"example.test", "other.test"}
	cfg.Users = users
	cfg.Aliases = filepath.Join(dir, "aliases")
	if aliases != "" {
		if err := os.WriteFile(cfg.Aliases, []byte(aliases), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	db, err := auth.Open(users, "example.test", nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(&cfg, db, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return r, dir
}

func local(users ...string) []Target {
	var ts []Target
	for _, u := range users {
		user, folder, _ := strings.Cut(u, "/")
		ts = append(ts, Target{User: user, Folder: folder})
	}
	return ts
}

func checkResolve(t *testing.T, r *Resolver, addr string, wantLocal []Target, wantRemote []string) {
	t.Helper()
	res, err := r.Resolve(addr)
	if err != nil {
		t.Fatalf("Resolve(%q): %v", addr, err)
	}
	if !reflect.DeepEqual(res.Local, wantLocal) || !reflect.DeepEqual(res.Remote, wantRemote) {
		t.Errorf("Resolve(%q) = %+v, want local %+v remote %q", addr, res, wantLocal, wantRemote)
	}
}

func TestResolveUsers(t *testing.T) {
	r, _ := newTestResolver(t, "")
	checkResolve(t, r, "demo@example.test", local("demo@example.test"), nil)
	checkResolve(t, r, "DEMO@EXAMPLE.TEST", local("demo@example.test"), nil)
	checkResolve(t, r, "<demo@example.test>", local("demo@example.test"), nil)
	checkResolve(t, r, "root@example.test", local("root@example.test"), nil)
	checkResolve(t, r, "bob@Other.Test", local("bob@other.test"), nil)
	checkResolve(t, r, "demo@example.test.", local("demo@example.test"), nil)

	if _, err := r.Resolve("nobody@example.test"); !errors.Is(err, ErrUnknown) {
		t.Errorf("unknown user: err = %v, want ErrUnknown", err)
	}
	if _, err := r.Resolve("demo@remote.test"); !errors.Is(err, ErrNotLocal) {
		t.Errorf("remote domain: err = %v, want ErrNotLocal", err)
	}
	// bob exists in other.test only.
	if _, err := r.Resolve("bob@example.test"); !errors.Is(err, ErrUnknown) {
		t.Errorf("user of another domain: err = %v, want ErrUnknown", err)
	}
	for _, bad := range []string{"", "@example.test", "demo@", "de mo@example.test", "nodomain"} {
		if _, err := r.Resolve(bad); !errors.Is(err, ErrUnknown) {
			t.Errorf("Resolve(%q): err = %v, want ErrUnknown", bad, err)
		}
	}
}

func TestResolvePlusTag(t *testing.T) {
	r, _ := newTestResolver(t, "team: demo, alice\nsales+vip@example.test: bob@other.test\n")
	checkResolve(t, r, "demo+lists@example.test", local("demo@example.test/lists"), nil)
	checkResolve(t, r, "Demo+Lists@example.test", local("demo@example.test/lists"), nil)
	checkResolve(t, r, "demo+@example.test", local("demo@example.test"), nil)
	// The tag is passed on to the users an alias leads to.
	checkResolve(t, r, "team+x@example.test", local("demo@example.test/x", "alice@example.test/x"), nil)
	// An exact alias with a '+' wins over the tag.
	checkResolve(t, r, "sales+vip@example.test", local("bob@other.test"), nil)
	if _, err := r.Resolve("+tag@example.test"); !errors.Is(err, ErrUnknown) {
		t.Errorf("empty base: err = %v, want ErrUnknown", err)
	}
	if _, err := r.Resolve("nobody+tag@example.test"); !errors.Is(err, ErrUnknown) {
		t.Errorf("unknown base: err = %v, want ErrUnknown", err)
	}
}

func TestResolveAliases(t *testing.T) {
	r, _ := newTestResolver(t, `# aliases
postmaster: root
Team: demo, alice,
  someone@Remote.test
	, other@remote.test
both: team, demo, SOMEONE@remote.test
sales@example.test: alice
sales@other.test: bob
self: self@example.test, alice
demo: demo, archive@remote.test
quoted: "alice", <bob@other.test>
`)
	checkResolve(t, r, "postmaster@example.test", local("root@example.test"), nil)
	checkResolve(t, r, "postmaster", local("root@example.test"), nil)
	checkResolve(t, r, "team@example.test", local("demo@example.test", "alice@example.test"),
		[]string{"archive@remote.test", "someone@remote.test", "other@remote.test"})
	// Nobody gets two copies, whatever the path.
	checkResolve(t, r, "both@example.test", local("demo@example.test", "alice@example.test"),
		[]string{"archive@remote.test", "someone@remote.test", "other@remote.test"})
	checkResolve(t, r, "sales@example.test", local("alice@example.test"), nil)
	checkResolve(t, r, "sales@other.test", local("bob@other.test"), nil)
	// A self-reference without a user of that name goes nowhere.
	checkResolve(t, r, "self@example.test", local("alice@example.test"), nil)
	// An alias naming itself delivers to the user too.
	checkResolve(t, r, "demo@example.test", local("demo@example.test"), []string{"archive@remote.test"})
	checkResolve(t, r, "quoted@example.test", local("alice@example.test", "bob@other.test"), nil)
}

func TestResolveLoops(t *testing.T) {
	r, _ := newTestResolver(t, `a: b
b: c, alice
c: a, demo
ring1: ring2
ring2: ring1
`)
	for _, addr := range []string{"a@example.test", "b@example.test", "c@example.test"} {
		res, err := r.Resolve(addr)
		if err != nil {
			t.Fatalf("Resolve(%q): %v", addr, err)
		}
		if len(res.Local) != 2 {
			t.Errorf("Resolve(%q) = %+v, want alice and demo once each", addr, res)
		}
	}
	if _, err := r.Resolve("ring1@example.test"); !errors.Is(err, ErrUnknown) {
		t.Errorf("pure loop: err = %v, want ErrUnknown", err)
	}
}

func TestResolveCatchAll(t *testing.T) {
	r, _ := newTestResolver(t, "@example.test: demo\ninfo: alice\n")
	checkResolve(t, r, "anything@example.test", local("demo@example.test"), nil)
	checkResolve(t, r, "Anything+x@EXAMPLE.test", local("demo@example.test/x"), nil)
	checkResolve(t, r, "alice@example.test", local("alice@example.test"), nil)
	checkResolve(t, r, "info@example.test", local("alice@example.test"), nil)
	// No catch-all in other.test.
	if _, err := r.Resolve("anything@other.test"); !errors.Is(err, ErrUnknown) {
		t.Errorf("err = %v, want ErrUnknown", err)
	}
	// A catch-all pointing at an unknown name must not recurse forever.
	r2, _ := newTestResolver(t, "@example.test: ghost\n")
	if _, err := r2.Resolve("x@example.test"); !errors.Is(err, ErrUnknown) {
		t.Errorf("catch-all to nobody: err = %v, want ErrUnknown", err)
	}
}

func TestResolveInclude(t *testing.T) {
	dir := t.TempDir()
	list := filepath.Join(dir, "list.txt")
	if err := os.WriteFile(list, []byte("# members\ndemo, alice\n\nfriend@remote.test\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r, adir := newTestResolver(t, "list: :include:"+list+"\n")
	checkResolve(t, r, "list@example.test", local("demo@example.test", "alice@example.test"), []string{"friend@remote.test"})

	// A relative path is taken from the aliases file's directory.
	if err := os.WriteFile(filepath.Join(adir, "rel.txt"), []byte("bob@other.test\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r.interval = 0
	if err := os.WriteFile(r.path, []byte("rel: :INCLUDE:rel.txt\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	checkResolve(t, r, "rel@example.test", local("bob@other.test"), nil)
}

func TestReload(t *testing.T) {
	r, _ := newTestResolver(t, "x: demo\n")
	r.interval = 0
	checkResolve(t, r, "x@example.test", local("demo@example.test"), nil)

	write := func(content string) {
		t.Helper()
		tmp := r.path + ".new"
		if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, r.path); err != nil {
			t.Fatal(err)
		}
	}
	write("x: alice\n")
	checkResolve(t, r, "x@example.test", local("alice@example.test"), nil)

	// A broken file keeps the previous aliases.
	write("x alice\n")
	checkResolve(t, r, "x@example.test", local("alice@example.test"), nil)

	write("x: root\n")
	checkResolve(t, r, "x@example.test", local("root@example.test"), nil)

	// Removing the file removes the aliases.
	if err := os.Remove(r.path); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Resolve("x@example.test"); !errors.Is(err, ErrUnknown) {
		t.Errorf("after removal: err = %v, want ErrUnknown", err)
	}

	// The interval is honoured: a change is not seen before it passes.
	r.interval = time.Hour
	write("x: demo\n")
	if _, err := r.Resolve("x@example.test"); !errors.Is(err, ErrUnknown) {
		t.Errorf("within the interval: err = %v, want the old (empty) aliases", err)
	}
}

func TestReloadInclude(t *testing.T) {
	r, dir := newTestResolver(t, "")
	inc := filepath.Join(dir, "inc")
	if err := os.WriteFile(inc, []byte("demo\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r.interval = 0
	if err := os.WriteFile(r.path, []byte("l: :include:inc\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	checkResolve(t, r, "l@example.test", local("demo@example.test"), nil)
	// Changing only the included file is noticed.
	if err := os.WriteFile(inc, []byte("alice, demo\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	checkResolve(t, r, "l@example.test", local("alice@example.test", "demo@example.test"), nil)
}

func TestNewBrokenFile(t *testing.T) {
	dir := t.TempDir()
	cfg := config.Default()
	cfg.Domains = []string{"example.test"}
	cfg.Aliases = filepath.Join(dir, "aliases")
	if err := os.WriteFile(cfg.Aliases, []byte("ok: demo\nbroken\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := New(&cfg, nil, nil)
	var pe *ParseError
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "aliases:2:") {
		t.Fatalf("New on a broken file: err = %v, want a ParseError naming line 2", err)
	}
}
