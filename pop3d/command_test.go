package main

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestParseCommand(t *testing.T) {
	for _, c := range []struct {
		in, verb, arg string
		bad           bool
	}{
		{in: "STAT", verb: "STAT"},
		{in: "retr 1", verb: "RETR", arg: "1"},
		{in: "TOP 1 10", verb: "TOP", arg: "1 10"},
		{in: "PASS a b  c", verb: "PASS", arg: "a b  c"},
		{in: "PASS p\u00e4ss", verb: "PASS", arg: "p\u00e4ss"},
		{in: "", bad: true},
		{in: "QU", bad: true},
		{in: "QUITS", bad: true},
		{in: "STAT ", bad: true},
		{in: " STAT", bad: true},
		{in: "RETR\t1", bad: true},
		{in: "USER a\x00b", bad: true},
		{in: "USER a\x7fb", bad: true},
		{in: "US\u00e9R x", bad: true},
	} {
		got, err := parseCommand([]byte(c.in))
		if c.bad {
			if err == nil {
				t.Errorf("parseCommand(%q) = %+v, want an error", c.in, got)
			}
			continue
		}
		if err != nil || got.verb != c.verb || got.arg != c.arg {
			t.Errorf("parseCommand(%q) = %+v, %v; want %s %q", c.in, got, err, c.verb, c.arg)
		}
	}
}

func TestArgs(t *testing.T) {
	for _, c := range []struct {
		arg      string
		min, max int
		ok       bool
	}{
		{"", 0, 0, true}, {"", 1, 1, false}, {"1", 0, 1, true}, {"1 2", 0, 1, false},
		{"1 2", 2, 2, true}, {"1  2", 2, 2, false}, {"1 ", 1, 2, false},
	} {
		if _, ok := (command{arg: c.arg}).args(c.min, c.max); ok != c.ok {
			t.Errorf("args(%q, %d, %d) ok = %v", c.arg, c.min, c.max, ok)
		}
	}
	for s, want := range map[string]bool{"0": true, "1": true, "4294967296": true, "12345678901": false, "+1": false, "-1": false, "1e3": false, "": false, " 1": false} {
		if _, ok := parseNumber(s); ok != want {
			t.Errorf("parseNumber(%q) ok = %v, want %v", s, ok, want)
		}
	}
}

func TestReadLine(t *testing.T) {
	in := "NOOP\r\n" + strings.Repeat("x", 300) + "\r\nSTAT\r\nbare\nlast\r\npartial"
	r := bufio.NewReaderSize(strings.NewReader(in), 16)
	buf := make([]byte, 0, 32)
	for _, want := range []struct {
		line string
		err  error
	}{
		{"NOOP", nil}, {"", errLineTooLong}, {"STAT", nil}, {"", errBareLF}, {"last", nil}, {"", io.ErrUnexpectedEOF},
	} {
		line, err := readLine(r, buf, 32)
		if string(line) != want.line || !errors.Is(err, want.err) {
			t.Errorf("readLine = %q, %v; want %q, %v", line, err, want.line, want.err)
		}
	}
}

// FuzzSession feeds arbitrary bytes to the command reader and parser, as a
// client would send them: no panic, bounded lines, and every accepted
// command has a printable keyword of 3 or 4 characters.
func FuzzSession(f *testing.F) {
	for _, s := range []string{
		"USER demo\r\nPASS demo\r\n", "TOP 1 0\r\n", "\r\n", "AUTH PLAIN =\r\n",
		strings.Repeat("A", 300) + "\r\nQUIT\r\n", "RETR 1\nQUIT\r\n", "\x00\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bufio.NewReaderSize(bytes.NewReader(data), 16)
		buf := make([]byte, 0, maxCommandLine)
		for {
			line, err := readLine(r, buf, maxCommandLine)
			if errors.Is(err, errLineTooLong) || errors.Is(err, errBareLF) {
				continue
			}
			if err != nil {
				return
			}
			if len(line) > maxCommandLine-2 {
				t.Fatalf("line of %d octets accepted", len(line))
			}
			c, err := parseCommand(line)
			if err != nil {
				continue
			}
			if len(c.verb) < 3 || len(c.verb) > 4 || c.verb != strings.ToUpper(c.verb) {
				t.Fatalf("bad keyword %q from %q", c.verb, line)
			}
			if strings.ContainsAny(c.arg, "\r\n\x00") {
				t.Fatalf("control characters in %q", c.arg)
			}
			if a, ok := c.args(0, 3); ok {
				for _, s := range a {
					if s == "" {
						t.Fatalf("empty argument from %q", line)
					}
				}
			}
		}
	})
}

func FuzzUIDL(f *testing.F) {
	for _, s := range []string{"1700000000.M1P2Q3R4.host,S=12", "", "a b", strings.Repeat("z", 80)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		u := uidlOf(key)
		if !validUIDL(u) {
			t.Fatalf("uidlOf(%q) = %q is not a valid unique-id", key, u)
		}
		if validUIDL(key) != (u == key) {
			t.Fatalf("uidlOf(%q) = %q: valid keys map to themselves, others never", key, u)
		}
	})
}
