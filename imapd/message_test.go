package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"tern/common/config"
)

func TestFetchErrorsAndPartial(t *testing.T) {
	e := startServer(t)
	msg := testMessage("p", "0123456789\r\n")
	e.deliver(t, "INBOX", msg)
	c := e.login(t, nil)
	// Out of state: FETCH before SELECT.
	_, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{Flags: true}).Collect()
	wantIMAPError(t, err, imap.StatusResponseTypeBad, "fetch unselected")
	selectInbox(t, c)
	_, err = c.Fetch(imap.SeqSetNum(5), &imap.FetchOptions{Flags: true}).Collect()
	wantIMAPError(t, err, imap.StatusResponseTypeBad, "fetch beyond EXISTS")
	// UIDs that do not exist are ignored.
	msgs, err := c.Fetch(imap.UIDSetNum(99), &imap.FetchOptions{Flags: true}).Collect()
	if err != nil || len(msgs) != 0 {
		t.Fatalf("UID FETCH 99: %v %v", msgs, err)
	}
	part := &imap.FetchItemBodySection{Peek: true, Partial: &imap.SectionPartial{Offset: 5, Size: 10}}
	msgs, err = c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{part}}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	if got := msgs[0].FindBodySection(part); string(got) != msg[5:15] {
		t.Fatalf("partial = %q, want %q", got, msg[5:15])
	}
	hdr := &imap.FetchItemBodySection{Peek: true, Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Subject"}}
	msgs, err = c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{hdr}}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	if got := msgs[0].FindBodySection(hdr); string(got) != "Subject: p\r\n\r\n" {
		t.Fatalf("HEADER.FIELDS = %q", got)
	}
}

// A file written with bare LF (procmail, mutt) is served with CRLF, and
// RFC822.SIZE agrees with what is sent.
func TestFetchBareLF(t *testing.T) {
	e := startServer(t)
	e.deliver(t, "INBOX", "Subject: lf\n\nline one\nline two\n")
	c := e.login(t, nil)
	selectInbox(t, c)
	msgs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{RFC822Size: true,
		BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	body := msgs[0].FindBodySection(&imap.FetchItemBodySection{Peek: true})
	want := "Subject: lf\r\n\r\nline one\r\nline two\r\n"
	if string(body) != want || msgs[0].RFC822Size != int64(len(want)) {
		t.Fatalf("body %q size %d", body, msgs[0].RFC822Size)
	}
}

// Malformed MIME must never fail a FETCH.
func TestFetchMalformedMIME(t *testing.T) {
	e := startServer(t)
	bad := []string{
		"Content-Type: multipart/mixed\r\n\r\nno boundary here\r\n",
		"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: text/plain\r\n\r\nunterminated",
		"Content-Type: text/plain; charset=\"unterminated\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!not base64!!!\r\n",
		"Content-Type: message/rfc822\r\n\r\nnot: really\r\n",
		"garbage without header\r\n",
	}
	for _, m := range bad {
		e.deliver(t, "INBOX", m)
	}
	c := e.login(t, nil)
	selectInbox(t, c)
	msgs, err := c.Fetch(imap.SeqSetNum(1, 2, 3, 4, 5), &imap.FetchOptions{
		Envelope: true, BodyStructure: &imap.FetchItemBodyStructure{Extended: true},
		BodySection:   []*imap.FetchItemBodySection{{Peek: true, Part: []int{1}}, {Peek: true, Specifier: imap.PartSpecifierHeader}},
		BinarySection: []*imap.FetchItemBinarySection{{Peek: true, Part: []int{1}}},
	}).Collect()
	if err != nil {
		t.Fatalf("fetch of malformed mail: %v", err)
	}
	if len(msgs) != len(bad) {
		t.Fatalf("got %d answers", len(msgs))
	}
}

func TestStoreFlags(t *testing.T) {
	e := startServer(t)
	e.deliver(t, "INBOX", testMessage("a", "x\r\n"))
	e.deliver(t, "INBOX", testMessage("b", "x\r\n"))
	c := e.login(t, nil)
	selectInbox(t, c)
	got, err := c.Store(imap.SeqSetNum(1, 2), &imap.StoreFlags{Op: imap.StoreFlagsAdd,
		Flags: []imap.Flag{imap.FlagFlagged, "$Label1"}}, nil).Collect()
	if err != nil || len(got) != 2 || !hasIMAPFlag(got[0].Flags, "$Label1") {
		t.Fatalf("store +FLAGS: %+v %v", got, err)
	}
	got, err = c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsDel, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Collect()
	if err != nil || hasIMAPFlag(got[0].Flags, imap.FlagFlagged) {
		t.Fatalf("store -FLAGS: %+v %v", got, err)
	}
	got, err = c.Store(imap.UIDSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsSet, Silent: true, Flags: []imap.Flag{imap.FlagAnswered}}, nil).Collect()
	if err != nil || len(got) != 0 {
		t.Fatalf("UID STORE FLAGS.SILENT: %+v %v", got, err)
	}
	_, err = c.Store(imap.SeqSetNum(7), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagSeen}}, nil).Collect()
	wantIMAPError(t, err, imap.StatusResponseTypeBad, "store beyond EXISTS")
	// EXAMINE is read-only.
	if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	_, err = c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagSeen}}, nil).Collect()
	wantIMAPError(t, err, imap.StatusResponseTypeNo, "store in EXAMINE")
}

func TestAppendCopyMove(t *testing.T) {
	e := startServer(t)
	c := e.login(t, nil)
	msg := testMessage("appended", "hi\r\n")
	date := time.Date(2020, 5, 6, 7, 8, 9, 0, time.UTC)
	app := c.Append("INBOX", int64(len(msg)), &imap.AppendOptions{Flags: []imap.Flag{imap.FlagSeen, "$Work"}, Time: date})
	app.Write([]byte(msg))
	app.Close()
	ad, err := app.Wait()
	if err != nil || ad.UID == 0 || ad.UIDValidity == 0 {
		t.Fatalf("append: %+v %v", ad, err)
	}
	wa := c.Append("Nope", int64(len(msg)), nil)
	wa.Write([]byte(msg))
	wa.Close()
	_, err = wa.Wait()
	if ie := wantIMAPError(t, err, imap.StatusResponseTypeNo, "append to missing"); ie.Code != imap.ResponseCodeTryCreate {
		t.Errorf("code %s, want TRYCREATE", ie.Code)
	}

	selectInbox(t, c)
	msgs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{Flags: true, InternalDate: true}).Collect()
	if err != nil || !msgs[0].InternalDate.Equal(date) || !hasIMAPFlag(msgs[0].Flags, "$Work") {
		t.Fatalf("appended message: %+v %v", msgs, err)
	}
	cd, err := c.Copy(imap.SeqSetNum(1), "Archive").Wait()
	if err != nil || len(cd.DestUIDs) == 0 {
		t.Fatalf("copy: %+v %v", cd, err)
	}
	_, err = c.Copy(imap.SeqSetNum(1), "Nope").Wait()
	wantIMAPError(t, err, imap.StatusResponseTypeNo, "copy to missing")
	md, err := c.Move(imap.SeqSetNum(1), "Trash").Wait()
	if err != nil || md.UIDValidity == 0 {
		t.Fatalf("move: %+v %v", md, err)
	}
	if st, err := c.Status("Trash", &imap.StatusOptions{NumMessages: true}).Wait(); err != nil || *st.NumMessages != 1 {
		t.Fatalf("Trash after move: %+v %v", st, err)
	}
	if c.Mailbox().NumMessages != 0 {
		t.Fatalf("INBOX still has %d after MOVE", c.Mailbox().NumMessages)
	}
}

func TestAppendTooBig(t *testing.T) {
	e := startServer(t, func(c *config.Config) { c.IMAPD.MaxLiteralSize = 1024 })
	c := e.login(t, nil)
	big := bytes.Repeat([]byte("x"), 2048)
	app := c.Append("INBOX", int64(len(big)), nil)
	app.Write(big)
	app.Close()
	_, err := app.Wait()
	if ie := wantIMAPError(t, err, imap.StatusResponseTypeNo, "oversized append"); ie.Code != imap.ResponseCodeTooBig {
		t.Fatalf("code %q, want TOOBIG", ie.Code)
	}
	caps, err := c.Capability().Wait()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := caps["APPENDLIMIT=1024"]; !ok {
		t.Errorf("APPENDLIMIT not advertised: %v", caps)
	}
}

func TestSearch(t *testing.T) {
	e := startServer(t)
	e.deliver(t, "INBOX", testMessage("plain hello", "nothing special\r\n"))
	e.deliver(t, "INBOX", "From: x@example.test\r\nSubject: =?ISO-8859-1?Q?caf=E9?=\r\n"+
		"Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nun caf=E9 cr=E8me\r\n")
	e.deliver(t, "INBOX", "Subject: multi\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\n"+
		"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\nR3LDvMOfZSBhdXMgQmVybGlu\r\n--b--\r\n")
	c := e.login(t, nil)
	selectInbox(t, c)
	if _, err := c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Collect(); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		c    imap.SearchCriteria
		want []uint32
	}{
		{"all", imap.SearchCriteria{}, []uint32{1, 2, 3}},
		{"flagged", imap.SearchCriteria{Flag: []imap.Flag{imap.FlagFlagged}}, []uint32{1}},
		{"unflagged", imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagFlagged}}, []uint32{2, 3}},
		{"subject latin1 word", imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "CAFÉ"}}}, []uint32{2}},
		{"body qp latin1", imap.SearchCriteria{Body: []string{"crème"}}, []uint32{2}},
		{"body base64 utf8", imap.SearchCriteria{Body: []string{"grüße"}}, []uint32{3}},
		{"text header", imap.SearchCriteria{Text: []string{"hello"}}, []uint32{1}},
		{"or", imap.SearchCriteria{Or: [][2]imap.SearchCriteria{{{Body: []string{"crème"}}, {Flag: []imap.Flag{imap.FlagFlagged}}}}}, []uint32{1, 2}},
		{"not", imap.SearchCriteria{Not: []imap.SearchCriteria{{Flag: []imap.Flag{imap.FlagFlagged}}}}, []uint32{2, 3}},
		{"larger", imap.SearchCriteria{Larger: int64(len(testMessage("plain hello", "nothing special\r\n")))}, []uint32{3}},
		{"smaller", imap.SearchCriteria{Smaller: int64(len(testMessage("plain hello", "nothing special\r\n"))) + 1}, []uint32{1, 2}},
		{"seq", imap.SearchCriteria{SeqNum: []imap.SeqSet{imap.SeqSetNum(2, 3)}}, []uint32{2, 3}},
		{"sentsince", imap.SearchCriteria{SentSince: time.Date(2006, 1, 1, 0, 0, 0, 0, time.UTC)}, []uint32{1}},
		{"since today", imap.SearchCriteria{Since: time.Now().Add(-48 * time.Hour)}, []uint32{1, 2, 3}},
		{"header exists", imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Message-ID"}}}, []uint32{1}},
	}
	for _, tc := range cases {
		d, err := c.Search(&tc.c, nil).Wait()
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		got := d.AllSeqNums()
		if len(got) != len(tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
				break
			}
		}
	}
	d, err := c.UIDSearch(&imap.SearchCriteria{Flag: []imap.Flag{imap.FlagFlagged}}, nil).Wait()
	if err != nil || len(d.AllUIDs()) != 1 {
		t.Fatalf("UID SEARCH: %+v %v", d, err)
	}
}
