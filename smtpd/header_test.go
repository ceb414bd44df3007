package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestReadHeader(t *testing.T) {
	msg := "Received: from a\r\n\tby b\r\nSubject: hi\r\nX-Empty:\r\n\r\nbody\r\n"
	h, n, err := readHeader(strings.NewReader(msg), 1<<10)
	if err != nil || len(h) != 3 || msg[n:] != "body\r\n" {
		t.Fatalf("readHeader = %d fields, body %q, %v", len(h), msg[n:], err)
	}
	if string(h.bytes())+"\r\n" != msg[:n] {
		t.Fatalf("header not kept byte for byte: %q", h.bytes())
	}
	if v := h.values("received"); len(v) != 1 || v[0] != " from a\r\n\tby b" {
		t.Fatalf("values = %q", v)
	}
	// A line that is not a field starts the body.
	h, n, _ = readHeader(strings.NewReader("Subject: x\r\nnot a field\r\nmore\r\n"), 1<<10)
	if len(h) != 1 || n != int64(len("Subject: x\r\n")) {
		t.Fatalf("non-field line: %d fields, n=%d", len(h), n)
	}
	if _, _, err := readHeader(strings.NewReader("Subject: "+strings.Repeat("x", 2000)+"\r\n\r\n"), 1000); err != errHeaderTooBig {
		t.Fatalf("oversized header: %v", err)
	}
}

func TestHeaderEdits(t *testing.T) {
	h, _, _ := readHeader(strings.NewReader("A: 1\r\nB: 1\r\nA: 2\r\n\r\n"), 1<<10)
	h = h.change("a", 2, "two")
	h = h.change("B", 1, "")
	h = h.change("C", 1, "new")
	h = h.insert(0, newField("Top", "t"))
	h = h.insert(99, newField("End", "multi\nline"))
	want := "Top: t\r\nA: 1\r\nA: two\r\nC: new\r\nEnd: multi\r\n\tline\r\n"
	if got := string(h.bytes()); got != want {
		t.Fatalf("edited header\n%q\nwant\n%q", got, want)
	}
	// A value cannot smuggle a new field or end the header.
	f := newField("X", "a\r\nBcc: evil@x\r\n\r\nbody")
	if bytes.Contains(f.raw, []byte("\r\nBcc")) || bytes.Contains(f.raw, []byte("\r\n\r\n")) {
		t.Fatalf("newField let a line break through: %q", f.raw)
	}
}

// FuzzReadHeader: any message header is split into fields that, written
// back, give the same bytes, and every field is a well-formed one.
func FuzzReadHeader(f *testing.F) {
	for _, s := range []string{
		"Subject: hi\r\n\r\nbody",
		"Received: a\r\n\tb\r\nX: y\r\n",
		" folded first\r\n",
		"no colon\r\n\r\n",
		"A:\r\n\r\n",
		"Bad Name: x\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		h, n, err := readHeader(bytes.NewReader(data), 1<<16)
		if err != nil {
			if len(data) <= 1<<16 {
				t.Fatalf("error on %d bytes: %v", len(data), err)
			}
			return
		}
		if n < 0 || n > int64(len(data)) {
			t.Fatalf("n = %d of %d", n, len(data))
		}
		got := h.bytes()
		if !bytes.HasPrefix(data, got) {
			t.Fatalf("fields %q are not the message's first bytes", got)
		}
		for _, fl := range h {
			if !validFieldName(fl.name) {
				t.Fatalf("field name %q", fl.name)
			}
		}
	})
}

// FuzzNewField: a field built from a filter's name and value is always
// one field: every line after the first is folded.
func FuzzNewField(f *testing.F) {
	f.Add("X-Spam", "yes")
	f.Add("X", "a\nb\r\nc\rd")
	f.Fuzz(func(t *testing.T, name, value string) {
		if !validFieldName(name) {
			return
		}
		fl := newField(name, value)
		lines := strings.Split(strings.TrimSuffix(string(fl.raw), "\r\n"), "\r\n")
		for _, l := range lines[1:] {
			if l == "" || (l[0] != ' ' && l[0] != '\t') {
				t.Fatalf("unfolded line %q in %q", l, fl.raw)
			}
		}
		if strings.ContainsAny(strings.ReplaceAll(string(fl.raw), "\r\n", ""), "\r\n") {
			t.Fatalf("bare CR or LF in %q", fl.raw)
		}
	})
}
