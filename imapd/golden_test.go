package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"tern/test/peer"
)

var updateGolden = flag.Bool("update", false, "rewrite testdata/mime/*.golden from a real Dovecot's answers")

// The MIME corpus under testdata/mime holds real-world message shapes
// (clients' typical structures, charsets, malformed MIME, reports). Each
// NAME.eml has a NAME.golden with what Dovecot 2.3 answers for it when the
// file lies in a Maildir; tern must answer the same, field by field.
//
// When Dovecot is installed the test starts it on the same files and also
// checks that the golden answers are still Dovecot's (go test -run
// TestGoldenMIME -update rewrites them); without Dovecot it compares with
// the committed answers.

// goldenMeta are the items compared for every message; the body sections
// come from the reference BODYSTRUCTURE (see sectionsOf).
const goldenMeta = "BODYSTRUCTURE ENVELOPE BODY RFC822.SIZE"

// goldenHashOver is the size above which a section is compared (and
// stored) as its SHA-256, to keep the golden files readable.
const goldenHashOver = 1024

// deliberateDifferences are the places where tern answers differently
// from Dovecot on purpose, keyed by "file item path", with the reason.
var deliberateDifferences = map[string]string{
	// imap.Envelope holds the date as a time.Time, so imapserver writes it
	// in RFC 5322 form; the header's own spelling (a comment, a day
	// without its zero) is not kept. RFC 3501 7.4.2 leaves the string to
	// the client to parse either way.
	"02-plain-crlf ENVELOPE[0]":     "date as parsed",
	"35-address-groups ENVELOPE[0]": "date as parsed",
	// imapserver writes "<" + id + ">": a comment after the id is lost.
	"35-address-groups ENVELOPE[9]": "message id without its comment",
	// Raw UTF-8 in a header (RFC 6532) may not go into an IMAP4rev1
	// quoted string (RFC 3501 9: no 8-bit in quoted), so imapserver
	// sends it as RFC 2047 words, which every client decodes.
	"32-utf8-headers ENVELOPE[1]":       "8-bit subject as RFC 2047",
	"32-utf8-headers ENVELOPE[2][0][0]": "8-bit name as RFC 2047",
	"32-utf8-headers ENVELOPE[3][0][0]": "8-bit name as RFC 2047",
	"32-utf8-headers ENVELOPE[4][0][0]": "8-bit name as RFC 2047",
	"32-utf8-headers ENVELOPE[5][0][0]": "8-bit name as RFC 2047",
	// imap.BodyStructureSinglePartExt has no MD5 field; body-fld-md5 is
	// NIL (RFC 3501 7.4.2 makes it optional extension data).
	"33-disposition-language BODYSTRUCTURE[0][8]": "no Content-MD5",
	// imapserver lower-cases the transfer encoding (some clients break on
	// upper case); RFC 2045 6.1 makes its value case-insensitive.
	"36-mixed-case-headers BODYSTRUCTURE[0][5]": "encoding in lower case",
	"36-mixed-case-headers BODYSTRUCTURE[1][5]": "encoding in lower case",
	"36-mixed-case-headers BODY[0][5]":          "encoding in lower case",
	"36-mixed-case-headers BODY[1][5]":          "encoding in lower case",
}

// normalizeParams sorts, in both answers, every list that is made of
// attribute/value string pairs. imapserver holds parameters in a map and
// writes them sorted by name, Dovecot in the order of the header; RFC
// 2045 5.1 gives the order no meaning.
func normalizeParams(n imapNode) imapNode {
	if n.kind != nodeList {
		return n
	}
	out := imapNode{kind: nodeList, list: make([]imapNode, len(n.list))}
	for i, c := range n.list {
		out.list[i] = normalizeParams(c)
	}
	if len(n.list) < 4 || len(n.list)%2 != 0 {
		return out
	}
	for _, c := range n.list {
		if c.kind != nodeString {
			return out
		}
	}
	pairs := make([][2]imapNode, len(n.list)/2)
	for i := range pairs {
		pairs[i] = [2]imapNode{n.list[2*i], n.list[2*i+1]}
	}
	sort.SliceStable(pairs, func(i, j int) bool {
		return strings.ToLower(pairs[i][0].text) < strings.ToLower(pairs[j][0].text)
	})
	for i, p := range pairs {
		out.list[2*i], out.list[2*i+1] = p[0], p[1]
	}
	return out
}

// goldenItem is one FETCH data item: its name as sent ("BODY[1.MIME]")
// and its value.
type goldenItem struct {
	name  string
	value imapNode
}

func TestGoldenMIME(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "mime", "*.eml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 30 {
		t.Fatalf("MIME corpus has %d messages, want at least 30", len(files))
	}

	var dove *rawIMAP
	if bin := peer.DovecotBinary(); bin != "" {
		d := peer.StartDovecot(t, bin)
		for i, f := range files {
			addDovecotFolder(t, d, goldenFolder(f), goldenFileName(i), readFile(t, f))
		}
		dove = dialRawIMAP(t, d.Addr)
		dove.cmd("LOGIN " + peer.DovecotUser + " " + peer.DovecotPassword)
	} else if *updateGolden {
		t.Fatal("-update needs Dovecot (apt-get install dovecot-imapd)")
	} else {
		t.Log("dovecot is not installed: comparing with the committed golden answers only")
	}

	e := startServer(t)
	mbox := e.mailbox(t)
	for i, f := range files {
		name := goldenFolder(f)
		if err := mbox.Create(name); err != nil {
			t.Fatal(err)
		}
		folder, err := mbox.Folder(name)
		if err != nil {
			t.Fatal(err)
		}
		// The file goes into cur/ as an outside program (or Dovecot)
		// leaves it, byte for byte.
		if err := os.WriteFile(filepath.Join(folder.Dir(), "cur", goldenFileName(i)), readFile(t, f), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tern := dialRawIMAP(t, e.addr)
	tern.cmd("LOGIN demo demo")

	total := 0
	for _, f := range files {
		base := strings.TrimSuffix(filepath.Base(f), ".eml")
		goldenPath := strings.TrimSuffix(f, ".eml") + ".golden"
		t.Run(base, func(t *testing.T) {
			var want []goldenItem
			if dove != nil {
				want = fetchGolden(t, dove, goldenFolder(f), nil)
				if *updateGolden {
					writeGolden(t, goldenPath, want)
				} else if stored := readGolden(t, goldenPath); len(compareGolden(base, stored, want)) > 0 {
					t.Errorf("%s is not what Dovecot answers now; rerun with -update:\n%s",
						goldenPath, strings.Join(compareGolden(base, stored, want), "\n"))
				}
			} else {
				want = readGolden(t, goldenPath)
			}
			var sections []string
			for _, it := range want {
				if strings.HasPrefix(it.name, "BODY[") {
					sections = append(sections, it.name)
				}
			}
			got := fetchGolden(t, tern, goldenFolder(f), sections)
			diffs := compareGolden(base, got, want)
			total += len(diffs)
			for _, d := range diffs {
				t.Error(d)
			}
		})
	}
	if total > 0 {
		t.Logf("%d fields differ from Dovecot", total)
	}
}

func goldenFolder(file string) string {
	return "golden-" + strings.TrimSuffix(filepath.Base(file), ".eml")
}

func goldenFileName(i int) string {
	return fmt.Sprintf("17120000%02d.M%dP1.golden:2,", i, i)
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fetchGolden selects folder and fetches its one message's items: the
// meta items and the given body sections, or, when sections is nil, the
// sections that sectionsOf finds in the BODYSTRUCTURE.
func fetchGolden(t *testing.T, c *rawIMAP, folder string, sections []string) []goldenItem {
	t.Helper()
	c.cmd("EXAMINE %s", folder)
	meta := c.fetchItems(1, goldenMeta)
	var items []goldenItem
	for _, name := range strings.Fields(goldenMeta) {
		v, ok := meta[name]
		if !ok {
			t.Fatalf("FETCH %s: no %s in the answer", folder, name)
		}
		items = append(items, goldenItem{name, v})
	}
	if sections == nil {
		sections = sectionsOf(meta["BODYSTRUCTURE"])
	}
	var peek []string
	for _, s := range sections {
		peek = append(peek, "BODY.PEEK"+strings.TrimPrefix(s, "BODY"))
	}
	data := c.fetchItems(1, strings.Join(peek, " "))
	for _, s := range sections {
		v, ok := data[itemKey(s)]
		if !ok {
			t.Fatalf("FETCH %s: no %s in the answer", folder, s)
		}
		if v.kind == nodeString && len(v.text) > goldenHashOver {
			v.text = fmt.Sprintf("sha256:%x len=%d", sha256.Sum256([]byte(v.text)), len(v.text))
		}
		items = append(items, goldenItem{s, v})
	}
	return items
}

// sectionsOf lists the body sections worth comparing for a message with
// this BODYSTRUCTURE: the whole message, its header and text, a header
// field selection, and for every part its content and MIME header, plus
// HEADER and TEXT of every message/rfc822 part (RFC 3501 6.4.5).
func sectionsOf(bs imapNode) []string {
	out := []string{"BODY[]", "BODY[HEADER]", "BODY[TEXT]", "BODY[HEADER.FIELDS (FROM SUBJECT)]"}
	add := func(path string, isMessage bool) {
		out = append(out, "BODY["+path+"]", "BODY["+path+".MIME]")
		if isMessage {
			out = append(out, "BODY["+path+".HEADER]", "BODY["+path+".TEXT]")
		}
	}
	var walk func(n imapNode, path string, depth int)
	var part func(n imapNode, path string, depth int)
	walk = func(n imapNode, prefix string, depth int) {
		if depth > 8 || n.kind != nodeList {
			return
		}
		for i, c := range n.list {
			if c.kind != nodeList {
				break
			}
			part(c, strings.TrimPrefix(fmt.Sprintf("%s.%d", prefix, i+1), "."), depth+1)
		}
	}
	part = func(n imapNode, path string, depth int) {
		if len(n.list) > 0 && n.list[0].kind == nodeList {
			out = append(out, "BODY["+path+".MIME]")
			walk(n, path, depth)
			return
		}
		isMessage := len(n.list) > 8 && strings.EqualFold(n.list[0].text, "message") &&
			(strings.EqualFold(n.list[1].text, "rfc822") || strings.EqualFold(n.list[1].text, "global")) &&
			n.list[8].kind == nodeList
		add(path, isMessage)
		if isMessage {
			inner := n.list[8]
			if len(inner.list) > 0 && inner.list[0].kind == nodeList {
				walk(inner, path, depth)
			} else {
				add(path+".1", false)
			}
		}
	}
	if len(bs.list) > 0 && bs.list[0].kind == nodeList {
		walk(bs, "", 0)
	} else {
		part(bs, "1", 0)
	}
	return out
}

// compareGolden compares two answers item by item and, inside an item,
// field by field; deliberate differences are left out.
func compareGolden(file string, got, want []goldenItem) []string {
	byName := make(map[string]imapNode, len(got))
	for _, it := range got {
		byName[itemKey(it.name)] = it.value
	}
	var out []string
	for _, w := range want {
		g, ok := byName[itemKey(w.name)]
		if !ok {
			out = append(out, fmt.Sprintf("%s: missing", w.name))
			continue
		}
		if w.name == "BODYSTRUCTURE" || w.name == "BODY" {
			g, w.value = normalizeParams(g), normalizeParams(w.value)
		}
		for _, d := range diffNodes(w.name, g, w.value) {
			path, _, _ := strings.Cut(d, ":")
			if _, ok := deliberateDifferences[file+" "+path]; ok {
				continue
			}
			out = append(out, d)
		}
	}
	return out
}

// A golden file has one item per line: its name, a tab, and its value as
// canonical() writes it.
func writeGolden(t *testing.T, path string, items []goldenItem) {
	t.Helper()
	var b bytes.Buffer
	for _, it := range items {
		fmt.Fprintf(&b, "%s\t%s\n", it.name, it.value.canonical())
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readGolden(t *testing.T, path string) []goldenItem {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("golden answers: %v (generate them with -update where Dovecot is installed)", err)
	}
	defer f.Close()
	var items []goldenItem
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), "\t")
		if !ok {
			t.Fatalf("%s: bad line %q", path, sc.Text())
		}
		n, err := parseCanonical(value)
		if err != nil {
			t.Fatalf("%s: %s: %v", path, name, err)
		}
		items = append(items, goldenItem{name, n})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return items
}
