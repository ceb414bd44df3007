package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"tern/common/maildir"
)

// Real clients other than go-imap: curl (libcurl's IMAP) and mbsync
// (isync), each run against the server as it is run for users.

func TestCurl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not installed (Debian package curl)")
	}
	e := startServer(t)
	e.deliver(t, "INBOX", testMessage("first", "one\r\n"))
	e.deliver(t, "INBOX", testMessage("second curl", "two\r\n"))
	run := func(url string, args ...string) string {
		t.Helper()
		cmd := exec.Command(curl, append([]string{"-sS", "--max-time", "10", "-u", "demo:demo", url}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("curl %s %v: %v\n%s", url, args, err, out)
		}
		return string(out)
	}
	base := "imap://" + e.addr
	// LIST
	if out := run(base + "/"); !strings.Contains(out, "INBOX") || !strings.Contains(out, `\Sent`) {
		t.Errorf("LIST via curl:\n%s", out)
	}
	// FETCH BODY[] by UID
	if out := run(base + "/INBOX;UID=2"); strings.ReplaceAll(out, "\r\n", "\n") != strings.ReplaceAll(testMessage("second curl", "two\r\n"), "\r\n", "\n") {
		t.Errorf("FETCH via curl: %q", out)
	}
	// FETCH a section
	if out := run(base + "/INBOX;UID=1;SECTION=HEADER.FIELDS%20(SUBJECT)"); !strings.Contains(out, "Subject: first") {
		t.Errorf("FETCH section via curl: %q", out)
	}
	// SEARCH
	if out := run(base + "/INBOX?SUBJECT%20curl"); !strings.Contains(out, "SEARCH 2") {
		t.Errorf("SEARCH via curl: %q", out)
	}
	// A custom command (EXAMINE + STATUS through -X).
	if out := run(base+"/", "-X", "STATUS INBOX (MESSAGES UIDNEXT)"); !strings.Contains(out, "MESSAGES 2") {
		t.Errorf("STATUS via curl: %q", out)
	}
	// A failed login fails the transfer.
	cmd := exec.Command(curl, "-sS", "--max-time", "10", "-u", "demo:nope", base+"/")
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Errorf("curl with a wrong password succeeded:\n%s", out)
	}
}

// mbsync two-way: changes made on the server (move, flag, delete) reach
// the local copy at the next sync, and local changes reach the server.
// mbsync 1.4 turns on COMPRESS=DEFLATE (RFC 4978) when offered, and ends
// each command with zlib's Z_PARTIAL_FLUSH, not a sync flush.
func TestMbsyncTwoWay(t *testing.T) {
	mbsync, err := exec.LookPath("mbsync")
	if err != nil {
		t.Skip("mbsync not installed (Debian package isync)")
	}
	e := startServer(t)
	mbox := e.mailbox(t)
	if err := mbox.Create("Projects"); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"alpha", "bravo", "charlie"} {
		e.deliver(t, "INBOX", testMessage(s, s+" body\r\n"))
	}
	e.deliver(t, "Projects", testMessage("delta", "delta body\r\n"))

	local := filepath.Join(t.TempDir(), "mail")
	if err := os.MkdirAll(local, 0o700); err != nil {
		t.Fatal(err)
	}
	rc := filepath.Join(t.TempDir(), "mbsyncrc")
	host, port, _ := strings.Cut(e.addr, ":")
	conf := fmt.Sprintf(`IMAPAccount tern
Host %s
Port %s
User demo
Pass demo
SSLType None
AuthMechs LOGIN

IMAPStore remote
Account tern

MaildirStore local
Path %s/
Inbox %s/INBOX
SubFolders Verbatim

Channel sync
Far :remote:
Near :local:
Patterns INBOX Projects
Create Both
Expunge Both
SyncState *
`, host, port, local, local)
	if err := os.WriteFile(rc, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	sync := func() {
		t.Helper()
		out, err := exec.Command(mbsync, "-c", rc, "-a").CombinedOutput()
		if err != nil {
			t.Fatalf("mbsync: %v\n%s", err, out)
		}
	}

	sync()
	wantLocal(t, local, "INBOX", map[string]string{"alpha": "", "bravo": "", "charlie": ""})
	wantLocal(t, local, "Projects", map[string]string{"delta": ""})

	// On the server: alpha moves to Projects, bravo is flagged, charlie
	// is deleted; through IMAP, as another client would.
	c := e.login(t, nil)
	selectInbox(t, c)
	uids := serverUIDs(t, e, "INBOX")
	if _, err := c.Move(imap.UIDSetNum(imap.UID(uids["alpha"])), "Projects").Wait(); err != nil {
		t.Fatal(err)
	}
	storeFlag(t, c, uids["bravo"], imap.FlagFlagged)
	storeFlag(t, c, uids["charlie"], imap.FlagDeleted)
	if err := c.Expunge().Close(); err != nil {
		t.Fatal(err)
	}

	sync()
	wantLocal(t, local, "INBOX", map[string]string{"bravo": "F"})
	wantLocal(t, local, "Projects", map[string]string{"alpha": "", "delta": ""})

	// Locally: bravo is read, delta is deleted, alpha moves back to the
	// INBOX (without mbsync's UID in its name, as isync asks of movers),
	// and a new message is written.
	files := localFiles(t, local, "INBOX")
	renameFlags(t, files["bravo"], "FS")
	pfiles := localFiles(t, local, "Projects")
	if err := os.Remove(pfiles["delta"]); err != nil {
		t.Fatal(err)
	}
	moved := regexp.MustCompile(`,U=\d+`).ReplaceAllString(filepath.Base(pfiles["alpha"]), "")
	if err := os.Rename(pfiles["alpha"], filepath.Join(local, "INBOX", "cur", moved)); err != nil {
		t.Fatal(err)
	}
	newMsg := filepath.Join(local, "INBOX", "new", fmt.Sprintf("%d.local.test", time.Now().Unix()))
	if err := os.WriteFile(newMsg, []byte(strings.ReplaceAll(testMessage("echo", "echo body\r\n"), "\r\n", "\n")), 0o600); err != nil {
		t.Fatal(err)
	}

	sync()
	wantServer(t, e, "INBOX", map[string]string{"alpha": "", "bravo": `\Flagged \Seen`, "echo": ""})
	wantServer(t, e, "Projects", map[string]string{})
	if e.srv.compressed.Load() == 0 {
		t.Error("mbsync did not use COMPRESS")
	}
}

func storeFlag(t *testing.T, c *imapclient.Client, uid uint32, flag imap.Flag) {
	t.Helper()
	err := c.Store(imap.UIDSetNum(imap.UID(uid)), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true,
		Flags: []imap.Flag{flag}}, nil).Close()
	if err != nil {
		t.Fatalf("STORE %s: %v", flag, err)
	}
}

// subjectRe finds a test message's subject.
var subjectRe = regexp.MustCompile(`(?m)^Subject: (\S+)`)

// localFiles maps subject to file path in a local Maildir folder.
func localFiles(t *testing.T, root, folder string) map[string]string {
	t.Helper()
	out := make(map[string]string)
	for _, sub := range []string{"cur", "new"} {
		paths, _ := filepath.Glob(filepath.Join(root, folder, sub, "*"))
		for _, p := range paths {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if m := subjectRe.FindSubmatch(b); m != nil {
				out[string(m[1])] = p
			}
		}
	}
	return out
}

// wantLocal checks the local folder: subject -> Maildir flag letters.
func wantLocal(t *testing.T, root, folder string, want map[string]string) {
	t.Helper()
	files := localFiles(t, root, folder)
	got := make(map[string]string)
	for subj, p := range files {
		_, flags, _ := strings.Cut(filepath.Base(p), ":2,")
		got[subj] = flags
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("local %s = %v, want %v", folder, got, want)
	}
}

func renameFlags(t *testing.T, path, flags string) {
	t.Helper()
	base, _, _ := strings.Cut(filepath.Base(path), ":2,")
	if err := os.Rename(path, filepath.Join(filepath.Dir(filepath.Dir(path)), "cur", base+":2,"+flags)); err != nil {
		t.Fatal(err)
	}
}

// serverUIDs maps subject to UID in one of demo's folders on the server.
func serverUIDs(t *testing.T, e *testEnv, folder string) map[string]uint32 {
	t.Helper()
	out := make(map[string]uint32)
	for subj, m := range serverMessages(t, e, folder) {
		out[subj] = m.UID
	}
	return out
}

func serverMessages(t *testing.T, e *testEnv, folder string) map[string]maildir.Message {
	t.Helper()
	f, err := e.mailbox(t).Folder(folder)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := f.Sync()
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]maildir.Message)
	for _, m := range snap.Messages {
		r, err := f.Open(m.UID)
		if err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 4096)
		n, _ := r.Read(b)
		r.Close()
		if s := subjectRe.FindSubmatch(b[:n]); s != nil {
			out[string(s[1])] = m
		}
	}
	return out
}

// wantServer checks a server folder: subject -> flags (sorted, spaced).
func wantServer(t *testing.T, e *testEnv, folder string, want map[string]string) {
	t.Helper()
	got := make(map[string]string)
	for subj, m := range serverMessages(t, e, folder) {
		fl := append([]string(nil), m.Flags...)
		sort.Strings(fl)
		got[subj] = strings.Join(fl, " ")
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("server %s = %v, want %v", folder, got, want)
	}
}
