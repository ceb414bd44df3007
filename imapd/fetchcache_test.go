package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"tern/common/config"
)

const cacheTestMultipart = "From: Bob <bob@example.test>\r\n" +
	"To: demo@example.test, Carol <carol@example.test>\r\n" +
	"Subject: parts\r\n" +
	"Date: Tue, 03 Jan 2006 10:00:00 +0000\r\n" +
	"Message-ID: <parts@example.test>\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: multipart/mixed; boundary=\"b1\"\r\n" +
	"\r\n" +
	"--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhello\r\n" +
	"--b1\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\naGVsbG8=\r\n" +
	"--b1--\r\n"

// withCacheServers starts a server with the fetch cache and one without,
// each with the same three messages in INBOX, and runs f on a logged-in
// connection to each (e): rounds times on the one with the cache (2: cold,
// then warm), once on the other. It returns the server with the cache.
func withCacheServers(t *testing.T, f func(e *testEnv, c *wireConn, rounds int)) (cached *testEnv) {
	cached = startServer(t, noDelay)
	uncached := startServer(t, noDelay, func(c *config.Config) { c.IMAPD.MessageCacheSize = 0 })
	for _, e := range []*testEnv{cached, uncached} {
		e.deliver(t, "INBOX", testMessage("one", "hello"))
		e.deliver(t, "INBOX", cacheTestMultipart)
		e.deliver(t, "INBOX", "Subject: no body") // a header never ended
		c := transports[0].dial(t, e)
		c.login()
		rounds := 1
		if e == cached {
			rounds = 2
		}
		f(e, c, rounds)
	}
	return cached
}

// fetchAll is the FETCH whose items the fetch cache answers.
const fetchAll = "FETCH 1:* (ENVELOPE BODY BODYSTRUCTURE BODY.PEEK[HEADER.FIELDS (Subject From)] RFC822.HEADER BODY.PEEK[HEADER])"

// The fetch cache answers exactly what reading the files answers: the
// same FETCH, twice on a server with the cache and once on one without,
// gives the same bytes.
func TestFetchCacheSameAnswers(t *testing.T) {
	answers := make([]string, 0, 3)
	cached := withCacheServers(t, func(_ *testEnv, c *wireConn, rounds int) {
		c.ok("S", "EXAMINE INBOX")
		for i := 0; i < rounds; i++ {
			answers = append(answers, strings.Join(c.ok("F", fetchAll), ""))
		}
	})
	if !strings.Contains(answers[0], `"parts"`) || !strings.Contains(answers[0], `"base64"`) {
		t.Fatalf("unexpected answer: %q", answers[0])
	}
	if answers[0] != answers[1] || answers[0] != answers[2] {
		t.Fatalf("cached answers differ:\nfirst:    %q\nsecond:   %q\nuncached: %q", answers[0], answers[1], answers[2])
	}
	if cached.srv.fetchInfo.used == 0 {
		t.Fatal("nothing was cached")
	}
}

// A message replaced by another program (an editor writing a new file
// and removing the old one, as mutt does) is read anew, and a flag change
// made by renaming the file keeps the cached answer right.
func TestFetchCacheOutsideWriters(t *testing.T) {
	e := startServer(t, noDelay)
	e.deliver(t, "INBOX", testMessage("before", "hello"))
	c := transports[0].dial(t, e)
	c.login()
	c.ok("S", "SELECT INBOX")
	if out := strings.Join(c.ok("F", "FETCH 1 (ENVELOPE BODY.PEEK[HEADER.FIELDS (Subject)])"), ""); !strings.Contains(out, "before") {
		t.Fatalf("first FETCH: %q", out)
	}

	root, err := config.Expand(e.cfg.Maildir, "demo@example.test")
	if err != nil {
		t.Fatal(err)
	}
	cur := filepath.Join(root, "cur")
	names, err := filepath.Glob(filepath.Join(cur, "*"))
	if err != nil || len(names) != 1 {
		t.Fatalf("cur/: %v %v", names, err)
	}
	// An outside flag change: same key, new info.
	flagged := strings.TrimSuffix(names[0], filepath.Base(names[0])) + strings.SplitN(filepath.Base(names[0]), ":", 2)[0] + ":2,F"
	if err := os.Rename(names[0], flagged); err != nil {
		t.Fatal(err)
	}
	out := strings.Join(c.ok("F", "FETCH 1 (FLAGS ENVELOPE)"), "")
	if !strings.Contains(out, `\Flagged`) || !strings.Contains(out, "before") {
		t.Fatalf("after outside flag change: %q", out)
	}
	// An outside edit: a new file, the old one removed.
	edited := filepath.Join(root, "new", "1700000000.M1P1.editor")
	if err := os.WriteFile(edited, []byte(testMessage("after", "edited")), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(flagged); err != nil {
		t.Fatal(err)
	}
	c.ok("N", "NOOP")
	out = strings.Join(c.ok("F", "FETCH 1:* (UID ENVELOPE BODY.PEEK[HEADER.FIELDS (Subject)])"), "")
	if strings.Contains(out, "before") || !strings.Contains(out, "after") || !strings.Contains(out, "UID 2 ") {
		t.Fatalf("after outside edit: %q", out)
	}
}

// CATENATE's URL parts (RFC 4469 3) are cut out by FETCH's section
// extractor, through the fetch cache: a cold read fills it, and the parts
// read cold, from it, and on a server without it are the same bytes.
func TestFetchCacheCatenate(t *testing.T) {
	var messages [][]string
	withCacheServers(t, func(e *testEnv, c *wireConn, rounds int) {
		c.ok("C", "CREATE Cat")
		for i := 0; i < rounds; i++ {
			for uid := 1; uid <= 3; uid++ {
				u := fmt.Sprintf("/INBOX/;UID=%d/;SECTION=", uid)
				out := c.answer(`A APPEND Cat CATENATE (URL "` + u + `HEADER" URL "` + u +
					`HEADER.FIELDS%20(Subject%20From)" TEXT ` + lit("--\r\n", false) + ` URL "` + u + `TEXT")`)
				if !strings.HasPrefix(out[len(out)-1], "A OK") {
					t.Fatalf("CATENATE of %d: %q", uid, out)
				}
			}
			if rounds == 2 && i == 0 && e.srv.fetchInfo.used == 0 {
				t.Fatal("CATENATE left nothing in the fetch cache")
			}
		}
		c.ok("E", "EXAMINE Cat")
		var bodies []string
		for n := 1; n <= 3*rounds; n++ {
			out := c.ok("F", fmt.Sprintf("FETCH %d BODY.PEEK[]", n))
			// The message from its literal on: the sequence number and
			// UID differ between the rounds.
			got := strings.Join(out[:len(out)-1], "")
			bodies = append(bodies, got[strings.Index(got, "BODY[]"):])
		}
		messages = append(messages, bodies)
	})
	if !strings.Contains(messages[1][1], "From: Bob <bob@example.test>\r\nSubject: parts\r\n\r\n--\r\n--b1") {
		t.Fatalf("unexpected message: %q", messages[1][1])
	}
	for n := range 3 {
		for _, got := range []string{messages[0][n], messages[0][n+3]} {
			if got != messages[1][n] {
				t.Fatalf("message %d differs:\ncached:   %q\nuncached: %q", n+1, got, messages[1][n])
			}
		}
	}
}
