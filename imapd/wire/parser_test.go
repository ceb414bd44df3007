package wire

import (
	"bufio"
	"bytes"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
)

func parse(t testing.TB, line string, lits ...string) *Parser {
	t.Helper()
	c := &Command{Text: []byte(line)}
	for _, l := range lits {
		c.Lits = append(c.Lits, []byte(l))
	}
	c.Tag, c.Name = commandName(c.Text)
	p := NewParser(c, false, 8)
	p.SP()
	return p
}

func TestParseFetch(t *testing.T) {
	p := parse(t, "a FETCH (UID FLAGS BODY.PEEK[HEADER.FIELDS (From To)]<0.100> BODY[1.2.MIME] BINARY[1]<5.10> RFC822 BODY)\r\n")
	req, err := p.Fetch()
	if err != nil || p.End() != nil {
		t.Fatalf("fetch: %v", err)
	}
	o := req.Options
	if !o.UID || !o.Flags || len(o.BodySection) != 3 || len(o.BinarySection) != 1 || !req.Body {
		t.Fatalf("options %+v", o)
	}
	h := o.BodySection[0]
	if !h.Peek || h.Specifier != imap.PartSpecifierHeader || len(h.HeaderFields) != 2 || h.Partial.Size != 100 {
		t.Fatalf("header section %+v", h)
	}
	if m := o.BodySection[1]; m.Specifier != imap.PartSpecifierMIME || len(m.Part) != 2 {
		t.Fatalf("MIME section %+v", m)
	}
	if req.Obsolete[o.BodySection[2]] != "RFC822" {
		t.Fatal("RFC822 not remembered")
	}
}

func TestParseSearchDepth(t *testing.T) {
	deep := strings.Repeat("(", 50) + "ALL" + strings.Repeat(")", 50)
	if _, err := parse(t, "a SEARCH "+deep+"\r\n").Search(); err != ErrDepth {
		t.Fatalf("deep parentheses: %v", err)
	}
	ors := strings.Repeat("OR ALL ", 50) + "ALL"
	if _, err := parse(t, "a SEARCH "+ors+"\r\n").Search(); err != ErrDepth {
		t.Fatalf("deep OR: %v", err)
	}
	req, err := parse(t, "a SEARCH RETURN (MIN COUNT) CHARSET UTF-8 OR FROM {3}\r\n NOT (SUBJECT x UID 1:*) 2,4:*\r\n", "abc").Search()
	if err != nil || req.Charset != "UTF-8" || !req.Options.ReturnMin || len(req.Criteria.Or) != 1 || len(req.Criteria.SeqNum) != 1 {
		t.Fatalf("search %+v %v", req, err)
	}
}

func TestMailboxNames(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		utf8 bool
		want string
		bad  bool
	}{
		{"R&-D", false, "R&D", false},
		{"&ZeVnLIqe-x", false, "日本語x", false},
		{"&ZeVnLIqe-x", true, "&ZeVnLIqe-x", false},
		{"R&D", true, "R&D", false},
		{"R&D", false, "", true},
		{"a\x01b", true, "", true},
		{"inbox", false, "INBOX", false},
	} {
		got, err := DecodeMailbox(tc.raw, tc.utf8)
		if (err != nil) != tc.bad || got != tc.want {
			t.Errorf("DecodeMailbox(%q, %v) = %q, %v", tc.raw, tc.utf8, got, err)
		}
	}
	if EncodeUTF7("日本語x & y") != "&ZeVnLIqe-x &- y" {
		t.Fatal(EncodeUTF7("日本語x & y"))
	}
}

func TestEncoderStrings(t *testing.T) {
	var b bytes.Buffer
	w := bufio.NewWriter(&b)
	e := NewEncoder(w)
	e.String(`a"b`).SP().String("x\r\ny").SP().NString("").SP().Mailbox("R&D")
	e.UTF8 = true
	e.SP().Mailbox("R&D").SP().Mailbox("日本")
	w.Flush()
	if want := "\"a\\\"b\" {4}\r\nx\r\ny NIL \"R&-D\" \"R&D\" \"日本\""; b.String() != want {
		t.Fatalf("got %q, want %q", b.String(), want)
	}
}

func TestEnvelopeRoutes(t *testing.T) {
	var b bytes.Buffer
	w := bufio.NewWriter(&b)
	env := &imap.Envelope{From: []imap.Address{{Mailbox: "user", Host: "domain"}}}
	NewEncoder(w).EnvelopeRoutes(env, &Routes{{"@route"}})
	w.Flush()
	want := `(NIL NIL (("" NIL "user" "domain")) (("" NIL "user" "domain")) (("" NIL "user" "domain")) NIL NIL NIL NIL NIL)`
	want = strings.ReplaceAll(want, `("" NIL`, `(NIL "@route"`)
	if b.String() != want {
		t.Fatalf("got  %s\nwant %s", b.String(), want)
	}
}

// FuzzParse feeds one command of arbitrary text and literals to every
// argument parser: none may panic, and errors are BAD or NO replies.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"(UID FLAGS BODY.PEEK[1.2.HEADER.FIELDS (a b)]<1.2>)",
		"RETURN (SAVE) CHARSET UTF-8 OR NOT 1:* (FROM {3}\r\n)",
		"(SUBSCRIBED) \"\" (\"*\" %) RETURN (STATUS (MESSAGES SIZE))",
		"INBOX (\\Seen) \"01-Jan-2020 00:00:00 +0000\" ",
		"&ZeVnLIqe- (USE (\\Sent))",
		"(\"name\" \"x\" \"version\" NIL)",
		"RETURN (MIN PARTIAL -1:-100 UPDATE) (REVERSE DATE SUBJECT) UTF-8 NOT SEEN",
		"REFERENCES US-ASCII ALL",
		"\"a\" \"b\"",
		"(QRESYNC (67890007 90060115194045000 41:211,214:541 (1:3 5:7)))",
		"(CHANGEDSINCE 12345 VANISHED)",
		"MODSEQ \"/flags/\\\\draft\" all 620162338",
		"INBOX CATENATE (URL {3}\r\n TEXT {5}\r\n) (\\Seen) {3}\r\n",
		"(EMAILID THREADID SAVEDATE PREVIEW (LAZY))",
		"OR EMAILID M1 THREADID T2 SAVEDON 1-Feb-2020 SAVEDATESUPPORTED",
		"INBOX (MAILBOXID MESSAGES)",
	} {
		f.Add([]byte(s), []byte("abc"))
	}
	f.Fuzz(func(t *testing.T, args, lit []byte) {
		for _, fn := range []func(p *Parser) error{
			func(p *Parser) error { _, err := p.Fetch(); return err },
			func(p *Parser) error { _, err := p.Search(); return err },
			func(p *Parser) error { _, _, err := p.Store(); return err },
			func(p *Parser) error { _, err := p.ListArgs(); return err },
			func(p *Parser) error { _, err := p.CreateOptions(); return err },
			func(p *Parser) error { _, err := p.StatusItems(); return err },
			func(p *Parser) error { _, err := p.NumSet(true); return err },
			func(p *Parser) error { _, err := p.ID(); return err },
			func(p *Parser) error { _, err := p.Sort(); return err },
			func(p *Parser) error { _, err := p.Thread(); return err },
			func(p *Parser) error { _, err := p.CancelUpdate(); return err },
			func(p *Parser) error { _, err := p.SelectParams(); return err },
			func(p *Parser) error { return p.FetchModifiers(&FetchRequest{Options: &imap.FetchOptions{}}) },
		} {
			c := &Command{Tag: "a", Name: "X", Text: append([]byte("a X "), append(args, "\r\n"...)...), Lits: [][]byte{lit}}
			p := NewParser(c, len(lit)%2 == 0, 8)
			p.SP()
			if err := fn(p); err != nil {
				ie, ok := err.(*imap.Error)
				if !ok || (ie.Type != imap.StatusResponseTypeBad && ie.Type != imap.StatusResponseTypeNo) {
					t.Fatalf("error %v is not a BAD or NO reply", err)
				}
			}
		}
		// APPEND's arguments, as the reader and the handler scan them.
		c := &Command{Tag: "a", Name: "APPEND", Text: append([]byte("a APPEND "), append(args, "\r\n"...)...), Lits: [][]byte{lit}}
		if _, err := ScanAppend(c, len(lit)%2 == 0); err != nil {
			ie, ok := err.(*imap.Error)
			if !ok || (ie.Type != imap.StatusResponseTypeBad && ie.Type != imap.StatusResponseTypeNo) {
				t.Fatalf("APPEND error %v is not a BAD or NO reply", err)
			}
		}
	})
}

// RFC 7162's SELECT parameters: well-formed ones parse whole, anything
// else is BAD.
func TestSelectParams(t *testing.T) {
	p := parse(t, "a X (QRESYNC (67890007 90060115194045000 41:211,214:541 (1:3 5:7)))\r\n")
	sp, err := p.SelectParams()
	if err != nil || sp.QResync == nil || sp.QResync.UIDValidity != 67890007 || sp.QResync.ModSeq != 90060115194045000 ||
		sp.QResync.KnownUIDs.String() != "41:211,214:541" || sp.QResync.SeqMatchSeqs.String() != "1:3" ||
		sp.QResync.SeqMatchUIDs.String() != "5:7" || p.End() != nil {
		t.Fatalf("QRESYNC: %+v %v", sp, err)
	}
	if sp, err := parse(t, "a X (CONDSTORE)\r\n").SelectParams(); err != nil || !sp.CondStore {
		t.Fatalf("CONDSTORE: %+v %v", sp, err)
	}
	for _, bad := range []string{
		"(FOO)", "(QRESYNC (0 1))", "(QRESYNC (1 0))", "(QRESYNC (1))", "(QRESYNC (1 1 x))",
		"(QRESYNC (1 1 1:2 (1:2)))", "(QRESYNC (1 1) QRESYNC (1 1))", "(QRESYNC (1 1 $))",
	} {
		if _, err := parse(t, "a X "+bad+"\r\n").SelectParams(); err == nil {
			t.Errorf("%s: no error", bad)
		} else if ie, ok := err.(*imap.Error); !ok || ie.Type != imap.StatusResponseTypeBad {
			t.Errorf("%s: %v, want BAD", bad, err)
		}
	}
}
