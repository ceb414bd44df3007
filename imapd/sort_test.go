package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"tern/common/config"
	"tern/test/peer"
)

var (
	genSortCorpus = flag.Bool("gensort", false, "rewrite testdata/sort/*.eml with the corpus generator")
	updateSort    = flag.Bool("updatesort", false, "rewrite testdata/sort/answers.golden from a real Dovecot")
)

// The SORT/THREAD corpus under testdata/sort is made by sortCorpus, a
// deterministic generator (go test -run TestSortCorpus -gensort rewrites
// it): 240 messages covering every sort key, threads by References, by
// In-Reply-To only and by subject alone, missing parents, duplicate and
// looping Message-IDs, RFC 2047 subjects and names in several charsets,
// every base-subject rule of RFC 5256 2.1, and malformed or missing Date
// fields (RFC 5256 2.2).
const sortCorpusSize = 240

func sortCorpus() [][]byte {
	subjects := []string{
		"Meeting agenda", "Re: Meeting agenda", "RE: re: Meeting agenda", "Fwd: Meeting agenda",
		"Meeting agenda (fwd)", "[fwd: Meeting agenda]", "Re: [list] Meeting agenda", "[list] Re: Meeting agenda",
		"FW: Budget", "Budget", "re:Budget", "Re[2]: Budget", "[blob]", "[a][b] Re: Budget (fwd)  (FWD)",
		"=?UTF-8?B?w4lsw6h2ZSBkdSBtb2lz?=", "Re: =?UTF-8?Q?=C3=A9l=C3=A8ve_du_mois?=",
		"=?ISO-8859-1?Q?=FCber_alles?=", "=?UTF-8?B?5pel5pys6Kqe?=", "=?UTF-8?Q?=CE=A9mega?=",
		"zebra", "Zebra", "_underscore", "apple", "  spaced\t subject  ", "", "[fwd: Re: nested]",
		"Re: Fwd: Re: chain", "chain", "Fw: [x] chain", "=?KOI8-R?B?8NLJ18XU?=", "Ärger", "ärger",
	}
	names := []string{"alice", "Bob", "carol", "dave", "Eve", "frank", "_zed", "mallory", "Ólafur", "zoë"}
	displays := []string{"", "Alice Liddell", "=?UTF-8?Q?=C3=89milie?=", "\"Zed, Z.\"", "bob b", "Ärnold"}
	dates := []string{
		"Mon, 01 Jan 2024 10:00:00 +0000", "Tue, 2 Jan 2024 09:30:00 -0500", "2 Jan 2024 14:30:00 +0000",
		"Wed, 03 Jan 2024 00:00:01 +1400", "Thu, 04 Jan 2024 23:59:59 -1200", "garbage date",
		"", "Fri, 05 Jan 2024 12:00:00 GMT", "Sat, 06 Jan 2024 08:00 +0100", "31 Feb 2024 10:00:00 +0000",
		"Sun, 07 Jan 2024 10:00:00 +0000 (UTC)", "Mon, 08 Jan 2024 25:00:00 +0000",
	}
	var out [][]byte
	for i := 0; i < sortCorpusSize; i++ {
		var b strings.Builder
		fmt.Fprintf(&b, "X-Corpus: %03d\r\n", i)
		if d := dates[(i*7)%len(dates)]; d != "" || i%4 == 0 {
			if d == "" {
				d = fmt.Sprintf("Tue, %d Jan 2024 %02d:%02d:00 +0000", 1+i%28, (i*5)%24, (i*13)%60)
			}
			fmt.Fprintf(&b, "Date: %s\r\n", d)
		}
		from := names[(i*3)%len(names)]
		if disp := displays[i%len(displays)]; disp != "" {
			fmt.Fprintf(&b, "From: %s <%s@example.org>\r\n", disp, from)
		} else if i%11 != 5 {
			fmt.Fprintf(&b, "From: %s@example.org\r\n", from)
		}
		to := names[(i*5+1)%len(names)]
		if i%9 != 4 {
			fmt.Fprintf(&b, "To: %s <%s@example.net>, other@example.com\r\n", displays[(i+2)%len(displays)], to)
		}
		switch {
		case i%15 == 0:
			// A group: its name is the first mailbox, as in ENVELOPE.
			fmt.Fprintf(&b, "Cc: %s: %s@example.com, x@example.com;\r\n", names[(i/15)%len(names)], names[i%len(names)])
		case i%3 == 0:
			fmt.Fprintf(&b, "Cc: %s@example.com\r\n", names[(i*7+2)%len(names)])
		}
		if i%13 != 12 {
			subj := subjects[(i*11)%len(subjects)]
			if i >= 120 && i < 160 {
				// Threads by subject alone: no references.
				subj = []string{"Party", "Re: Party", "Party (fwd)", "Re: Re: Party", "Lunch", "RE: Lunch"}[i%6]
			}
			fmt.Fprintf(&b, "Subject: %s\r\n", subj)
		}
		// Threading: message ids, references chains, In-Reply-To only,
		// missing parents, duplicates, loops, no id at all.
		switch {
		case i%17 == 16:
			// no Message-ID
		case i%23 == 22:
			fmt.Fprintf(&b, "Message-ID: <m%03d@corpus.test>\r\n", i-1) // duplicate
		default:
			fmt.Fprintf(&b, "Message-ID: <m%03d@corpus.test>\r\n", i)
		}
		if i < 120 || i >= 160 {
			switch i % 8 {
			case 1, 2:
				fmt.Fprintf(&b, "References: <m%03d@corpus.test> <m%03d@corpus.test>\r\n", i/3, i-1)
			case 3:
				fmt.Fprintf(&b, "In-Reply-To: <m%03d@corpus.test>\r\n", i-2)
			case 4:
				fmt.Fprintf(&b, "References: <gone%d@corpus.test>\r\n", i%5) // missing parent: dummy
			case 5:
				fmt.Fprintf(&b, "References: <m%03d@corpus.test> <m%03d@corpus.test>\r\n", i+3, i) // loop
			case 6:
				fmt.Fprintf(&b, "In-Reply-To: Your message of Monday <m%03d@corpus.test>\r\n", i/2)
			case 7:
				fmt.Fprintf(&b, "References: <gone%d@corpus.test> <m%03d@corpus.test>\r\n", i%3, i-4)
			}
		}
		b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n")
		// Sizes: some equal (ties broken by mailbox order), most not.
		body := strings.Repeat("line of text\r\n", 1+(i*37)%19)
		b.WriteString(body)
		out = append(out, []byte(b.String()))
	}
	return out
}

// sortCorpusTime is each message's internal date (file mtime): some equal,
// not in the order of the Date fields.
func sortCorpusTime(i int) time.Time {
	return time.Date(2024, 2, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration((i*7919)%97) * time.Hour)
}

func sortCorpusFile(i int) string {
	return fmt.Sprintf("17130000%03d.M%dP1.sort:2,", i, i)
}

// sortCommands are the commands compared: every key, reversed, combined,
// with search criteria, and both threading algorithms.
var sortCommands = []string{
	"SORT (ARRIVAL) UTF-8 ALL", "SORT (CC) UTF-8 ALL", "SORT (DATE) UTF-8 ALL", "SORT (FROM) UTF-8 ALL",
	"SORT (SIZE) UTF-8 ALL", "SORT (SUBJECT) UTF-8 ALL", "SORT (TO) UTF-8 ALL",
	"SORT (DISPLAYFROM) UTF-8 ALL", "SORT (DISPLAYTO) UTF-8 ALL",
	"SORT (REVERSE ARRIVAL) UTF-8 ALL", "SORT (REVERSE DATE) UTF-8 ALL", "SORT (REVERSE SUBJECT) UTF-8 ALL",
	"SORT (REVERSE SIZE) UTF-8 ALL", "SORT (REVERSE FROM) US-ASCII ALL",
	"SORT (SUBJECT DATE) UTF-8 ALL", "SORT (FROM REVERSE DATE) UTF-8 ALL", "SORT (TO CC SIZE) UTF-8 ALL",
	"SORT (SUBJECT REVERSE ARRIVAL) UTF-8 UNSEEN", "SORT (DATE) UTF-8 1:100",
	"SORT (SIZE) UTF-8 SUBJECT budget", "UID SORT (DATE SUBJECT) UTF-8 ALL",
	"THREAD REFERENCES UTF-8 ALL", "THREAD ORDEREDSUBJECT UTF-8 ALL", "UID THREAD REFERENCES UTF-8 ALL",
	"THREAD REFERENCES UTF-8 1:150", "THREAD REFERENCES UTF-8 120:160", "THREAD ORDEREDSUBJECT US-ASCII 100:200",
	"SORT RETURN (MIN MAX COUNT) (DATE) UTF-8 ALL", "UID SORT RETURN (ALL) (SUBJECT) UTF-8 ALL",
	"SORT RETURN () (SIZE) UTF-8 ALL",
	"SORT RETURN (PARTIAL 1:10) (DATE) UTF-8 ALL", "UID SEARCH RETURN (PARTIAL 5:20) SUBJECT re",
	"SORT (REVERSE CC) UTF-8 ALL", "SORT (REVERSE DISPLAYFROM) UTF-8 ALL", "SORT (REVERSE TO REVERSE SUBJECT) UTF-8 ALL",
	"SORT (DISPLAYTO ARRIVAL) UTF-8 SEEN", "UID SORT RETURN (MIN MAX) (SUBJECT) UTF-8 ALL",
	"SORT (SUBJECT) UTF-8 HEADER Subject agenda", "THREAD REFERENCES UTF-8 UNSEEN", "UID THREAD ORDEREDSUBJECT UTF-8 SEEN",
	"THREAD REFERENCES UTF-8 NOT SUBJECT re", "SORT (DATE) UTF-8 SENTBEFORE 3-Jan-2024",
}

func TestSortCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "sort")
	if *genSortCorpus {
		os.MkdirAll(dir, 0o755)
		for i, m := range sortCorpus() {
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%03d.eml", i)), m, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.eml"))
	sort.Strings(files)
	if len(files) < 200 {
		t.Fatalf("sort corpus has %d messages, want at least 200 (generate with -gensort)", len(files))
	}
	// The committed corpus is what the generator makes.
	for i, m := range sortCorpus() {
		if i < len(files) && !bytes.Equal(readFile(t, files[i]), m) {
			t.Fatalf("%s differs from the generator's output; rerun with -gensort", files[i])
		}
	}

	e := startServer(t)
	mbox := e.mailbox(t)
	if err := mbox.Create("sortcorpus"); err != nil {
		t.Fatal(err)
	}
	folder, err := mbox.Folder("sortcorpus")
	if err != nil {
		t.Fatal(err)
	}
	var dove *rawIMAP
	var d *peer.Dovecot
	if bin := peer.DovecotBinary(); bin != "" {
		d = peer.StartDovecot(t, bin)
	} else if *updateSort {
		t.Fatal("-updatesort needs Dovecot")
	}
	for i, f := range files {
		content := readFile(t, f)
		p := filepath.Join(folder.Dir(), "cur", sortCorpusFile(i))
		if err := os.WriteFile(p, content, 0o600); err != nil {
			t.Fatal(err)
		}
		os.Chtimes(p, sortCorpusTime(i), sortCorpusTime(i))
		if d != nil {
			addDovecotFolder(t, d, "sortcorpus", sortCorpusFile(i), content)
			dp := filepath.Join(d.Maildir, ".sortcorpus", "cur", sortCorpusFile(i))
			os.Chtimes(dp, sortCorpusTime(i), sortCorpusTime(i))
		}
	}
	tern := dialRawIMAP(t, e.addr)
	tern.cmd("LOGIN demo demo")
	tern.cmd("SELECT sortcorpus")
	if d != nil {
		dove = dialRawIMAP(t, d.Addr)
		dove.cmd("LOGIN " + peer.DovecotUser + " " + peer.DovecotPassword)
		dove.cmd("SELECT sortcorpus")
		// Both servers must number the files alike.
		if a, b := corpusOrder(t, tern), corpusOrder(t, dove); a != b {
			t.Fatalf("message order differs:\ntern    %s\ndovecot %s", a, b)
		}
		// Some messages seen, for UNSEEN.
		tern.cmd("STORE 1:40 +FLAGS.SILENT (\\Seen)")
		dove.cmd("STORE 1:40 +FLAGS.SILENT (\\Seen)")
	} else {
		tern.cmd("STORE 1:40 +FLAGS.SILENT (\\Seen)")
		t.Log("dovecot is not installed: comparing with the committed answers only")
	}

	goldenPath := filepath.Join(dir, "answers.golden")
	var want map[string]string
	if dove != nil {
		want = map[string]string{}
		var golden bytes.Buffer
		for _, c := range sortCommands {
			want[c] = sortAnswer(t, dove, c)
			fmt.Fprintf(&golden, "%s\t%s\n", c, want[c])
		}
		if *updateSort {
			if err := os.WriteFile(goldenPath, golden.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		} else if stored := readFile(t, goldenPath); !bytes.Equal(stored, golden.Bytes()) {
			t.Errorf("%s is not what Dovecot answers now; rerun with -updatesort", goldenPath)
		}
	} else {
		want = map[string]string{}
		for _, line := range strings.Split(strings.TrimSpace(string(readFile(t, goldenPath))), "\n") {
			c, a, _ := strings.Cut(line, "\t")
			want[c] = a
		}
	}
	failed := 0
	for _, c := range sortCommands {
		got := sortAnswer(t, tern, c)
		if got != want[c] {
			failed++
			t.Errorf("%s:\ntern    %s\ndovecot %s", c, got, want[c])
		}
	}
	t.Logf("%d of %d SORT/THREAD commands agree with Dovecot over %d messages", len(sortCommands)-failed, len(sortCommands), len(files))
}

var corpusRE = regexp.MustCompile(`X-Corpus: (\d+)`)

func corpusOrder(t *testing.T, c *rawIMAP) string {
	t.Helper()
	var ids []string
	for _, r := range c.cmd("FETCH 1:* BODY.PEEK[HEADER.FIELDS (X-CORPUS)]") {
		if m := corpusRE.FindSubmatch(r); m != nil {
			ids = append(ids, string(m[1]))
		}
	}
	return strings.Join(ids, " ")
}

// sortAnswer runs a command and returns its SORT, THREAD or ESEARCH
// response without the tag that varies between connections.
func sortAnswer(t *testing.T, c *rawIMAP, cmd string) string {
	t.Helper()
	var out []string
	for _, r := range c.cmd("%s", cmd) {
		line := strings.TrimRight(string(r), "\r\n")
		if strings.HasPrefix(line, "* SORT") || strings.HasPrefix(line, "* THREAD") || strings.HasPrefix(line, "* ESEARCH") {
			line = regexp.MustCompile(`\(TAG "[^"]*"\) ?`).ReplaceAllString(line, "")
			out = append(out, strings.TrimRight(line, " "))
		}
	}
	return strings.Join(out, "\n")
}

// SORT, THREAD and their return options on the wire, over every
// transport: the normal answers on a small mailbox, the error paths, and
// an empty mailbox.
func TestSortWire(t *testing.T) {
	e := startServer(t, noDelay)
	mbox := e.mailbox(t)
	if err := mbox.Create("Empty"); err != nil {
		t.Fatal(err)
	}
	msg := func(subject, date, id, refs string, body string) string {
		return "From: X <x@example.test>\r\nSubject: " + subject + "\r\nDate: " + date +
			"\r\nMessage-ID: <" + id + ">\r\n" + refs + "\r\n" + body
	}
	e.deliver(t, "INBOX", msg("Zulu", "Mon, 01 Jan 2024 10:00:00 +0000", "a@t", "", "short\r\n"))
	e.deliver(t, "INBOX", msg("Re: alpha", "Sun, 31 Dec 2023 10:00:00 +0000", "b@t", "In-Reply-To: <c@t>\r\n", "longer body\r\n"))
	e.deliver(t, "INBOX", msg("alpha", "not a date", "c@t", "", "the longest body of all, by far, really, truly, honestly, no kidding\r\n"))
	eachTransport(t, e, func(t *testing.T, w *wireConn) {
		w.login()
		if out := w.ok("C", "CAPABILITY"); !strings.Contains(out[0], " SORT ") ||
			!strings.Contains(out[0], " THREAD=REFERENCES") || !strings.Contains(out[0], " ESORT") || !strings.Contains(out[0], " PARTIAL") {
			t.Fatalf("capabilities: %q", out)
		}
		w.ok("S", "SELECT Empty")
		for cmd, want := range map[string]string{
			"SORT (DATE) UTF-8 ALL":                "* SORT\r\n",
			"THREAD REFERENCES UTF-8 ALL":          "* THREAD\r\n",
			"SORT RETURN (COUNT) (DATE) UTF-8 ALL": "* ESEARCH (TAG \"E\") COUNT 0\r\n",
		} {
			if out := w.ok("E", cmd); len(out) != 2 || out[0] != want {
				t.Fatalf("%s on an empty mailbox: %q", cmd, out)
			}
		}
		w.ok("S", "SELECT INBOX")
		for _, c := range []struct{ cmd, want string }{
			// "not a date" is the internal date, which is now.
			{"SORT (DATE) UTF-8 ALL", "* SORT 2 1 3\r\n"},
			{"SORT (SUBJECT) US-ASCII ALL", "* SORT 2 3 1\r\n"},
			{"SORT (REVERSE SIZE) UTF-8 ALL", "* SORT 3 2 1\r\n"},
			{"UID SORT (SUBJECT REVERSE DATE) UTF-8 NOT SUBJECT zulu", "* SORT 3 2\r\n"},
			{"THREAD REFERENCES UTF-8 ALL", "* THREAD (1)(3 2)\r\n"},
			{"THREAD ORDEREDSUBJECT UTF-8 ALL", "* THREAD (2 3)(1)\r\n"},
			{"SORT RETURN (MIN MAX ALL) (SUBJECT) UTF-8 ALL", "* ESEARCH (TAG \"E\") MIN 2 MAX 1 ALL 2:3,1\r\n"},
			{"SORT RETURN (PARTIAL -1:-2) (SUBJECT) UTF-8 ALL", "* ESEARCH (TAG \"E\") PARTIAL (-1:-2 3,1)\r\n"},
			{"SORT RETURN (PARTIAL 5:9 COUNT) (SUBJECT) UTF-8 ALL", "* ESEARCH (TAG \"E\") COUNT 3 PARTIAL (5:9 NIL)\r\n"},
			{"UID SEARCH RETURN (PARTIAL 2:1) ALL", "* ESEARCH (TAG \"E\") UID PARTIAL (1:2 1:2)\r\n"},
			{"SEARCH RETURN (PARTIAL -1:-1) ALL", "* ESEARCH (TAG \"E\") PARTIAL (-1:-1 3)\r\n"},
		} {
			if out := w.ok("E", c.cmd); len(out) != 2 || out[0] != c.want {
				t.Errorf("%s: %q, want %q", c.cmd, out, c.want)
			}
		}
		// RFC 7162 3.1.5: a search by mod-sequence says the highest.
		if out := w.ok("E", "SEARCH RETURN (PARTIAL 1:1) MODSEQ 1"); !slices.ContainsFunc(out, func(l string) bool {
			return strings.HasPrefix(l, `* ESEARCH (TAG "E") PARTIAL (1:1 1) MODSEQ `)
		}) {
			t.Errorf("PARTIAL with MODSEQ: %q", out)
		}
		for _, c := range []struct{ cmd, want string }{
			{"SORT (BOGUS) UTF-8 ALL", "E BAD"},
			{"SORT () UTF-8 ALL", "E BAD"},
			{"SORT (DATE) ALL", "E BAD"},
			{"SORT (DATE) UTF-8", "E BAD"},
			{"SORT (REVERSE) UTF-8 ALL", "E BAD"},
			{"SORT (DATE) KOI8-R ALL", "E NO [BADCHARSET"},
			{"THREAD REFERENCES X-UNKNOWN ALL", "E NO [BADCHARSET"},
			{"THREAD FROBNICATE UTF-8 ALL", "E BAD"},
			{"THREAD REFERENCES UTF-8 FROBNICATE", "E BAD"},
			{"SORT RETURN (ALL PARTIAL 1:5) (DATE) UTF-8 ALL", "E BAD"},
			{"SORT RETURN (PARTIAL 0:5) (DATE) UTF-8 ALL", "E BAD"},
			{"SEARCH RETURN (PARTIAL -1:5) ALL", "E BAD"},
			{"SORT RETURN (SAVE) (DATE) UTF-8 ALL", "E BAD"},
		} {
			w.send("E " + c.cmd)
			out := w.until("E")
			if !strings.HasPrefix(out[len(out)-1], c.want) {
				t.Errorf("%s: %q, want %s", c.cmd, out, c.want)
			}
		}
		w.ok("U", "UNSELECT")
		w.send("E SORT (DATE) UTF-8 ALL")
		if out := w.until("E"); !strings.HasPrefix(out[len(out)-1], "E BAD") {
			t.Errorf("SORT outside the selected state: %q", out)
		}
	})
}

// RFC 5256 2.1, rule by rule.
func TestBaseSubject(t *testing.T) {
	for _, c := range []struct {
		in, want string
		reply    bool
	}{
		{"Hello", "HELLO", false},
		{"Re: hello", "HELLO", true},
		{"RE: re:  Fwd: hello", "HELLO", true},
		{"Fw: hello", "HELLO", true},
		{"re:hello", "HELLO", true},
		{"Re[2]: hello", "HELLO", true},
		{"hello (fwd)", "HELLO", true},
		{"hello (fwd) (FWD)  ", "HELLO", true},
		{"[fwd: hello]", "HELLO", true},
		{"[fwd: Re: hello] (fwd)", "HELLO", true},
		{"[list] hello", "HELLO", false},
		{"[list] Re: hello", "HELLO", true},
		{"[a][b] Re: hello", "HELLO", true},
		{"[blob]", "[BLOB]", false},
		{"[blob] ", "[BLOB]", false},
		{"  tabs\tand   spaces ", "TABS AND SPACES", false},
		{"Reply", "REPLY", false},
		{"Re :hello", "HELLO", true},
		{"Re- hello", "RE- HELLO", false},
		{"élève", "E\u0301LE\u0300VE", false},
		{"", "", false},
	} {
		got, reply := baseSubject(c.in)
		if got != c.want || reply != c.reply {
			t.Errorf("baseSubject(%q) = %q, %v; want %q, %v", c.in, got, reply, c.want, c.reply)
		}
	}
}

// CONTEXT=SEARCH and CONTEXT=SORT (RFC 5267 4): an updating SEARCH and
// SORT follow flag changes, a delivery by another process and expunges,
// REMOVEFROM comes before the EXPUNGE, CANCELUPDATE ends the updates, and
// imapd.max_search_contexts is NO [LIMIT].
func TestSearchContextWire(t *testing.T) {
	e := startServer(t, noDelay, func(c *config.Config) { c.IMAPD.MaxSearchContexts = 2 })
	eachTransport(t, e, func(t *testing.T, w *wireConn) {
		box := "ctx-" + strings.ReplaceAll(t.Name(), "/", "-")
		if err := e.mailbox(t).Create(box); err != nil {
			t.Fatal(err)
		}
		for _, s := range []string{"d", "b", "c", "a"} {
			e.deliver(t, box, testMessage(s, s+"\r\n"))
		}
		w.login()
		w.ok("S", "SELECT "+box)
		if out := w.ok("A", "SEARCH RETURN (UPDATE) SEEN"); out[0] != "* ESEARCH (TAG \"A\")\r\n" {
			t.Fatalf("SEARCH RETURN (UPDATE): %q", out)
		}
		if out := w.ok("B", "UID SORT RETURN (UPDATE ALL) (SUBJECT) UTF-8 SEEN"); out[0] != "* ESEARCH (TAG \"B\") UID\r\n" {
			t.Fatalf("SORT RETURN (UPDATE ALL): %q", out)
		}
		w.send("C SEARCH RETURN (UPDATE) ALL")
		if out := w.until("C"); !strings.HasPrefix(out[len(out)-1], "C NO [LIMIT]") {
			t.Fatalf("third context: %q", out)
		}
		want := func(out []string, lines ...string) {
			t.Helper()
			for _, l := range lines {
				if !slices.Contains(out, l+"\r\n") {
					t.Fatalf("missing %q in %q", l, out)
				}
			}
		}
		out := w.ok("F", "STORE 1,3 +FLAGS.SILENT (\\Seen)")
		want(out, `* ESEARCH (TAG "A") ADDTO (0 1,3)`, `* ESEARCH (TAG "B") UID ADDTO (1 3 2 1)`)
		// A message delivered by another process, seen already.
		m := e.mailbox(t)
		if _, _, err := m.Deliver(box, strings.NewReader(testMessage("a2", "x\r\n")), []string{"\\Seen"}); err != nil {
			t.Fatal(err)
		}
		out = w.ok("N", "NOOP")
		want(out, "* 5 EXISTS", `* ESEARCH (TAG "A") ADDTO (0 5)`, `* ESEARCH (TAG "B") UID ADDTO (1 5)`)
		out = w.ok("F", "STORE 1 -FLAGS.SILENT (\\Seen)")
		want(out, `* ESEARCH (TAG "A") REMOVEFROM (0 1)`, `* ESEARCH (TAG "B") UID REMOVEFROM (3 1)`)
		w.ok("F", "STORE 3 +FLAGS.SILENT (\\Deleted)")
		out = w.ok("X", "EXPUNGE")
		want(out, "* 3 EXPUNGE", `* ESEARCH (TAG "A") REMOVEFROM (0 3)`, `* ESEARCH (TAG "B") UID REMOVEFROM (2 3)`)
		if slices.Index(out, `* ESEARCH (TAG "A") REMOVEFROM (0 3)`+"\r\n") > slices.Index(out, "* 3 EXPUNGE\r\n") {
			t.Errorf("REMOVEFROM after the EXPUNGE: %q", out)
		}
		// During IDLE the updates come as the mailbox changes.
		w.send("I IDLE")
		if l := w.line(); !strings.HasPrefix(l, "+") {
			t.Fatalf("IDLE: %q", l)
		}
		if _, _, err := m.Deliver(box, strings.NewReader(testMessage("a3", "x\r\n")), []string{"\\Seen"}); err != nil {
			t.Fatal(err)
		}
		for {
			l := w.line()
			if l == `* ESEARCH (TAG "A") ADDTO (0 5)`+"\r\n" {
				break
			}
			if !strings.HasPrefix(l, "* ") || strings.Contains(l, "ESEARCH") {
				t.Fatalf("during IDLE: %q", l)
			}
		}
		w.send("DONE")
		w.until("I")
		w.ok("U", `CANCELUPDATE "A" "B"`)
		out = w.ok("F", "STORE 1:* +FLAGS.SILENT (\\Seen)")
		for _, l := range out {
			if strings.Contains(l, "ESEARCH") {
				t.Fatalf("update after CANCELUPDATE: %q", out)
			}
		}
		w.send(`U CANCELUPDATE "A"`)
		if out := w.until("U"); !strings.HasPrefix(out[len(out)-1], "U BAD") {
			t.Fatalf("CANCELUPDATE of an unknown tag: %q", out)
		}
	})
}

// Whatever the Message-IDs, References and subjects (loops, duplicates,
// self-references), THREAD ends, and every message is in the result once.
func FuzzThread(f *testing.F) {
	f.Add([]byte("abcabc\x00ba\x01cb"), "Re: x")
	f.Add([]byte("aaaa"), "")
	f.Fuzz(func(t *testing.T, b []byte, subject string) {
		var msgs []sortMsg
		for i := 0; i+1 < len(b) && len(msgs) < 64; i += 2 {
			info := &sortInfo{messageID: string(rune('a' + b[i]%6))}
			for _, r := range b[i+1 : min(i+4, len(b))] {
				info.references = append(info.references, string(rune('a'+r%7)))
			}
			info.subject, info.replyOrFwd = baseSubject(subject[:min(len(subject), int(b[i+1])%8)])
			msgs = append(msgs, sortMsg{seq: uint32(len(msgs) + 1), uid: uint32(len(msgs) + 1), info: info,
				sent: time.Unix(int64(b[i]%4), 0)})
		}
		for _, alg := range []string{"REFERENCES", "ORDEREDSUBJECT"} {
			var roots []*threadNode
			if alg == "REFERENCES" {
				roots = references(append([]sortMsg(nil), msgs...))
			} else {
				roots = orderedSubject(append([]sortMsg(nil), msgs...))
			}
			seen := map[uint32]int{}
			var walk func(n *threadNode, depth int)
			walk = func(n *threadNode, depth int) {
				if depth > 200 {
					t.Fatalf("%s: a loop in the tree", alg)
				}
				if n.msg != nil {
					seen[n.msg.seq]++
				}
				for _, c := range n.children {
					walk(c, depth+1)
				}
			}
			for _, r := range roots {
				walk(r, 0)
			}
			for _, m := range msgs {
				if seen[m.seq] != 1 {
					t.Fatalf("%s: message %d appears %d times", alg, m.seq, seen[m.seq])
				}
			}
		}
	})
}

// A warm SORT or THREAD reads no message file: with every file rewritten
// behind the store's back (same name, size and time, other subjects and
// references), the answers stay those of the cached headers.
func TestSortWarmReadsNoFiles(t *testing.T) {
	e := startServer(t, noDelay)
	const n = 30
	for i := 0; i < n; i++ {
		e.deliver(t, "INBOX", fmt.Sprintf("Subject: s%02d\r\nMessage-ID: <m%02d@x>\r\nReferences: <m%02d@x>\r\n"+
			"Date: Mon, 01 Jan 2024 10:%02d:00 +0000\r\n\r\nbody\r\n", i, i, i/2, 59-i))
	}
	w := transports[0].dial(t, e)
	w.login()
	w.ok("S", "SELECT INBOX")
	cmds := []string{"SORT (SUBJECT) UTF-8 ALL", "SORT (DATE) UTF-8 ALL", "THREAD REFERENCES UTF-8 ALL",
		"THREAD ORDEREDSUBJECT UTF-8 ALL", "SORT (SIZE FROM) UTF-8 ALL"}
	cold := map[string]string{}
	for _, c := range cmds {
		cold[c] = w.ok("A", c)[0]
	}
	folder, err := e.mailbox(t).Folder("INBOX")
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(folder.Dir(), "*", "*"))
	rewritten := 0
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil || !bytes.HasPrefix(b, []byte("Subject: s")) {
			continue
		}
		st, _ := os.Stat(p)
		// s07 becomes s92, m07 m92, minute 52 becomes 07: every order changes.
		b = regexp.MustCompile(`\d\d`).ReplaceAllFunc(b, func(d []byte) []byte {
			return []byte(fmt.Sprintf("%02d", 99-(int(d[0]-'0')*10+int(d[1]-'0'))))
		})
		if err := os.WriteFile(p, b, st.Mode()); err != nil {
			t.Fatal(err)
		}
		os.Chtimes(p, st.ModTime(), st.ModTime())
		rewritten++
	}
	if rewritten != n {
		t.Fatalf("rewrote %d files, want %d", rewritten, n)
	}
	for _, c := range cmds {
		if got := w.ok("A", c)[0]; got != cold[c] {
			t.Errorf("%s read the files again:\nwarm %s\ncold %s", c, got, cold[c])
		}
	}
	// A new session of the same process shares the cache.
	w2 := transports[0].dial(t, e)
	w2.login()
	w2.ok("S", "EXAMINE INBOX")
	if got := w2.ok("A", cmds[0])[0]; got != cold[cmds[0]] {
		t.Errorf("another session read the files again: %s", got)
	}
}

// SORT and THREAD through Python's imaplib (its sort() and thread()),
// a client written independently of go-imap.
func TestPythonImaplibSortThread(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed (Debian package python3)")
	}
	e := startServer(t)
	e.deliver(t, "INBOX", "Subject: b\r\nMessage-ID: <1@x>\r\nDate: Mon, 01 Jan 2024 10:00:00 +0000\r\n\r\nx\r\n")
	e.deliver(t, "INBOX", "Subject: Re: b\r\nMessage-ID: <2@x>\r\nIn-Reply-To: <1@x>\r\nDate: Mon, 01 Jan 2024 09:00:00 +0000\r\n\r\nx\r\n")
	e.deliver(t, "INBOX", "Subject: a\r\nMessage-ID: <3@x>\r\nDate: Mon, 01 Jan 2024 11:00:00 +0000\r\n\r\nx\r\n")
	script := `
import imaplib, sys
host, port = sys.argv[1].rsplit(":", 1)
M = imaplib.IMAP4(host, int(port))
M.login("demo", "demo")
typ, caps = M.capability(); assert b" SORT " in caps[0] and b"THREAD=REFERENCES" in caps[0], caps
M.select("INBOX")
typ, data = M.sort("(SUBJECT)", "UTF-8", "ALL"); assert typ == "OK" and data == [b"3 1 2"], data
typ, data = M.sort("(REVERSE DATE)", "UTF-8", "ALL"); assert typ == "OK" and data == [b"3 1 2"], data
typ, data = M.uid("SORT", "(DATE)", "UTF-8", "ALL"); assert typ == "OK" and data == [b"2 1 3"], data
typ, data = M.thread("REFERENCES", "UTF-8", "ALL"); assert typ == "OK" and data == [b"(1 2)(3)"], data
typ, data = M.thread("ORDEREDSUBJECT", "UTF-8", "ALL"); assert typ == "OK" and data == [b"(2 1)(3)"], data
typ, data = M.sort("(DATE)", "KOI8-R", "ALL"); assert typ == "NO" and b"BADCHARSET" in data[0], (typ, data)
try:
    M.sort("(BOGUS)", "UTF-8", "ALL"); assert False
except imaplib.IMAP4.error as e:
    assert "BAD" in str(e) or "sort key" in str(e), e
print("ok")
`
	out, err := exec.Command(py, "-c", script, e.addr).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("imaplib: %v\n%s", err, out)
	}
}

// The sort key cache stays within its budget by dropping the folder used
// least recently, and forgets a folder whose UIDVALIDITY changed.
func TestSortKeyCache(t *testing.T) {
	c := newSortKeyCache(1000 + folderKeysCost + 1)
	h := func() *searchHeader { return &searchHeader{size: 100} }
	a := c.folder("a", 1)
	for uid := uint32(1); uid <= 6; uid++ {
		c.put(a, uid, h())
	}
	b := c.folder("b", 1)
	for uid := uint32(1); uid <= 6; uid++ {
		c.put(b, uid, h())
	}
	if c.used > c.max || c.folders["a"] != nil || c.get(b, 6) == nil {
		t.Fatalf("used %d, folders %v", c.used, c.folders)
	}
	// One folder bigger than the cache keeps what fits.
	for uid := uint32(7); uid <= 20; uid++ {
		c.put(b, uid, h())
	}
	if c.used > c.max || len(b.byUID) != 10 {
		t.Fatalf("used %d, %d entries", c.used, len(b.byUID))
	}
	if b2 := c.folder("b", 2); len(b2.byUID) != 0 || c.used != b2.used {
		t.Fatalf("new UIDVALIDITY kept %d entries, used %d", len(b2.byUID), c.used)
	}
	// Many folders sorted once stay within the budget.
	for i := 0; i < 100; i++ {
		c.folder(fmt.Sprintf("f%d", i), 1)
	}
	if c.used > c.max || len(c.folders) > 4 {
		t.Fatalf("used %d, %d folders", c.used, len(c.folders))
	}
}
