package maildir

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"tern/test/peer"
)

// A Dovecot Maildir (dovecot-uidlist v3 and dovecot-keywords, as Dovecot
// 2.3 writes them) is imported with the same UIDVALIDITY, UIDs, next UID and
// keywords. The real-Dovecot round trip is TestDovecotInterop.
func TestDovecotImport(t *testing.T) {
	root := filepath.Join(t.TempDir(), "Maildir")
	if err := ensureMaildir(root); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"cur/1700000001.M1P1.host,S=5,W=6:2,Sa":  "one\r\n",
		"cur/1700000002.M2P1.host,S=5,W=6:2,":    "two\r\n",
		"cur/1700000003.M3P1.host,S=7,W=8:2,RFb": "three\r\n",
		"new/1700000004.M4P1.host,S=6,W=7":       "four\r\n",
		"cur/1700000005.M5P1.host:2,T":           "not in uidlist",
		"dovecot-keywords":                       "0 $Label1\n1 project\n",
		"dovecot-uidlist": "3 V1234567 N12 G0f0e0d\n" +
			"3 :1700000001.M1P1.host,S=5,W=6\n" +
			"7 W6 :1700000002.M2P1.host,S=5,W=6\n" +
			"9 G0123 :1700000003.M3P1.host,S=7,W=8\n" +
			"10 :1700000004.M4P1.host,S=6,W=7\n" +
			"11 :1700000099.gone.host\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(root, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	m, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	s := mustSync(t, folder(t, m, "INBOX"))
	checkSnapshot(t, s)
	if s.UIDValidity != 1234567 || s.UIDNext != 13 {
		t.Fatalf("UIDVALIDITY %d UIDNEXT %d, want 1234567 13", s.UIDValidity, s.UIDNext)
	}
	got := map[uint32][]string{}
	for _, msg := range s.Messages {
		got[msg.UID] = msg.Flags
	}
	want := map[uint32][]string{
		3:  {"$Label1", `\Seen`},
		7:  nil,
		9:  {`\Answered`, `\Flagged`, "project"},
		10: nil,
		12: {`\Deleted`},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("imported %v, want %v", got, want)
	}
	// A second process reads tern's index, not the uidlist, with the same result.
	forgetState(root)
	if s2 := mustSync(t, folder(t, m, "INBOX")); !reflect.DeepEqual(uidsOf(s2), uidsOf(s)) || s2.UIDValidity != s.UIDValidity {
		t.Fatalf("reload: %v", uidsOf(s2))
	}
}

// startDovecot starts a private Dovecot on this test's behalf; the test is
// skipped only when the dovecot binary is not installed.
func startDovecot(t *testing.T) *peer.Dovecot {
	t.Helper()
	bin := peer.DovecotBinary()
	if bin == "" {
		t.Skip("dovecot is not installed (apt-get install dovecot-imapd): Dovecot interop not tested")
	}
	return peer.StartDovecot(t, bin)
}

// dovecotClient logs in to d with go-imap's client.
func dovecotClient(t *testing.T, d *peer.Dovecot) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(d.Addr, nil)
	if err != nil {
		t.Fatalf("dial dovecot: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login(peer.DovecotUser, peer.DovecotPassword).Wait(); err != nil {
		t.Fatalf("login: %v", err)
	}
	return c
}

func imapAppend(t *testing.T, c *imapclient.Client, mbox, body string, flags ...imap.Flag) uint32 {
	t.Helper()
	cmd := c.Append(mbox, int64(len(body)), &imap.AppendOptions{Flags: flags})
	cmd.Write([]byte(body))
	if err := cmd.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := cmd.Wait()
	if err != nil {
		t.Fatalf("APPEND to %s: %v", mbox, err)
	}
	return uint32(data.UID)
}

// imapView is what an IMAP client sees of a mailbox: UIDVALIDITY and
// UID -> sorted flags, bodies (BODY[], byte for byte) and RFC822.SIZE.
type imapView struct {
	uidValidity uint32
	flags       map[uint32][]string
	bodies      map[uint32]string
	sizes       map[uint32]int64
}

func fetchView(t *testing.T, c *imapclient.Client, mbox string) imapView {
	t.Helper()
	sel, err := c.Select(mbox, nil).Wait()
	if err != nil {
		t.Fatalf("SELECT %s: %v", mbox, err)
	}
	v := imapView{uidValidity: sel.UIDValidity, flags: map[uint32][]string{}, bodies: map[uint32]string{}, sizes: map[uint32]int64{}}
	if sel.NumMessages == 0 {
		return v
	}
	section := &imap.FetchItemBodySection{Peek: true}
	msgs, err := c.Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}},
		&imap.FetchOptions{UID: true, Flags: true, RFC822Size: true, BodySection: []*imap.FetchItemBodySection{section}}).Collect()
	if err != nil {
		t.Fatalf("FETCH %s: %v", mbox, err)
	}
	for _, m := range msgs {
		var fl []string
		for _, f := range m.Flags {
			if !strings.EqualFold(string(f), `\Recent`) {
				fl = append(fl, string(f))
			}
		}
		sort.Strings(fl)
		v.flags[uint32(m.UID)] = fl
		v.bodies[uint32(m.UID)] = string(m.FindBodySection(section))
		v.sizes[uint32(m.UID)] = m.RFC822Size
	}
	return v
}

func ternView(t *testing.T, m *Mailbox, name string) imapView {
	t.Helper()
	f := folder(t, m, name)
	s := mustSync(t, f)
	checkSnapshot(t, s)
	v := imapView{uidValidity: s.UIDValidity, flags: map[uint32][]string{}, bodies: map[uint32]string{}, sizes: map[uint32]int64{}}
	for _, msg := range s.Messages {
		v.flags[msg.UID] = msg.Flags
		fh, err := f.Open(msg.UID)
		if err != nil {
			t.Fatal(err)
		}
		wr := NewWireReader(fh)
		b, err := io.ReadAll(wr)
		wr.Close()
		fh.Close()
		if err != nil {
			t.Fatal(err)
		}
		v.bodies[msg.UID] = string(b)
		if v.sizes[msg.UID], err = f.WireSize(msg.UID, msg.Key); err != nil {
			t.Fatal(err)
		}
	}
	return v
}

// checkLF fails if a message file in the Maildir at dir has a CRLF: tern
// stores LF line ends, as Dovecot does.
func checkLF(t *testing.T, dir string) {
	t.Helper()
	for _, sub := range []string{"new", "cur"} {
		ents, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			b, err := os.ReadFile(filepath.Join(dir, sub, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(b, []byte("\r\n")) {
				t.Errorf("%s/%s has CRLF line ends: %q", sub, e.Name(), b)
			}
		}
	}
}

func sameView(a, b imapView) bool {
	if a.uidValidity != b.uidValidity || len(a.flags) != len(b.flags) {
		return false
	}
	for uid, fa := range a.flags {
		fb, ok := b.flags[uid]
		if !ok || strings.Join(fa, " ") != strings.Join(fb, " ") || a.bodies[uid] != b.bodies[uid] || a.sizes[uid] != b.sizes[uid] {
			return false
		}
	}
	return true
}

// Acceptance: a Maildir written by a real Dovecot is read by tern with the
// same UIDVALIDITY, UIDs and keywords; a Maildir written by tern is readable
// by Dovecot (messages, flags, keywords, folders, subscriptions).
func TestDovecotInterop(t *testing.T) {
	d := startDovecot(t)
	c := dovecotClient(t, d)

	// Dovecot writes.
	if err := c.Create("Work.Ünïcode", nil).Wait(); err != nil {
		t.Fatalf("CREATE: %v", err)
	}
	if err := c.Subscribe("Work.Ünïcode").Wait(); err != nil {
		t.Fatalf("SUBSCRIBE: %v", err)
	}
	for i := 0; i < 4; i++ {
		imapAppend(t, c, "INBOX", fmt.Sprintf("Subject: dovecot %d\r\n\r\nbody %d\r\n", i, i), imap.FlagSeen, imap.Flag(fmt.Sprintf("kw%d", i%2)))
	}
	imapAppend(t, c, "Work.Ünïcode", "Subject: work\r\n\r\nwork\r\n", imap.FlagFlagged, "$Label1")
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	// Remove UID 2 (non-contiguous UIDs) and change flags of UID 3.
	if err := c.Store(imap.UIDSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Expunge().Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Store(imap.UIDSetNum(3), &imap.StoreFlags{Op: imap.StoreFlagsSet, Silent: true, Flags: []imap.Flag{imap.FlagAnswered, "later"}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	want := fetchView(t, c, "INBOX")
	wantWork := fetchView(t, c, "Work.Ünïcode")
	if err := c.Unselect().Wait(); err != nil {
		t.Fatal(err)
	}

	m, err := Open(d.Maildir)
	if err != nil {
		t.Fatal(err)
	}
	if got := ternView(t, m, "INBOX"); !sameView(got, want) {
		t.Fatalf("tern reads INBOX as\n%+v\nDovecot has\n%+v", got, want)
	}
	if got := ternView(t, m, "Work.Ünïcode"); !sameView(got, wantWork) {
		t.Fatalf("tern reads Work.Ünïcode as\n%+v\nDovecot has\n%+v", got, wantWork)
	}
	// Open subscribed the default folders it created beside Dovecot's.
	if subs, err := m.Subscriptions(); err != nil || !reflect.DeepEqual(subs, []string{"Archive", "Drafts", "Junk", "Sent", "Trash", "Work.Ünïcode"}) {
		t.Fatalf("subscriptions read from Dovecot: %v %v", subs, err)
	}

	// tern writes (Open above created Sent, Drafts...).
	if err := m.Create("Tern.Földer"); err != nil {
		t.Fatal(err)
	}
	tf := folder(t, m, "Tern.Földer")
	for i := 0; i < 3; i++ {
		if _, err := tf.Append(strings.NewReader(fmt.Sprintf("Subject: tern %d\r\n\r\nfrom tern %d\r\n", i, i)),
			[]string{`\Flagged`, "ternkw", fmt.Sprintf("n%d", i)}, time.Date(2021, 5, 6, 7, 8, 9, 0, time.UTC)); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := m.Deliver("Tern.Földer", strings.NewReader("Subject: delivered\r\n\r\nlmtp\r\n"), nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := tf.SetFlags([]uint32{2}, FlagsAdd, []string{`\Seen`, `\Answered`}, 0); err != nil {
		t.Fatal(err)
	}
	if err := m.Subscribe("Tern.Földer"); err != nil {
		t.Fatal(err)
	}
	inboxKey := deliver(t, m, "INBOX", "Subject: new for dovecot\r\n\r\nnew\r\n", `\Draft`, "kw1")
	mustSync(t, folder(t, m, "INBOX"))
	// Both wrote LF files: Dovecot its own, tern the ones it appended
	// and delivered (which Dovecot then serves as the CRLF text sent).
	checkLF(t, d.Maildir)
	checkLF(t, tf.Dir())
	d.ChownTree(t)
	// A new session, as a client connecting after the change would.
	c.Logout().Wait()
	c = dovecotClient(t, d)

	mboxes, err := c.List("", "*", nil).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mb := range mboxes {
		names = append(names, mb.Mailbox)
	}
	sort.Strings(names)
	for _, w := range []string{"Archive", "Drafts", "Junk", "Sent", "Tern", "Tern.Földer", "Trash"} {
		if i := sort.SearchStrings(names, w); i >= len(names) || names[i] != w {
			t.Fatalf("Dovecot does not list %q: %v", w, names)
		}
	}
	lsub, err := c.List("", "*", &imap.ListOptions{SelectSubscribed: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var subs []string
	for _, mb := range lsub {
		subs = append(subs, mb.Mailbox)
	}
	sort.Strings(subs)
	if !reflect.DeepEqual(subs, []string{"Archive", "Drafts", "Junk", "Sent", "Tern.Földer", "Trash", "Work.Ünïcode"}) {
		t.Fatalf("Dovecot reads subscriptions as %v", subs)
	}
	dv := fetchView(t, c, "Tern.Földer")
	tv := ternView(t, m, "Tern.Földer")
	// Dovecot numbers the messages itself; compare by body.
	byBody := func(v imapView) map[string]string {
		out := map[string]string{}
		for uid, b := range v.bodies {
			out[b] = fmt.Sprintf("%s size %d", strings.Join(v.flags[uid], " "), v.sizes[uid])
		}
		return out
	}
	if got, wantB := byBody(dv), byBody(tv); !reflect.DeepEqual(got, wantB) {
		t.Fatalf("Dovecot reads tern's folder as\n%v\ntern has\n%v", got, wantB)
	}
	// INBOX: Dovecot keeps its UIDs for its own messages and sees tern's.
	dvIn := fetchView(t, c, "INBOX")
	for uid, fl := range want.flags {
		if strings.Join(dvIn.flags[uid], " ") != strings.Join(fl, " ") {
			t.Fatalf("Dovecot UID %d now has flags %v, had %v", uid, dvIn.flags[uid], fl)
		}
	}
	found := false
	for uid, b := range dvIn.bodies {
		if strings.Contains(b, "new for dovecot") {
			found = true
			if got := strings.Join(dvIn.flags[uid], " "); got != `\Draft kw1` {
				t.Fatalf("Dovecot reads tern's delivery %s with flags %q", inboxKey, got)
			}
		}
	}
	if !found {
		t.Fatalf("Dovecot does not see tern's delivery into INBOX")
	}
	c.Logout().Wait()
}
