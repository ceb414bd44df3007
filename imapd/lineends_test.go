package main

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
)

// TestLineEndsServedAlike: one multipart message stored three ways (LF as
// tern and procmail write it, CRLF as older tern wrote it, and mixed) is
// served alike: the same BODY[] (the CRLF text), RFC822.SIZE, and
// BODYSTRUCTURE with the same part sizes and line counts.
func TestLineEndsServedAlike(t *testing.T) {
	e := startServer(t)
	crlf := "From: a@example.test\r\nSubject: ends\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\npreamble\r\n" +
		"--b\r\nContent-Type: text/plain\r\n\r\none\r\ntwo\r\n\r\nthree\r\n" +
		"--b\r\nContent-Type: text/plain\r\n\r\nfour\r\n--b--\r\n"
	lf := strings.ReplaceAll(crlf, "\r\n", "\n")
	// Mixed: the header and the first part with LF, the rest with CRLF.
	cut := strings.Index(crlf, "--b\r\nContent-Type: text/plain\r\n\r\nfour")
	mixed := strings.ReplaceAll(crlf[:cut], "\r\n", "\n") + crlf[cut:]
	root := e.mailbox(t).Root()
	for i, m := range []string{lf, crlf, mixed} {
		name := fmt.Sprintf("17000000%02d.M1P1.host", i)
		if err := os.WriteFile(filepath.Join(root, "new", name), []byte(m), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c := e.login(t, nil)
	selectInbox(t, c)
	section := &imap.FetchItemBodySection{Peek: true}
	msgs, err := c.Fetch(imap.SeqSetNum(1, 2, 3), &imap.FetchOptions{RFC822Size: true,
		BodyStructure: &imap.FetchItemBodyStructure{},
		BodySection:   []*imap.FetchItemBodySection{section}}).Collect()
	if err != nil || len(msgs) != 3 {
		t.Fatalf("fetch: %d %v", len(msgs), err)
	}
	for i, m := range msgs {
		if body := string(m.FindBodySection(section)); body != crlf || m.RFC822Size != int64(len(crlf)) {
			t.Errorf("message %d: size %d, body %q", i+1, m.RFC822Size, body)
		}
		if !reflect.DeepEqual(m.BodyStructure, msgs[1].BodyStructure) {
			t.Errorf("message %d: BODYSTRUCTURE %#v, the CRLF file's %#v", i+1, m.BodyStructure, msgs[1].BodyStructure)
		}
	}
	mp, ok := msgs[0].BodyStructure.(*imap.BodyStructureMultiPart)
	if !ok || len(mp.Children) != 2 {
		t.Fatalf("BODYSTRUCTURE %#v", msgs[0].BodyStructure)
	}
	first := mp.Children[0].(*imap.BodyStructureSinglePart)
	// RFC 3501 7.4.2: size in octets of the transferred body (CRLF),
	// and its line ends; the CRLF before the boundary is not the part's
	// (RFC 2046 5.1.1).
	if first.Size != uint32(len("one\r\ntwo\r\n\r\nthree")) || first.Text == nil || first.Text.NumLines != 3 {
		t.Errorf("first part: size %d lines %+v", first.Size, first.Text)
	}
}
