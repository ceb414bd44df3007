package recipient

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func noInclude(p string) ([]byte, error) { return nil, os.ErrNotExist }

func TestParseAliasesSyntax(t *testing.T) {
	data := "# comment\r\n" +
		"\n" +
		"a: b\r\n" +
		"   # an indented comment inside an entry is skipped\n" +
		"  , c\n" +
		"\tD@Example.Test\n" +
		"\"with space\": e\n" +
		"Name@Dom.test:x,,y,\n" +
		"@dom.test: catch\n" +
		"q: \"quoted@remote.test\", <angle@remote.test>\n"
	tab, err := parseAliases("aliases", []byte(data), noInclude)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]target{
		"a":             {{targetName, "b"}, {targetName, "c"}, {targetAddress, "D@example.test"}},
		"with space":    {{targetName, "e"}},
		"name@dom.test": {{targetName, "x"}, {targetName, "y"}},
		"@dom.test":     {{targetName, "catch"}},
		"q":             {{targetAddress, "quoted@remote.test"}, {targetAddress, "angle@remote.test"}},
	}
	if !reflect.DeepEqual(tab.aliases, want) {
		t.Errorf("got %#v\nwant %#v", tab.aliases, want)
	}
}

func TestParseAliasesErrors(t *testing.T) {
	for _, tc := range []struct {
		name, data, want string
	}{
		{"no colon", "a b\n", "aliases:1: want"},
		{"empty name", ": b\n", "aliases:1: empty alias name"},
		{"no targets", "ok: x\na:\n", "aliases:2: alias \"a\" has no targets"},
		{"duplicate", "a: x\nA: y\n", "aliases:2: alias \"a\" already defined on line 1"},
		{"pipe", "a: \"|/bin/true\"\n", "delivery to a command"},
		{"file", "a: /var/mail/x\n", "delivery to a file"},
		{"space in target", "a: \"b c\"\n", "white space"},
		{"unterminated quote in list", "a: b, \"c\n", "unterminated quote"},
		{"bad address", "a: x@\n", "is not an address"},
		{"bad key", "a@: x\n", "want name, name@domain or @domain"},
		{"unterminated quote", "\"a: x\n", "unterminated"},
		{"missing include", "a: :include:/nonexistent/file\n", "aliases:1: :include:/nonexistent/file"},
		{"control", "a: b\x01\n", "control"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseAliases("aliases", []byte(tc.data), noInclude)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestParseAliasesAllProblems(t *testing.T) {
	_, err := parseAliases("f", []byte("a b\nok: x\nc d\n"), noInclude)
	var pe *ParseError
	if !errors.As(err, &pe) || len(pe.Problems) != 2 ||
		!strings.HasPrefix(pe.Problems[0], "f:1:") || !strings.HasPrefix(pe.Problems[1], "f:3:") {
		t.Errorf("err = %#v, want problems on lines 1 and 3", err)
	}
}

func TestCheckFileIncludes(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("inner", "x@remote.test\n")
	write("outer", "a, :include:inner\nb\n")
	good := write("good", "list: :include:outer\n")
	if err := CheckFile(good); err != nil {
		t.Errorf("CheckFile(good): %v", err)
	}
	tab, err := loadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	want := []target{{targetName, "a"}, {targetAddress, "x@remote.test"}, {targetName, "b"}}
	if !reflect.DeepEqual(tab.aliases["list"], want) {
		t.Errorf("nested include = %v, want %v", tab.aliases["list"], want)
	}
	if len(tab.files) != 3 {
		t.Errorf("files watched = %v, want the aliases file and both includes", tab.files)
	}

	write("cycle", ":include:cycle\n")
	bad := write("bad", "c: :include:cycle\nd: :include:badinc\n")
	write("badinc", "ok\n|cmd\n")
	err = CheckFile(bad)
	if err == nil || !strings.Contains(err.Error(), "nested deeper") || !strings.Contains(err.Error(), "badinc:2:") {
		t.Errorf("CheckFile(bad) = %v, want an include cycle and badinc:2", err)
	}
	if err := CheckFile(filepath.Join(dir, "missing")); err == nil {
		t.Error("CheckFile of a missing file succeeded")
	}
}

func FuzzParseAliases(f *testing.F) {
	for _, seed := range []string{
		"a: b, c\n",
		"a: b\n  c@d.test\n",
		"\"x y\": z\n# c\n",
		"@dom: catch\nn@dom: t\n",
		"a: :include:inc\n",
		"a: \"|cmd\", /file\n",
		"\t: \n:\n\"\n",
		"a: <b@c>, \"d\"\r\n",
	} {
		f.Add([]byte(seed))
	}
	read := func(p string) ([]byte, error) {
		if filepath.Base(p) == "inc" {
			return []byte("x, :include:inc\n"), nil
		}
		return nil, os.ErrNotExist
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		tab, err := parseAliases("fuzz", data, read)
		if err != nil {
			if !strings.Contains(err.Error(), "fuzz") && !strings.Contains(err.Error(), "inc") {
				t.Errorf("error without a file name: %v", err)
			}
			return
		}
		for k, ts := range tab.aliases {
			if k == "" || k != strings.ToLower(k) {
				t.Errorf("bad key %q", k)
			}
			if len(ts) == 0 {
				t.Errorf("alias %q without targets", k)
			}
			for _, tg := range ts {
				if tg.value == "" || strings.ContainsAny(tg.value, " \t\r\n,") {
					t.Errorf("alias %q: bad target %q", k, tg.value)
				}
			}
		}
	})
}
