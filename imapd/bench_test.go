package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"tern/common/config"
)

// benchMessages is the size of the benchmarks' INBOX: a mailbox of a few
// thousand messages, as in the benchmark harness's IMAP mix.
const benchMessages = 2000

// benchMessage builds message i of about size bytes with bare LF line
// ends, as procmail or a migration writes them, so that every read goes
// through the CRLF conversion.
func benchMessage(i, size int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "Return-Path: <sender%d@example.org>\n", i%97)
	fmt.Fprintf(&b, "From: Sender %d <sender%d@example.org>\n", i%97, i%97)
	b.WriteString("To: <demo@example.test>\n")
	fmt.Fprintf(&b, "Subject: Bench message %d about topic%d\n", i, i%13)
	b.WriteString("Date: Mon, 01 Jan 2024 00:00:00 +0000\n")
	fmt.Fprintf(&b, "Message-ID: <%d@bench.example.org>\n", i)
	b.WriteString("MIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\n\n")
	for n := 0; b.Len() < size; n++ {
		fmt.Fprintf(&b, "paragraph %d of message %d: the quick brown fox jumps over the lazy dog.\n", n, i)
	}
	return b.Bytes()
}

// benchInbox starts a server whose demo INBOX holds n messages written
// straight into cur/ (no index, no ",W=" in the names, like mail moved in
// by another program), and returns a line-level client (so that little of
// the time measured is the client's) with INBOX selected.
func benchInbox(b *testing.B, n int) *rawIMAP {
	b.Helper()
	e := startServer(b)
	root, err := config.Expand(e.cfg.Maildir, "demo@example.test")
	if err != nil {
		b.Fatal(err)
	}
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, sub), 0o700); err != nil {
			b.Fatal(err)
		}
	}
	base := time.Now().Unix() - int64(n)
	for i := 0; i < n; i++ {
		body := benchMessage(i, 4096)
		flags := ""
		if i%3 == 0 {
			flags = "S"
		}
		name := fmt.Sprintf("%d.M%dP1.bench,S=%d:2,%s", base+int64(i), i, len(body), flags)
		if err := os.WriteFile(filepath.Join(root, "cur", name), body, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	c := dialRawIMAP(b, e.addr)
	c.cmd("LOGIN demo demo")
	want := fmt.Sprintf("* %d EXISTS\r\n", n)
	if got := c.cmd("SELECT INBOX"); !slices.ContainsFunc(got, func(l []byte) bool { return string(l) == want }) {
		b.Fatalf("SELECT: %q, want %q", got, want)
	}
	// The store rescans a directory whose mtime is within a second of its
	// last scan; past that, a folder nobody changes costs a few stats per
	// sync, and what is measured is imapd's own work.
	time.Sleep(1100 * time.Millisecond)
	c.cmd("SELECT INBOX")
	return c
}

// BenchmarkSearchHeader: UID SEARCH HEADER From, the harness's text search.
func BenchmarkSearchHeader(b *testing.B) {
	c := benchInbox(b, benchMessages)
	i := 0
	for b.Loop() {
		i++
		got := c.cmd(`UID SEARCH HEADER From "sender%d@"`, i%97)
		if len(got) != 1 || len(got[0]) < 20 {
			b.Fatalf("search: %q", got)
		}
	}
}

// BenchmarkSearchUnseen: UID SEARCH UNSEEN, which needs no message file.
func BenchmarkSearchUnseen(b *testing.B) {
	c := benchInbox(b, benchMessages)
	for b.Loop() {
		if got := c.cmd("UID SEARCH UNSEEN"); len(got) != 1 || len(got[0]) < 20 {
			b.Fatalf("search: %q", got)
		}
	}
}

// BenchmarkFetchBody: FETCH BODY.PEEK[] of one message at a time.
func BenchmarkFetchBody(b *testing.B) {
	c := benchInbox(b, benchMessages)
	i := 0
	for b.Loop() {
		i++
		got := c.cmd("FETCH %d (UID BODY.PEEK[])", 1+i%benchMessages)
		if len(got) != 1 || !bytes.Contains(got[0], []byte("}\r\nReturn-Path:")) {
			b.Fatalf("fetch: %q", got)
		}
	}
}

// BenchmarkFetchFlags1000: FETCH 1:1000 (UID FLAGS).
func BenchmarkFetchFlags1000(b *testing.B) {
	c := benchInbox(b, benchMessages)
	for b.Loop() {
		if got := c.cmd("FETCH 1:1000 (UID FLAGS)"); len(got) != 1000 {
			b.Fatalf("fetched %d messages", len(got))
		}
	}
}

// BenchmarkSelect: SELECT INBOX again and again.
func BenchmarkSelect(b *testing.B) {
	c := benchInbox(b, benchMessages)
	for b.Loop() {
		c.cmd("SELECT INBOX")
	}
}

// BenchmarkSortDate: SORT (DATE), warm: the keys come from the header
// cache (RFC 5256).
func BenchmarkSortDate(b *testing.B) {
	c := benchInbox(b, benchMessages)
	for b.Loop() {
		if got := c.cmd("SORT (DATE) UTF-8 ALL"); len(got) != 1 || len(got[0]) < 20 {
			b.Fatalf("sort: %q", got)
		}
	}
}

// BenchmarkThreadReferences: THREAD REFERENCES, warm.
func BenchmarkThreadReferences(b *testing.B) {
	c := benchInbox(b, benchMessages)
	for b.Loop() {
		if got := c.cmd("THREAD REFERENCES UTF-8 ALL"); len(got) != 1 || len(got[0]) < 20 {
			b.Fatalf("thread: %q", got)
		}
	}
}
