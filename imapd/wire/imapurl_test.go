package wire

import (
	"testing"

	"github.com/emersion/go-imap/v2"
)

func TestParseIMAPURL(t *testing.T) {
	for _, c := range []struct {
		in   string
		want *IMAPURL
	}{
		{"/INBOX/;UID=20", &IMAPURL{Mailbox: "INBOX", UID: 20}},
		{"/inbox;UIDVALIDITY=785799047/;UID=113330/;SECTION=1.5.9",
			&IMAPURL{Mailbox: "INBOX", UIDValidity: 785799047, UID: 113330, Section: imap.FetchItemBodySection{Part: []int{1, 5, 9}}}},
		{"/Drafts/;uid=3/;section=HEADER.FIELDS%20(Subject%20From)",
			&IMAPURL{Mailbox: "Drafts", UID: 3, Section: imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Subject", "From"}}}},
		{"/a%2Fb%20c/;UID=1/;SECTION=2.TEXT/;PARTIAL=10.20",
			&IMAPURL{Mailbox: "a/b c", UID: 1, Section: imap.FetchItemBodySection{Part: []int{2}, Specifier: imap.PartSpecifierText, Partial: &imap.SectionPartial{Offset: 10, Size: 20}}}},
		{"/%E6%97%A5%E6%9C%AC/;UID=1/;PARTIAL=100000", &IMAPURL{Mailbox: "日本", UID: 1, Section: imap.FetchItemBodySection{Partial: &imap.SectionPartial{Offset: 100000, Size: 1 << 62}}}},
		{"imap://joe%40example.test;AUTH=*@mail.example.test:143/INBOX/;UID=7",
			&IMAPURL{Absolute: true, User: "joe@example.test", Host: "mail.example.test", Port: "143", Mailbox: "INBOX", UID: 7}},
		{"IMAP://[::1]:993/INBOX/;UID=7", &IMAPURL{Absolute: true, Host: "::1", Port: "993", Mailbox: "INBOX", UID: 7}},
		// Not a message part, or not allowed.
		{"/INBOX", nil},
		{"/INBOX/;UID=0", nil},
		{"/INBOX/;UID=x", nil},
		{"/;UID=1", nil},
		{"INBOX/;UID=1", nil},
		{";UID=1", nil},
		{"/INBOX/;UID=1/;SECTION=", nil},
		{"/INBOX/;UID=1/;SECTION=1.BOGUS", nil},
		{"/INBOX/;UID=1/;PARTIAL=1.0", nil},
		{"/INBOX/;UID=1;EXPIRE=2030-01-01T00:00:00Z;URLAUTH=user+joe", nil},
		{"/INBOX/;UID=1/;URLAUTH=anonymous", nil},
		{"/INBOX/;UID=1/extra", nil},
		{"/%ZZ/;UID=1", nil},
		{"imap://host", nil},
		{"imap:///INBOX/;UID=1", nil},
		{"http://host/INBOX/;UID=1", nil},
	} {
		got, err := ParseIMAPURL(c.in)
		if c.want == nil {
			if err == nil {
				t.Errorf("%q: parsed as %+v", c.in, got)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", c.in, err)
			continue
		}
		if !sameURL(got, c.want) {
			t.Errorf("%q:\n got %+v %+v\nwant %+v %+v", c.in, got, got.Section, c.want, c.want.Section)
		}
	}
}

func sameURL(a, b *IMAPURL) bool {
	sa, sb := a.Section, b.Section
	if (sa.Partial == nil) != (sb.Partial == nil) || sa.Partial != nil && *sa.Partial != *sb.Partial {
		return false
	}
	if len(sa.Part) != len(sb.Part) || len(sa.HeaderFields) != len(sb.HeaderFields) {
		return false
	}
	for i := range sa.Part {
		if sa.Part[i] != sb.Part[i] {
			return false
		}
	}
	for i := range sa.HeaderFields {
		if sa.HeaderFields[i] != sb.HeaderFields[i] {
			return false
		}
	}
	return a.Absolute == b.Absolute && a.User == b.User && a.Host == b.Host && a.Port == b.Port &&
		a.Mailbox == b.Mailbox && a.UIDValidity == b.UIDValidity && a.UID == b.UID && sa.Specifier == sb.Specifier
}

// FuzzIMAPURL: any string either parses into a message URL or is ErrURL,
// never a panic.
func FuzzIMAPURL(f *testing.F) {
	for _, s := range []string{
		"/INBOX;UIDVALIDITY=1/;UID=2/;SECTION=1.2.HEADER.FIELDS.NOT%20(a)/;PARTIAL=0.5",
		"imap://u;AUTH=*@[::1]:1/x/;UID=1",
		"/x/;UID=1;URLAUTH=anonymous",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseIMAPURL(s)
		if err != nil && err != ErrURL {
			t.Fatalf("%q: error %v", s, err)
		}
		if err == nil && (u.UID == 0 || u.Mailbox == "") {
			t.Fatalf("%q: %+v", s, u)
		}
	})
}
