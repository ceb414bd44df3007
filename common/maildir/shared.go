package maildir

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Shared storage. When several hosts mount one Maildir tree (NFS, GlusterFS
// or another FUSE file system, CephFS, SMB), the kernel of one host never
// queues an inotify event for a change made on another: inotify only sees
// what passes through the local VFS. On such a file system the store
//   - never trusts inotify for change tracking: Sync compares the stats of
//     new/, cur/, the index and the change log (unchanged), which every
//     coherent network file system keeps current across hosts;
//   - polls those stats every SharedPoll for Watch (IMAP IDLE), in addition
//     to inotify, which still reports this host's own changes at once;
//   - fsyncs every change-log record and marks it with the boot token "-",
//     since a host that reads the log cannot know another host's boot;
//   - retries a sync that met ESTALE (a file replaced by rename on another
//     host while this one looked it up), and keeps no descriptor of the
//     index, the log or a message file from one sync to the next.
// The index lock is an fcntl OFD lock, which NFS (NLM or NFSv4), GlusterFS
// (its features/locks translator), CephFS and SMB (byte-range locks) carry
// to the server, so UID assignment stays serialised across hosts.

// SharedMode says whether Maildirs are on storage that other hosts change.
type SharedMode int

const (
	// SharedAuto decides per file system from its statfs type.
	SharedAuto SharedMode = iota
	// SharedOn treats every Maildir as shared.
	SharedOn
	// SharedOff trusts inotify everywhere (single host).
	SharedOff
)

func (m SharedMode) String() string {
	switch m {
	case SharedOn:
		return "true"
	case SharedOff:
		return "false"
	}
	return "auto"
}

// DefaultSharedPoll is the default interval at which a watched folder on
// shared storage is polled: short enough that an IDLE session wakes well
// within two seconds of a change on another host, long enough that a few
// thousand idle sessions cost little (four stats per folder per tick,
// shared by all sessions of the folder in one process).
const DefaultSharedPoll = 250 * time.Millisecond

var shared = struct {
	mu    sync.Mutex
	mode  SharedMode
	poll  time.Duration
	byDev map[uint64]bool // st_dev → shared, decided (and logged) once
}{poll: DefaultSharedPoll}

// SetShared sets the shared-storage mode and the polling interval of
// watched folders on shared storage ([storage] shared, shared_poll). It is
// called once at start, before any folder is opened.
func SetShared(mode SharedMode, poll time.Duration) {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	shared.mode = mode
	if poll > 0 {
		shared.poll = poll
	}
	shared.byDev = nil
}

func sharedPoll() time.Duration {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	return shared.poll
}

// Statfs types of file systems whose contents other hosts change
// (linux/magic.h and the file systems' sources).
var sharedTypes = map[int64]string{
	0x6969:     "nfs",
	0x65735546: "fuse",
	0xFF534D42: "cifs",
	0xFE534D42: "smb2",
	0x517B:     "smb",
	0x00C36400: "ceph",
	0x01021997: "9p",
	0x5346414F: "afs",
	0x6B414653: "afs",
	0x01161970: "gfs2",
	0x7461636F: "ocfs2",
	0x0BD00BD0: "lustre",
}

// isShared reports whether the folder at dir is on shared storage, deciding
// once per file system and logging the decision.
func isShared(dir string) bool {
	var s unix.Stat_t
	if err := unix.Stat(dir, &s); err != nil {
		return sharedFor(dir, nil)
	}
	dev := uint64(s.Dev)
	shared.mu.Lock()
	v, ok := shared.byDev[dev]
	shared.mu.Unlock()
	if ok {
		return v
	}
	v = sharedFor(dir, nil)
	shared.mu.Lock()
	if shared.byDev == nil {
		shared.byDev = make(map[uint64]bool)
	}
	if _, seen := shared.byDev[dev]; !seen {
		shared.byDev[dev] = v
		shared.mu.Unlock()
		info, _ := Inspect(dir)
		info.Log(slog.Default())
		return v
	}
	shared.mu.Unlock()
	return v
}

// sharedFor applies the mode to dir's statfs type.
func sharedFor(dir string, sfs *unix.Statfs_t) bool {
	shared.mu.Lock()
	mode := shared.mode
	shared.mu.Unlock()
	switch mode {
	case SharedOn:
		return true
	case SharedOff:
		return false
	}
	if sfs == nil {
		sfs = new(unix.Statfs_t)
		if err := unix.Statfs(dir, sfs); err != nil {
			// Unknown: the safe side.
			return true
		}
	}
	_, ok := sharedTypes[int64(sfs.Type)]
	return ok
}

// FSInfo describes the file system under a Maildir root, for the start-up
// log and tern-maildir(5)'s checks.
type FSInfo struct {
	Dir      string
	Magic    int64  // statfs type
	Type     string // from /proc/self/mountinfo ("ext4", "fuse.glusterfs", "nfs4"), or the magic's name
	Mount    string // mount point
	Source   string
	Options  string // mount and super-block options
	Mode     SharedMode
	Shared   bool
	Poll     time.Duration
	Warnings []string // known-unsafe or slow settings
	Unknown  []string // what could not be checked
}

// Inspect reports the file system of dir (or of its nearest existing
// parent: a template's fixed prefix may not exist yet), whether the store
// treats it as shared, and what is known to be unsafe about its options.
func Inspect(dir string) (FSInfo, error) {
	dir = filepath.Clean(dir)
	for {
		if _, err := os.Stat(dir); err == nil || dir == "/" || dir == "." {
			break
		}
		dir = filepath.Dir(dir)
	}
	info := FSInfo{Dir: dir}
	var sfs unix.Statfs_t
	if err := unix.Statfs(dir, &sfs); err != nil {
		return info, fmt.Errorf("statfs %q: %w", dir, err)
	}
	info.Magic = int64(sfs.Type)
	info.Type = sharedTypes[info.Magic]
	shared.mu.Lock()
	info.Mode, info.Poll = shared.mode, shared.poll
	shared.mu.Unlock()
	info.Shared = sharedFor(dir, &sfs)
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	}
	if m, ok := findMount("/proc/self/mountinfo", dir); ok {
		info.Type, info.Mount, info.Source, info.Options = m.fstype, m.point, m.source, m.options
	}
	info.Warnings, info.Unknown = checkMount(info)
	return info, nil
}

// Log writes the decision and every warning.
func (i FSInfo) Log(log *slog.Logger) {
	mode := "local (inotify)"
	if i.Shared {
		mode = "shared (polling " + i.Poll.String() + ", every log record fsynced)"
	}
	log.Info("maildir: storage", "dir", i.Dir, "fstype", i.Type, "mount", i.Mount,
		"shared", i.Mode.String(), "mode", mode)
	for _, w := range i.Warnings {
		log.Warn("maildir: unsafe shared storage", "dir", i.Dir, "fstype", i.Type, "mount", i.Mount, "problem", w)
	}
	for _, u := range i.Unknown {
		log.Info("maildir: shared storage not checked", "dir", i.Dir, "fstype", i.Type, "what", u)
	}
}

type mountEntry struct {
	point, fstype, source, options string
}

// findMount returns the mountinfo entry whose mount point is the longest
// prefix of dir (the last such line: later mounts hide earlier ones).
func findMount(path, dir string) (mountEntry, bool) {
	f, err := os.Open(path)
	if err != nil {
		return mountEntry{}, false
	}
	defer f.Close()
	var best mountEntry
	found := false
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		// id parent maj:min root point options [optional...] - fstype source superoptions
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		a, b := strings.Fields(pre), strings.Fields(post)
		if len(a) < 6 || len(b) < 3 {
			continue
		}
		point := unescapeMount(a[4])
		if !pathWithin(dir, point) {
			continue
		}
		if !found || len(point) >= len(best.point) {
			best = mountEntry{point: point, fstype: b[0], source: unescapeMount(b[1]), options: a[5] + "," + b[2]}
			found = true
		}
	}
	return best, found
}

func pathWithin(dir, point string) bool {
	return point == "/" || dir == point || strings.HasPrefix(dir, point+"/")
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v byte
			ok := true
			for _, c := range s[i+1 : i+4] {
				if c < '0' || c > '7' {
					ok = false
					break
				}
				v = v*8 + byte(c-'0')
			}
			if ok {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// glusterCaches are the client-side translators of a GlusterFS volume that
// serve stale data across mounts: with any of them in the client graph a
// host can read another host's renamed index late, or a grown file as
// empty. Each is turned off by the volume option in parentheses.
var glusterCaches = map[string]string{
	"md-cache":      "performance.stat-prefetch",
	"quick-read":    "performance.quick-read",
	"io-cache":      "performance.io-cache",
	"read-ahead":    "performance.read-ahead",
	"readdir-ahead": "performance.readdir-ahead",
	"open-behind":   "performance.open-behind",
	"write-behind":  "performance.write-behind",
	"nl-cache":      "performance.nl-cache",
}

// checkMount lists what is known to be unsafe in the mount's options, and
// what could not be checked.
func checkMount(i FSInfo) (warn, unknown []string) {
	opts := map[string]string{}
	for _, o := range strings.Split(i.Options, ",") {
		k, v, _ := strings.Cut(o, "=")
		opts[k] = v
	}
	switch {
	case i.Type == "nfs" || i.Type == "nfs4":
		if _, ok := opts["nolock"]; ok {
			warn = append(warn, "mounted with nolock: fcntl locks are local to this host, so two hosts can give one UID to two messages; remove nolock")
		}
		if v, ok := opts["local_lock"]; ok && v != "none" && v != "" {
			warn = append(warn, "mounted with local_lock="+v+": locks are not seen by other hosts; use local_lock=none")
		}
		if v := opts["lookupcache"]; v != "none" {
			if _, noac := opts["noac"]; !noac && opts["actimeo"] != "0" {
				warn = append(warn, "attribute and lookup caches on (no actimeo=0, noac or lookupcache=none): another host's index rename or new mail can be seen up to acdirmax late")
			}
		}
	case i.Type == "fuse.glusterfs":
		w, u := checkGluster(i.Mount)
		warn, unknown = append(warn, w...), append(unknown, u...)
	case i.Type == "cifs" || i.Type == "smb3":
		if _, ok := opts["nobrl"]; ok {
			warn = append(warn, "mounted with nobrl: byte-range locks are local to this host, so two hosts can give one UID to two messages")
		}
		if v, ok := opts["cache"]; ok && v == "loose" {
			warn = append(warn, "mounted with cache=loose: reads may be stale across hosts; use cache=strict or cache=none")
		}
	case strings.HasPrefix(i.Type, "fuse"):
		if i.Shared {
			unknown = append(unknown, "FUSE file system "+i.Type+": its cache coherence across hosts and its lock support cannot be checked from here")
		}
	}
	return warn, unknown
}

// checkGluster looks at the GlusterFS client of mount: its client graph
// (the .meta virtual directory lists the active translators) for caches, and
// its command line for the FUSE attribute and entry timeouts.
func checkGluster(mount string) (warn, unknown []string) {
	ents, err := os.ReadDir(filepath.Join(mount, ".meta", "graphs", "active"))
	if err != nil {
		unknown = append(unknown, "client translator graph (.meta/graphs/active unreadable: "+err.Error()+"): cannot tell whether the client caches are off")
	} else {
		for _, e := range ents {
			for xl, opt := range glusterCaches {
				if strings.HasSuffix(e.Name(), "-"+xl) {
					warn = append(warn, "client cache "+e.Name()+" is on: set "+opt+" off on the volume")
				}
			}
		}
	}
	args, err := glusterClientArgs(mount)
	if err != nil {
		unknown = append(unknown, "FUSE timeouts: "+err.Error())
		return warn, unknown
	}
	for _, name := range []string{"attribute-timeout", "entry-timeout"} {
		v, ok := "", false
		for j, a := range args {
			if s, cut := strings.CutPrefix(a, "--"+name+"="); cut {
				v, ok = s, true
			} else if a == "--"+name && j+1 < len(args) {
				v, ok = args[j+1], true
			}
		}
		if !ok || strings.Trim(v, "0.") != "" {
			shown := v
			if !ok {
				shown = "default 1"
			}
			warn = append(warn, "FUSE "+name+" is "+shown+"s: mount with "+name+"=0 so another host's renames are seen at once")
		}
	}
	return warn, unknown
}

// glusterClientArgs finds the glusterfs process serving mount and returns
// its arguments.
func glusterClientArgs(mount string) ([]string, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(data) == 0 {
			continue
		}
		args := strings.Split(strings.TrimRight(string(data), "\x00"), "\x00")
		if filepath.Base(args[0]) != "glusterfs" || args[len(args)-1] != mount {
			continue
		}
		return args, nil
	}
	return nil, errors.New("no glusterfs client process for " + mount + " visible (another PID namespace?)")
}

// staleRetries bounds the retries of an operation that met ESTALE.
const staleRetries = 3

// isStale reports an NFS-style stale handle: the file or directory was
// replaced or removed on another host after this one looked it up. Looking
// the path up again finds the current file.
func isStale(err error) bool {
	return errors.Is(err, unix.ESTALE)
}
