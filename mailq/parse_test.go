package main

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseSendmailArgs(t *testing.T) {
	for _, c := range []struct {
		args []string
		want sendmailOptions
	}{
		{[]string{"-t", "-i"}, sendmailOptions{mode: "m", extract: true, ignoreDots: true}},
		{[]string{"-ti", "-fme@x.test", "a@b.test"}, sendmailOptions{mode: "m", extract: true, ignoreDots: true, from: "me@x.test", fromSet: true, recipients: []string{"a@b.test"}}},
		{[]string{"-f", "<>", "-F", "Jo Doe", "--", "-a@b.test"}, sendmailOptions{mode: "m", fromSet: true, fullName: "Jo Doe", recipients: []string{"-a@b.test"}}},
		{[]string{"-oi", "-oem", "-odi", "-bs"}, sendmailOptions{mode: "s", ignoreDots: true}},
		{[]string{"-q30m"}, sendmailOptions{mode: "m", flush: true}},
		{[]string{"-qRremote.test"}, sendmailOptions{mode: "m", flush: true, flushSite: "remote.test"}},
		{[]string{"-config", "/x.toml", "-bp"}, sendmailOptions{config: "/x.toml", mode: "p"}},
		{[]string{"-N", "failure,delay", "-Rhdrs", "-Venv1", "x"}, sendmailOptions{mode: "m", notify: "failure,delay", ret: "hdrs", envID: "env1", recipients: []string{"x"}}},
		{[]string{"-r", "a@b", "-I"}, sendmailOptions{mode: "i", from: "a@b", fromSet: true}},
	} {
		got, err := parseSendmailArgs(c.args)
		if err != nil {
			t.Errorf("%v: %v", c.args, err)
			continue
		}
		if c.want.config == "" {
			c.want.config = got.config
		}
		if !reflect.DeepEqual(*got, c.want) {
			t.Errorf("%v:\n got %+v\nwant %+v", c.args, *got, c.want)
		}
	}
	for _, bad := range [][]string{{"-Z"}, {"-f"}, {"-bt"}, {"-bd"}, {"-config"}, {"-tZ"}} {
		if _, err := parseSendmailArgs(bad); !errors.Is(err, errUsage) {
			t.Errorf("%v: err %v, want a usage error", bad, err)
		}
	}
}

func TestReadMessage(t *testing.T) {
	m, err := readMessage([]byte("To: a@b.test,\n c@d.test\r\nBcc: e@f.test\nSubject: s\n\nbody\n.\nafter\n"), false, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.extract("example.test"); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(m.recipients, " "); got != "a@b.test c@d.test e@f.test" {
		t.Errorf("recipients %q", got)
	}
	m.dropBcc()
	if got := string(m.bytes()); got != "To: a@b.test,\r\n c@d.test\r\nSubject: s\r\n\r\nbody\r\n" {
		t.Errorf("bytes %q", got)
	}
	// Bare names are qualified; groups are understood.
	m, _ = readMessage([]byte("To: root, admin\nCc: undisclosed-recipients:;\n\nx\n"), true, 1000)
	if err := m.extract("example.test"); err != nil || strings.Join(m.recipients, " ") != "root@example.test admin@example.test" {
		t.Errorf("bare names: %v %q", err, m.recipients)
	}
	// No header at all: the body stays as it is.
	m, _ = readMessage([]byte("just a line\n"), true, 1000)
	if got := string(m.bytes()); got != "just a line\r\n" {
		t.Errorf("headerless %q", got)
	}
	for in, want := range map[string]error{"": errEmpty, "a\x00b\n": errNUL, "a\rb\n": errBareCR, strings.Repeat("x", 2000) + "\n": errLongLine} {
		if _, err := readMessage([]byte(in), true, 1000); !errors.Is(err, want) {
			t.Errorf("readMessage(%.20q) = %v, want %v", in, err, want)
		}
	}
}

// FuzzReadMessage: whatever a script pipes in, readMessage either refuses
// it or produces CRLF-only content without NUL or bare CR, and -t parsing
// never panics.
func FuzzReadMessage(f *testing.F) {
	for _, s := range []string{"To: a@b\n\nx\n", "Subject: x\r\n\r\n.\r\n", "To: <<<\n", "a\rb", "\x00", "To: r, s\nBcc: t\n\n", " leading\n"} {
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, in []byte, dots bool) {
		m, err := readMessage(in, dots, 1000)
		if err != nil {
			return
		}
		m.extract("example.test")
		m.dropBcc()
		out := m.bytes()
		for i, c := range out {
			if c == 0 || c == '\r' && (i+1 >= len(out) || out[i+1] != '\n') || c == '\n' && (i == 0 || out[i-1] != '\r') {
				t.Fatalf("bad byte at %d in %q", i, out)
			}
		}
	})
}

// FuzzParseSendmailArgs: no command line makes the parser panic.
func FuzzParseSendmailArgs(f *testing.F) {
	f.Add("-t -i -f a@b -- x")
	f.Add("-q -qR -bs -oi -F")
	f.Fuzz(func(t *testing.T, line string) {
		parseSendmailArgs(strings.Fields(line))
	})
}
