package maildir

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The mode follows the setting, and in auto the statfs type: network and
// FUSE file systems are shared, local ones are not.
func TestSharedModeDetect(t *testing.T) {
	defer SetShared(SharedAuto, DefaultSharedPoll)
	dir := t.TempDir()
	var sfs unix.Statfs_t
	if err := unix.Statfs(dir, &sfs); err != nil {
		t.Fatal(err)
	}
	if _, ok := sharedTypes[int64(sfs.Type)]; ok {
		t.Skipf("the temporary directory %s is itself on shared storage (type %#x)", dir, sfs.Type)
	}
	for _, c := range []struct {
		mode SharedMode
		want bool
	}{{SharedAuto, false}, {SharedOn, true}, {SharedOff, false}} {
		SetShared(c.mode, 0)
		if got := isShared(dir); got != c.want {
			t.Errorf("mode %s on a local directory: shared = %v, want %v", c.mode, got, c.want)
		}
		info, err := Inspect(filepath.Join(dir, "not", "yet"))
		if err != nil {
			t.Fatal(err)
		}
		if info.Shared != c.want || info.Dir != dir || info.Mount == "" || info.Type == "" {
			t.Errorf("Inspect in mode %s: %+v", c.mode, info)
		}
	}
	for magic, name := range map[int64]string{0x6969: "nfs", 0x65735546: "fuse", 0xFF534D42: "cifs", 0x00C36400: "ceph", 0x01021997: "9p", 0xEF53: "", 0x01021994: ""} {
		SetShared(SharedAuto, 0)
		want := name != ""
		if got := sharedFor(dir, &unix.Statfs_t{Type: magic}); got != want {
			t.Errorf("auto, statfs type %#x (%q): shared = %v, want %v", magic, name, got, want)
		}
		SetShared(SharedOff, 0)
		if sharedFor(dir, &unix.Statfs_t{Type: magic}) {
			t.Errorf("shared = false, statfs type %#x: treated as shared", magic)
		}
	}
}

// Known-unsafe mount options are reported; safe ones are not.
func TestSharedMountWarnings(t *testing.T) {
	mi := filepath.Join("testdata", "mountinfo")
	for _, c := range []struct {
		dir, typ, mount, warn string
	}{
		{"/var/vmail", "ext4", "/", ""},
		{"/srv/nfs-safe/example.org/a/Maildir", "nfs4", "/srv/nfs-safe", ""},
		{"/srv/nfs-nolock/x", "nfs", "/srv/nfs-nolock", "nolock"},
		{"/srv/smb share/x", "cifs", "/srv/smb share", "nobrl"},
		{"/srv/gluster/inner/x", "tmpfs", "/srv/gluster/inner", ""},
		{"/srv/glusterfoo", "ext4", "/", ""},
	} {
		m, ok := findMount(mi, c.dir)
		if !ok || m.fstype != c.typ || m.point != c.mount {
			t.Errorf("%s: mount %+v, want %s on %s", c.dir, m, c.typ, c.mount)
			continue
		}
		warn, _ := checkMount(FSInfo{Type: m.fstype, Mount: m.point, Options: m.options, Shared: true})
		joined := strings.Join(warn, "; ")
		if (c.warn == "") != (len(warn) == 0) || !strings.Contains(joined, c.warn) {
			t.Errorf("%s (%s): warnings %q, want one about %q", c.dir, c.typ, joined, c.warn)
		}
	}
	// An NFS mount with the attribute cache on is slow to see other
	// hosts' changes: warned.
	warn, _ := checkMount(FSInfo{Type: "nfs4", Options: "rw,vers=4.2,hard,local_lock=none"})
	if len(warn) != 1 || !strings.Contains(warn[0], "actimeo=0") {
		t.Errorf("nfs4 with attribute cache: %q", warn)
	}
	// A GlusterFS mount whose client cannot be inspected says so rather
	// than pass silently.
	warn, unknown := checkMount(FSInfo{Type: "fuse.glusterfs", Mount: t.TempDir()})
	if len(unknown) != 2 || len(warn) != 0 {
		t.Errorf("gluster mount not inspectable: warnings %q, unknown %q", warn, unknown)
	}
}

// A change that raises no inotify event here, as one made on another host
// over NFS or GlusterFS, still wakes a watcher on shared storage within the
// poll interval, and a plain Sync (IMAP NOOP) sees it at once. Without the
// shared mode the watcher would sleep through it: the control case shows
// that the test can fail.
func TestSharedWatchSeesOtherHost(t *testing.T) {
	const poll = 100 * time.Millisecond
	defer func() {
		SetShared(SharedAuto, DefaultSharedPoll)
		inotifyBlind = false
	}()
	for _, shared := range []bool{true, false} {
		name := map[bool]string{true: "shared", false: "local-control"}[shared]
		t.Run(name, func(t *testing.T) {
			SetShared(map[bool]SharedMode{true: SharedOn, false: SharedOff}[shared], poll)
			inotifyBlind = true
			m := openTest(t)
			f := folder(t, m, "INBOX")
			mustSync(t, f)
			if f.st.ev != nil || f.st.shared != shared {
				t.Fatalf("tracker %v, shared %v", f.st.ev != nil, f.st.shared)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			ch, err := f.Watch(ctx)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			if out, err := helperCmd(t, "deliver", "ROOT="+m.Root(), "N=2").Output(); err != nil {
				t.Fatalf("deliver from another process: %v %s", err, out)
			}
			select {
			case <-ch:
				if !shared {
					t.Fatal("woken without inotify and without polling")
				}
				// The poller compares with its previous tick:
				// within two intervals of the change.
				if d := time.Since(start); d > 2*time.Second {
					t.Fatalf("woken after %v", d)
				} else {
					t.Logf("woken %v after the delivery started", d)
				}
			case <-time.After(1500 * time.Millisecond):
				if shared {
					t.Fatal("change from another host not signalled within 1.5 s")
				}
			}
			if s := mustSync(t, f); len(s.Messages) != 2 {
				t.Fatalf("%d messages after the change, want 2", len(s.Messages))
			}
			if !shared {
				return
			}
			// A flag change and an expunge by the other host: a Sync
			// sees them without waiting, the watcher within the bound.
			drain(ch)
			start = time.Now()
			if out, err := helperCmd(t, "change", "ROOT="+m.Root(), "EXPUNGE=1", "FLAG=2").Output(); err != nil {
				t.Fatalf("change from another process: %v %s", err, out)
			}
			s := mustSync(t, f)
			if len(s.Messages) != 1 || s.Messages[0].UID != 2 || !strings.Contains(strings.Join(s.Messages[0].Flags, " "), `\Flagged`) {
				t.Fatalf("after expunge of 1 and flag on 2: %+v", s.Messages)
			}
			select {
			case <-ch:
				t.Logf("expunge and flag change signalled after %v", time.Since(start))
			case <-time.After(1500 * time.Millisecond):
				t.Fatal("expunge from another host not signalled within 1.5 s")
			}
		})
	}
}

func drain(ch <-chan struct{}) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

// The store never hands back a stale handle: a message file replaced under
// its name is read by path again after a sync.
func TestSharedOpenAfterRename(t *testing.T) {
	defer SetShared(SharedAuto, DefaultSharedPoll)
	SetShared(SharedOn, 50*time.Millisecond)
	m := openTest(t)
	deliver(t, m, "INBOX", "Subject: a\r\n\r\nbody\r\n")
	f := folder(t, m, "INBOX")
	s := mustSync(t, f)
	uid := s.Messages[0].UID
	// Another host sets \Seen by renaming the file.
	ents, _ := os.ReadDir(filepath.Join(m.Root(), "cur"))
	old := filepath.Join(m.Root(), "cur", ents[0].Name())
	if err := os.Rename(old, old+"S"); err != nil {
		t.Fatal(err)
	}
	if got := readMsg(t, f, uid); !strings.Contains(got, "body") {
		t.Fatalf("read after rename: %q", got)
	}
}

// On shared storage a waiting lock is polled, not blocked in the kernel: it
// still waits for the holder and gets the lock once it is released.
func TestSharedLockWaits(t *testing.T) {
	defer SetShared(SharedAuto, DefaultSharedPoll)
	SetShared(SharedOn, 0)
	p := filepath.Join(t.TempDir(), "x.lock")
	held, err := lockFile(p, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lockFile(p, false); err == nil {
		t.Fatal("second lock taken while held")
	}
	got := make(chan time.Time, 1)
	go func() {
		f, err := lockFile(p, true)
		if err != nil {
			t.Error(err)
			got <- time.Time{}
			return
		}
		got <- time.Now()
		f.Close()
	}()
	time.Sleep(100 * time.Millisecond)
	select {
	case <-got:
		t.Fatal("waiting lock taken while held")
	default:
	}
	released := time.Now()
	held.Close()
	select {
	case at := <-got:
		if d := at.Sub(released); d > 200*time.Millisecond {
			t.Fatalf("waiter got the lock %v after the release", d)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("waiter never got the lock")
	}
}
