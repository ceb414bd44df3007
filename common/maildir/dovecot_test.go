package maildir

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
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

// dovecotServer is a Dovecot started by a test on 127.0.0.1.
type dovecotServer struct {
	addr     string
	maildir  string
	uid, gid int // owner of the mail files (Dovecot refuses uid 0)
	cmd      *exec.Cmd
	log      string
}

// startDovecot starts Debian's dovecot-imapd with a temporary configuration:
// one passwd-file user, mail_location = maildir:<dir>. It skips the test
// only when the dovecot binary is not installed.
func startDovecot(t *testing.T) *dovecotServer {
	t.Helper()
	bin, err := exec.LookPath("dovecot")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/dovecot"); serr != nil {
			t.Skip("dovecot is not installed (apt-get install dovecot-imapd): Dovecot interop not tested")
		}
		bin = "/usr/sbin/dovecot"
	}
	base := t.TempDir()
	d := &dovecotServer{maildir: filepath.Join(base, "Maildir"), log: filepath.Join(base, "dovecot.log")}
	internal, login := "", ""
	if os.Getuid() == 0 {
		// Dovecot will not run mail or login processes as root.
		mu, err1 := user.Lookup("dovecot")
		_, err2 := user.Lookup("dovenull")
		if err1 != nil || err2 != nil {
			t.Fatalf("dovecot is installed but its users are missing: %v %v", err1, err2)
		}
		d.uid, _ = strconv.Atoi(mu.Uid)
		d.gid, _ = strconv.Atoi(mu.Gid)
		internal, login = "root", "dovenull"
		for p := base; p != "/" && p != os.TempDir(); p = filepath.Dir(p) {
			os.Chmod(p, 0o755)
		}
	} else {
		cu, err := user.Current()
		if err != nil {
			t.Fatal(err)
		}
		d.uid, d.gid = os.Getuid(), os.Getgid()
		internal, login = cu.Username, cu.Username
	}
	for _, dir := range []string{d.maildir, filepath.Join(base, "home")} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		os.Chown(dir, d.uid, d.gid)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	d.addr = fmt.Sprintf("127.0.0.1:%d", port)
	passwd := filepath.Join(base, "passwd")
	os.WriteFile(passwd, []byte("user@example.test:{PLAIN}secret\n"), 0o644)
	conf := fmt.Sprintf(`base_dir = %[1]s/run
state_dir = %[1]s/state
log_path = %[2]s
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:%[3]s
first_valid_uid = 1
default_internal_user = %[4]s
default_internal_group = %[4]s
default_login_user = %[5]s
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = %[6]d
  }
  inet_listener imaps {
    port = 0
  }
  chroot =
}
service anvil {
  chroot =
}
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%%u %[7]s
}
userdb {
  driver = static
  args = uid=%[8]d gid=%[9]d home=%[1]s/home
}
`, base, d.log, d.maildir, internal, login, port, passwd, d.uid, d.gid)
	confPath := filepath.Join(base, "dovecot.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	d.cmd = exec.Command(bin, "-F", "-c", confPath)
	d.cmd.Stderr = os.Stderr
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start dovecot: %v", err)
	}
	t.Cleanup(func() {
		d.cmd.Process.Signal(syscall.SIGTERM)
		d.cmd.Wait()
		if t.Failed() {
			log, _ := os.ReadFile(d.log)
			t.Logf("dovecot log:\n%s", log)
		}
	})
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := net.DialTimeout("tcp", d.addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(d.log)
			t.Fatalf("dovecot did not listen on %s: %v\n%s", d.addr, err, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return d
}

func (d *dovecotServer) client(t *testing.T) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(d.addr, nil)
	if err != nil {
		t.Fatalf("dial dovecot: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login("user@example.test", "secret").Wait(); err != nil {
		t.Fatalf("login: %v", err)
	}
	return c
}

// chownTree hands files tern wrote (as the test's user) to Dovecot's user.
func (d *dovecotServer) chownTree(t *testing.T) {
	t.Helper()
	filepath.Walk(d.maildir, func(p string, _ os.FileInfo, err error) error {
		if err == nil {
			os.Lchown(p, d.uid, d.gid)
		}
		return nil
	})
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
// UID -> sorted flags (and bodies).
type imapView struct {
	uidValidity uint32
	flags       map[uint32][]string
	bodies      map[uint32]string
}

func fetchView(t *testing.T, c *imapclient.Client, mbox string) imapView {
	t.Helper()
	sel, err := c.Select(mbox, nil).Wait()
	if err != nil {
		t.Fatalf("SELECT %s: %v", mbox, err)
	}
	v := imapView{uidValidity: sel.UIDValidity, flags: map[uint32][]string{}, bodies: map[uint32]string{}}
	if sel.NumMessages == 0 {
		return v
	}
	section := &imap.FetchItemBodySection{Peek: true}
	msgs, err := c.Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}},
		&imap.FetchOptions{UID: true, Flags: true, BodySection: []*imap.FetchItemBodySection{section}}).Collect()
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
		v.bodies[uint32(m.UID)] = lf(string(m.FindBodySection(section)))
	}
	return v
}

func ternView(t *testing.T, m *Mailbox, name string) imapView {
	t.Helper()
	f := folder(t, m, name)
	s := mustSync(t, f)
	checkSnapshot(t, s)
	v := imapView{uidValidity: s.UIDValidity, flags: map[uint32][]string{}, bodies: map[uint32]string{}}
	for _, msg := range s.Messages {
		v.flags[msg.UID] = msg.Flags
		v.bodies[msg.UID] = lf(readMsg(t, f, msg.UID))
	}
	return v
}

// lf normalises line ends: Dovecot stores messages with LF and serves CRLF.
func lf(s string) string { return strings.ReplaceAll(s, "\r\n", "\n") }

func sameView(a, b imapView) bool {
	if a.uidValidity != b.uidValidity || len(a.flags) != len(b.flags) {
		return false
	}
	for uid, fa := range a.flags {
		fb, ok := b.flags[uid]
		if !ok || strings.Join(fa, " ") != strings.Join(fb, " ") || a.bodies[uid] != b.bodies[uid] {
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
	c := d.client(t)

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

	m, err := Open(d.maildir)
	if err != nil {
		t.Fatal(err)
	}
	if got := ternView(t, m, "INBOX"); !sameView(got, want) {
		t.Fatalf("tern reads INBOX as\n%+v\nDovecot has\n%+v", got, want)
	}
	if got := ternView(t, m, "Work.Ünïcode"); !sameView(got, wantWork) {
		t.Fatalf("tern reads Work.Ünïcode as\n%+v\nDovecot has\n%+v", got, wantWork)
	}
	if subs, err := m.Subscriptions(); err != nil || !reflect.DeepEqual(subs, []string{"Work.Ünïcode"}) {
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
	d.chownTree(t)
	// A new session, as a client connecting after the change would.
	c.Logout().Wait()
	c = d.client(t)

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
	if !reflect.DeepEqual(subs, []string{"Tern.Földer", "Work.Ünïcode"}) {
		t.Fatalf("Dovecot reads subscriptions as %v", subs)
	}
	dv := fetchView(t, c, "Tern.Földer")
	tv := ternView(t, m, "Tern.Földer")
	// Dovecot numbers the messages itself; compare by body.
	byBody := func(v imapView) map[string]string {
		out := map[string]string{}
		for uid, b := range v.bodies {
			out[b] = strings.Join(v.flags[uid], " ")
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
