package auth

import (
	"errors"
	"log/slog"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestParseLine(t *testing.T) {
	tests := []struct {
		line, address string
		extra         map[string]string
		usable        bool
	}{
		{"demo@example.test:{PLAIN}demo", "demo@example.test", nil, true},
		{"Demo@Example.TEST:{PLAIN}demo", "demo@example.test", nil, true},
		{"bare:{PLAIN}demo", "bare@example.test", nil, true},
		{"a@example.test:{PLAIN}x:1000:1000:Alice A.:/home/a:/bin/sh", "a@example.test", nil, true},
		{"a@example.test:{PLAIN}x::::::userdb_quota_rule=*:storage=1G  nologin allow_nets=127.0.0.1/8",
			"a@example.test", map[string]string{"userdb_quota_rule": "*:storage=1G", "nologin": "", "allow_nets": "127.0.0.1/8"}, true},
		{"a@example.test:{PLAIN}x::::::k=1 k=2", "a@example.test", map[string]string{"k": "2"}, true},
		{"a@example.test:{PLAIN}x::::::", "a@example.test", nil, true},
		{"a@example.test:", "a@example.test", nil, false},
		{"a@example.test:{SSHA}/WHzUOIyKOhgT9Ax8ajKWQMJd5o5TZWc", "a@example.test", nil, false},
	}
	for _, tc := range tests {
		e, err := parseLine(tc.line, "example.test")
		if err != nil {
			t.Errorf("parseLine(%q): %v", tc.line, err)
			continue
		}
		if e.address != tc.address {
			t.Errorf("parseLine(%q).address = %q, want %q", tc.line, e.address, tc.address)
		}
		if len(e.extra) != len(tc.extra) {
			t.Errorf("parseLine(%q).extra = %v, want %v", tc.line, e.extra, tc.extra)
		}
		for k, v := range tc.extra {
			if got, ok := e.extra[k]; !ok || got != v {
				t.Errorf("parseLine(%q).extra[%q] = %q, %v; want %q", tc.line, k, got, ok, v)
			}
		}
		if usable := e.verify != nil; usable != tc.usable || usable == (e.problem != nil) {
			t.Errorf("parseLine(%q): usable = %v, problem %v; want usable %v", tc.line, usable, e.problem, tc.usable)
		}
	}
}

func TestParseLineErrors(t *testing.T) {
	for _, line := range []string{
		"demo@example.test",
		":{PLAIN}x",
		"@example.test:{PLAIN}x",
		"demo@:{PLAIN}x",
		"a@b@example.test:{PLAIN}x",
		"de mo@example.test:{PLAIN}x",
		"demo\x01@example.test:{PLAIN}x",
		"demo@example.test:{PLAIN}x::::::=value",
		"demo@example.test:{BLF-CRYPT}$2y$05$short",
		"demo@example.test:{PLAIN",
		"demo@example.test:{PLAIN}\xff",
	} {
		if e, err := parseLine(line, "example.test"); err == nil {
			t.Errorf("parseLine(%q) = %+v, want an error", line, e)
		}
	}
	if _, err := parseLine("bare:{PLAIN}x", ""); err == nil {
		t.Error("bare name accepted without a default domain")
	}
}

func TestParseFileErrorsHaveLineNumbers(t *testing.T) {
	const file = "# users\n" +
		"\n" +
		"good@example.test:{PLAIN}x\r\n" +
		"broken line\n" +
		"   # indented comment\n" +
		"GOOD@example.test:{PLAIN}y\n" +
		"x@example.test:{ARGON2ID}$argon2id$v=19$bad\n"
	_, err := parseFile(strings.NewReader(file), "/etc/tern/users", "", slog.New(slog.DiscardHandler))
	if err == nil {
		t.Fatal("no error")
	}
	want := []string{
		`/etc/tern/users:4: `,
		`/etc/tern/users:6: user "good@example.test" already defined on line 3`,
		`/etc/tern/users:7: ARGON2ID password`,
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Line != 4 || pe.Path != "/etc/tern/users" {
		t.Errorf("errors.As ParseError = %+v", pe)
	}
}

func TestParseFileLongLine(t *testing.T) {
	file := "a@example.test:{PLAIN}x\nb@example.test:{PLAIN}" + strings.Repeat("x", 1<<17) + "\n"
	_, err := parseFile(strings.NewReader(file), "users", "", slog.New(slog.DiscardHandler))
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Line != 2 {
		t.Errorf("err = %v, want a ParseError on line 2", err)
	}
}

func TestParseFileDummy(t *testing.T) {
	// The dummy hash is the first non-PLAIN usable one, so that failed
	// logins of unknown users cost what a real check costs.
	const file = "p@example.test:{PLAIN}x\n" +
		"u@example.test:{SSHA}/WHzUOIyKOhgT9Ax8ajKWQMJd5o5TZWc\n" +
		"s@example.test:{SHA256-CRYPT}$5$ghlpcZEmZvAAwmtb$yciMH8kqGq7ZgmLmIz2e1V7KUIWxr86So8M6tSY8307\n" +
		"b@example.test:{BLF-CRYPT}$2y$05$hFF9fuOj/RnmSyxbZbv8POM/uXufgusWjP9UvUq3A4yLt/.ggRHRG\n"
	tbl, err := parseFile(strings.NewReader(file), "users", "", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := tbl.dummy.(shaCryptVerifier); !ok {
		t.Errorf("dummy = %T, want the SHA256-CRYPT user's", tbl.dummy)
	}
	if got := strings.Join(tbl.sorted, " "); got != "b@example.test p@example.test s@example.test u@example.test" {
		t.Errorf("sorted = %q", got)
	}
	tbl, err = parseFile(strings.NewReader("p@example.test:{PLAIN}x\n"), "users", "", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := tbl.dummy.(bcryptVerifier); !ok || string(v.hash) != dummyHash {
		t.Errorf("dummy = %#v, want the built-in bcrypt hash", tbl.dummy)
	}
}

func FuzzParseLine(f *testing.F) {
	for _, s := range []string{
		"demo@example.test:{PLAIN}demo",
		"bare:{BLF-CRYPT}$2y$05$hFF9fuOj/RnmSyxbZbv8POM/uXufgusWjP9UvUq3A4yLt/.ggRHRG",
		"a@example.test:{SHA512-CRYPT}$6$rounds=1000$salt$x::::::userdb_quota_rule=*:storage=1G nologin",
		"a@example.test:{ARGON2ID}$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$CGnMwRlC4t6fgZqm",
		"a@example.test:$5$ghlpcZEmZvAAwmtb$yciMH8kqGq7ZgmLmIz2e1V7KUIWxr86So8M6tSY8307",
		"a@example.test:{X}",
		"a@b@c:",
		":::::::",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		e, err := parseLine(line, "example.test")
		if err != nil {
			if e != nil {
				t.Fatalf("parseLine(%q) returned an entry and error %v", line, err)
			}
			return
		}
		if e.address != strings.ToLower(e.address) || strings.Count(e.address, "@") != 1 || !utf8.ValidString(e.address) {
			t.Fatalf("parseLine(%q).address = %q", line, e.address)
		}
		if strings.IndexFunc(e.address, func(r rune) bool { return unicode.IsSpace(r) || r == ':' }) >= 0 {
			t.Fatalf("parseLine(%q).address = %q has a space or ':'", line, e.address)
		}
		if (e.verify == nil) == (e.problem == nil) {
			t.Fatalf("parseLine(%q): verify %v and problem %v", line, e.verify, e.problem)
		}
		for k := range e.extra {
			if k == "" || strings.ContainsAny(k, " \t") {
				t.Fatalf("parseLine(%q): extra key %q", line, k)
			}
		}
	})
}
