package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net/textproto"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	gomessage "github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
	gtextproto "github.com/emersion/go-message/textproto"
)

// HEADER looks at the header section only, whatever the line ends, and
// gives the same answers when the headers come from the cache.
func TestSearchHeaderSection(t *testing.T) {
	e := startServer(t)
	e.deliver(t, "INBOX", "From: alice@example.test\nSubject: folded\n  across lines\n\nFrom: mallory@example.test\n")
	e.deliver(t, "INBOX", "From: bob@example.test\r\nX-Tag: \r\n\r\nSubject: not a header\r\n")
	e.deliver(t, "INBOX", "Subject: no body at all")
	c := e.login(t, nil)
	selectInbox(t, c)
	cases := []struct {
		key, value string
		want       []uint32
	}{
		{"From", "ALICE@", []uint32{1}},
		{"from", "mallory", nil},
		{"Subject", "folded across", []uint32{1}},
		{"Subject", "not a header", nil},
		{"subject", "body at all", []uint32{3}},
		{"X-Tag", "", []uint32{2}},
	}
	for round := 0; round < 2; round++ {
		for _, tc := range cases {
			crit := &imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: tc.key, Value: tc.value}}}
			d, err := c.Search(crit, nil).Wait()
			if err != nil {
				t.Fatal(err)
			}
			if got := fmt.Sprint(d.AllSeqNums()); got != fmt.Sprint(tc.want) && !(len(tc.want) == 0 && len(d.AllSeqNums()) == 0) {
				t.Errorf("round %d: HEADER %s %q = %v, want %v", round, tc.key, tc.value, got, tc.want)
			}
		}
	}
	if n := len(e.srv.headers.byKey); n != 3 {
		t.Errorf("header cache holds %d messages, want 3", n)
	}
}

// The header cache keeps to its byte budget, dropping the least recently
// used entries, and refuses an entry too big to share the cache.
func TestHeaderCacheBudget(t *testing.T) {
	c := newHeaderCache(32 * 1024)
	h := func(n int) *searchHeader {
		sh, err := readSearchHeader(strings.NewReader("Subject: " + strings.Repeat("x", n) + "\r\n\r\n"))
		if err != nil {
			t.Fatal(err)
		}
		return sh
	}
	for i := 0; i < 200; i++ {
		c.put(fmt.Sprintf("dir/%d", i), h(100))
		if i%20 == 0 {
			// Entry 0 stays the most recently used of the old ones.
			if _, ok := c.get("dir/0"); !ok {
				t.Fatalf("entry 0 gone at %d", i)
			}
		}
	}
	if c.used > c.max {
		t.Fatalf("cache uses %d bytes, budget %d", c.used, c.max)
	}
	if _, ok := c.get("dir/0"); !ok {
		t.Fatal("recently used entry 0 was evicted")
	}
	if _, ok := c.get("dir/1"); ok {
		t.Fatal("least recently used entry 1 survived")
	}
	if _, ok := c.get("dir/199"); !ok {
		t.Fatal("newest entry missing")
	}
	c.put("big", h(c.max/32))
	if _, ok := c.get("big"); ok {
		t.Fatal("an entry of a 32th of the budget was cached")
	}
	sh := h(10)
	if !sh.match("Subject", "xxx") || sh.match("Subject", "y") || !sh.match("Subject", "") || sh.match("From", "") {
		t.Fatalf("match on %+v", sh.fields)
	}
}

// The cached form of a header answers HEADER and SENTBEFORE/SENTSINCE as
// go-message's parsed header does, whatever the bytes.
func FuzzSearchHeader(f *testing.F) {
	f.Add([]byte("From: a@b\r\nSubject: =?UTF-8?B?w6Q=?= x\r\n folded\r\nDate: Mon, 02 Jan 2006 15:04:05 +0000\r\n\r\nbody"), "subject", "Ä X")
	f.Add([]byte("subject: lf\nX-Empty:\n\nFrom: not@header\n"), "x-empty", "")
	f.Add([]byte(" leading space\r\n"), "From", "a")
	f.Fuzz(func(t *testing.T, raw []byte, key, pattern string) {
		sh, err := readSearchHeader(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		h, _ := gtextproto.ReadHeader(bufio.NewReader(bytes.NewReader(raw)))
		mh := mail.Header{Header: gomessage.Header{Header: h}}
		want := matchHeader(mh.FieldsByKey(key), pattern)
		if got := sh.match(textproto.CanonicalMIMEHeaderKey(key), strings.ToLower(pattern)); got != want {
			t.Fatalf("HEADER %q %q: cached %v, parsed %v", key, pattern, got, want)
		}
		// A missing Date is no date (go-message gives a zero time).
		d, derr := mh.Date()
		ok := derr == nil && !d.IsZero()
		if sh.dateOK != ok || (ok && !sh.date.Equal(d)) {
			t.Fatalf("date: cached %v %v, parsed %v %v", sh.date, sh.dateOK, d, derr)
		}
	})
}
