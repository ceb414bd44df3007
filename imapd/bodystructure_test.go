package main

import (
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
)

func TestBodyStructureShapes(t *testing.T) {
	alt := "Content-Type: multipart/alternative; boundary=\"a\"\r\n\r\n" +
		"--a\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhi\r\n" +
		"--a\r\nContent-Type: multipart/related; boundary=\"r\"\r\n\r\n" +
		"--r\r\nContent-Type: text/html\r\n\r\n<img src=cid:x>\r\n" +
		"--r\r\nContent-Type: image/png\r\nContent-ID: <x>\r\nContent-Disposition: inline\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n--r--\r\n" +
		"--a--\r\n"
	bs := parseBodyStructure(strings.NewReader(alt))
	mp, ok := bs.(*imap.BodyStructureMultiPart)
	if !ok || mp.Subtype != "alternative" || len(mp.Children) != 2 {
		t.Fatalf("alternative: %#v", bs)
	}
	rel := mp.Children[1].(*imap.BodyStructureMultiPart)
	img := rel.Children[1].(*imap.BodyStructureSinglePart)
	if img.Type != "image" || img.ID != "<x>" || img.Extended.Disposition.Value != "inline" {
		t.Fatalf("inline image: %#v", img)
	}
	txt := mp.Children[0].(*imap.BodyStructureSinglePart)
	// RFC 2046 5.1.1: the CRLF before a boundary belongs to the boundary.
	if txt.Size != 2 || txt.Text.NumLines != 0 || txt.Params["charset"] != "utf-8" {
		t.Fatalf("text part: %#v", txt)
	}

	fwd := "Content-Type: multipart/mixed; boundary=m\r\n\r\n--m\r\nContent-Type: text/plain\r\n\r\nsee below\r\n" +
		"--m\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\nFrom: a@b.c\r\n\r\ninner body\r\n--m--\r\n"
	mp = parseBodyStructure(strings.NewReader(fwd)).(*imap.BodyStructureMultiPart)
	msg := mp.Children[1].(*imap.BodyStructureSinglePart)
	if msg.MessageRFC822 == nil || msg.MessageRFC822.Envelope.Subject != "inner" {
		t.Fatalf("message/rfc822: %#v", msg)
	}

	// Broken shapes still give a grammatical answer.
	for _, m := range []string{
		"",
		"Content-Type: ;;;\r\n\r\nx",
	} {
		sp, ok := parseBodyStructure(strings.NewReader(m)).(*imap.BodyStructureSinglePart)
		if !ok || sp.Type != "text" || sp.Subtype != "plain" || sp.Params["charset"] != "us-ascii" {
			t.Errorf("%q: %#v", m, sp)
		}
	}
	// A multipart that cannot be split has one empty text part, as
	// Dovecot answers (the grammar needs at least one part).
	for _, m := range []string{
		"Content-Type: multipart/mixed\r\n\r\nx\r\n",
		"Content-Type: multipart/mixed; boundary=q\r\n\r\nno parts at all\r\n",
	} {
		mp, ok := parseBodyStructure(strings.NewReader(m)).(*imap.BodyStructureMultiPart)
		if !ok || len(mp.Children) != 1 {
			t.Fatalf("%q: %#v", m, mp)
		}
		if sp := mp.Children[0].(*imap.BodyStructureSinglePart); sp.Type != "text" || sp.Size != 0 {
			t.Errorf("%q: child %#v", m, sp)
		}
	}
}

func FuzzBodyStructure(f *testing.F) {
	f.Add("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n")
	f.Add("Content-Type: message/rfc822\r\n\r\nContent-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n\r\nSubject: x\r\n\r\n--d--")
	f.Add("\r\n\r\n")
	f.Fuzz(func(t *testing.T, s string) {
		var walk func(bs imap.BodyStructure)
		walk = func(bs imap.BodyStructure) {
			switch b := bs.(type) {
			case *imap.BodyStructureMultiPart:
				if len(b.Children) == 0 {
					t.Fatal("multipart without parts")
				}
				for _, c := range b.Children {
					walk(c)
				}
			case *imap.BodyStructureSinglePart:
				// A subtype may be empty ("Content-Type: garbage"
				// is answered ("garbage" "")); a type never is.
				if b.Type == "" {
					t.Fatalf("empty type %#v", b)
				}
				if b.MessageRFC822 != nil {
					walk(b.MessageRFC822.BodyStructure)
				}
			}
		}
		walk(parseBodyStructure(strings.NewReader(s)))
	})
}

func TestContentTypeParams(t *testing.T) {
	ct, ok := parseContentType(`Application/X-Thing (comment) ; Name="a \"b\".txt"; name*0*=UTF-8''%C3%A4; name*1=" b"; broken`, true)
	if !ok || ct.typ != "Application" || ct.sub != "X-Thing" {
		t.Fatalf("type: %#v", ct)
	}
	want := []mimeParam{{"Name", `a "b".txt`}, {"name*", "UTF-8''%C3%A4%20b"}}
	if len(ct.params) != len(want) {
		t.Fatalf("params %v, want %v", ct.params, want)
	}
	for i := range want {
		if ct.params[i] != want[i] {
			t.Errorf("param %d = %v, want %v", i, ct.params[i], want[i])
		}
	}
	if _, ok := parseContentType("  ", true); ok {
		t.Error("empty Content-Type parsed")
	}
}

func TestAddressList(t *testing.T) {
	got := parseAddressList(`"Doe, J." <j@d.example>, Team: a@b.example, "B" <b@b.example>;, c@d.example (Cee), <@route:x@y.example>, bare`)
	want := []imap.Address{
		{Name: "Doe, J.", Mailbox: "j", Host: "d.example"},
		{Mailbox: "Team"},
		{Mailbox: "a", Host: "b.example"},
		{Name: "B", Mailbox: "b", Host: "b.example"},
		{},
		{Name: "Cee", Mailbox: "c", Host: "d.example"},
		{Mailbox: "x", Host: "y.example"},
		{Mailbox: "bare"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %#v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("address %d = %#v, want %#v", i, got[i], want[i])
		}
	}
}

func FuzzMIMEHeader(f *testing.F) {
	f.Add(`text/plain; charset="us-ascii"; name*0*=x; name*1=y (c)`)
	f.Add(`"A (b)" <@r:a@b>, g: c@d;, e@f (g`)
	f.Add(`((((`)
	f.Fuzz(func(t *testing.T, s string) {
		if ct, ok := parseContentType(s, true); ok && ct.typ == "" {
			t.Fatal("type empty but ok")
		}
		for _, a := range parseAddressList(s) {
			_ = a.Addr()
		}
	})
}
