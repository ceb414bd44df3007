package main

import (
	"testing"

	"github.com/emersion/go-imap/v2"
)

// A partial FETCH of a header section (RFC 3501 6.4.5) whose origin is at
// or past the section's end is empty, never the whole header; one inside it
// is cut from the selected fields only.
func TestFetchPartialHeaderPastEnd(t *testing.T) {
	e := startServer(t)
	e.deliver(t, "INBOX", "From: a@example.test\r\nSubject: hi\r\nX-A: 1\r\n\r\nbody text\r\n")
	c := e.login(t, nil)
	selectInbox(t, c)
	subject := []string{"Subject"}
	for _, tc := range []struct {
		name string
		sec  imap.FetchItemBodySection
		want string
	}{
		{"HEADER<10000.10>", imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, Partial: &imap.SectionPartial{Offset: 10000, Size: 10}}, ""},
		{"HEADER<46.10>", imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, Partial: &imap.SectionPartial{Offset: 46, Size: 10}}, ""},
		{"HEADER<0.4>", imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, Partial: &imap.SectionPartial{Offset: 0, Size: 4}}, "From"},
		{"HEADER.FIELDS (SUBJECT)<10000.10>", imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: subject, Partial: &imap.SectionPartial{Offset: 10000, Size: 10}}, ""},
		{"HEADER.FIELDS (SUBJECT)<2.5>", imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: subject, Partial: &imap.SectionPartial{Offset: 2, Size: 5}}, "bject"},
		{"HEADER.FIELDS.NOT (SUBJECT)<500.5>", imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFieldsNot: subject, Partial: &imap.SectionPartial{Offset: 500, Size: 5}}, ""},
	} {
		sec := tc.sec
		sec.Peek = true
		msgs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{&sec}}).Collect()
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if len(msgs) != 1 || len(msgs[0].BodySection) != 1 {
			t.Fatalf("%s: %+v", tc.name, msgs)
		}
		if got := string(msgs[0].BodySection[0].Bytes); got != tc.want {
			t.Errorf("BODY.PEEK[%s] = %q, want %q", tc.name, got, tc.want)
		}
	}
}
