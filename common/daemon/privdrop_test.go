package daemon

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"tern/common/config"
)

// privdropChildEnv makes the test binary, re-executed, act as a daemon that
// drops its privileges: "user:group" to drop to, and the path of a file only
// root may write.
const (
	privdropChildEnv = "TERN_PRIVDROP_CHILD"
	privdropFileEnv  = "TERN_PRIVDROP_ROOTFILE"
)

// TestPrivdropChild is the re-executed side of TestDropPrivileges. It prints
// one line the parent parses; every check that needs the dropped identity
// happens here, in a process that may lose root for good.
func TestPrivdropChild(t *testing.T) {
	spec := os.Getenv(privdropChildEnv)
	if spec == "" {
		t.Skip("helper process for TestDropPrivileges")
	}
	userName, groupName, _ := strings.Cut(spec, ":")
	// Threads started before the drop must change identity too: park a few
	// goroutines on their own OS threads while it happens.
	var ready, done sync.WaitGroup
	stop := make(chan struct{})
	for i := 0; i < 4; i++ {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			ready.Done()
			<-stop
		}()
	}
	ready.Wait()
	err := DropPrivileges(&config.Config{User: userName, Group: groupName})
	threadUIDs := privdropThreadUIDs(t)
	close(stop)
	done.Wait()
	if err != nil {
		fmt.Printf("PRIVDROP err=%q\n", err)
		return
	}
	groups, _ := syscall.Getgroups()
	sort.Ints(groups)
	writeErr := os.WriteFile(os.Getenv(privdropFileEnv), []byte("x"), 0o600)
	setuidErr := syscall.Setuid(0)
	// Called again once unprivileged, it must do nothing.
	againErr := DropPrivileges(&config.Config{User: "root"})
	fmt.Printf("PRIVDROP uid=%d euid=%d gid=%d egid=%d groups=%v threads=%v write=%v setuid0=%v again=%v\n",
		os.Getuid(), os.Geteuid(), os.Getgid(), os.Getegid(), groups, threadUIDs,
		writeErr != nil, setuidErr != nil, againErr)
}

// privdropThreadUIDs returns the distinct real/effective/saved uids of every
// thread of the process, from /proc/self/task/*/status.
func privdropThreadUIDs(t *testing.T) []string {
	t.Helper()
	tasks, err := filepath.Glob("/proc/self/task/*/status")
	if err != nil || len(tasks) == 0 {
		t.Fatalf("no threads in /proc: %v", err)
	}
	seen := map[string]bool{}
	for _, f := range tasks {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // the thread exited
		}
		for _, l := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(l, "Uid:"); ok {
				seen[strings.Join(strings.Fields(rest)[:3], "/")] = true
			}
		}
	}
	var out []string
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// runPrivdropChild re-executes the test binary as TestPrivdropChild and
// returns the line it printed.
func runPrivdropChild(t *testing.T, spec string) string {
	t.Helper()
	dir := t.TempDir() // root's, mode 0700
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestPrivdropChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), privdropChildEnv+"="+spec, privdropFileEnv+"="+filepath.Join(dir, "f"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "PRIVDROP ") {
			return l
		}
	}
	t.Fatalf("child printed no PRIVDROP line:\n%s", out)
	return ""
}

func privdropWant(t *testing.T, userName, groupName string) (uid, gid int, groups []int) {
	t.Helper()
	u, err := config.LookupUser(userName)
	if err != nil {
		t.Skipf("no user %q on this system", userName)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	if groupName != "" {
		g, err := config.LookupGroup(groupName)
		if err != nil {
			t.Skipf("no group %q on this system", groupName)
		}
		gid, _ = strconv.Atoi(g.Gid)
	}
	id, err := ResolveIdentity(userName, groupName)
	if err != nil {
		t.Fatal(err)
	}
	groups = append([]int(nil), id.Groups...)
	sort.Ints(groups)
	return uid, gid, groups
}

func TestDropPrivileges(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the test drops from root to nobody")
	}
	for _, tc := range []struct{ user, group string }{
		{"nobody", ""},
		{"nobody", "nogroup"},
		{"65534", "65534"},
	} {
		t.Run(tc.user+":"+tc.group, func(t *testing.T) {
			uid, gid, groups := privdropWant(t, tc.user, tc.group)
			got := runPrivdropChild(t, tc.user+":"+tc.group)
			want := fmt.Sprintf("PRIVDROP uid=%d euid=%d gid=%d egid=%d groups=%v threads=[%d/%d/%d] write=true setuid0=true again=<nil>",
				uid, uid, gid, gid, groups, uid, uid, uid)
			if got != want {
				t.Errorf("after dropping to %s:%s\n got %s\nwant %s", tc.user, tc.group, got, want)
			}
		})
	}
}

func TestDropPrivilegesRefuses(t *testing.T) {
	uid := os.Getuid()
	for _, tc := range []struct {
		name, user, group, want string
	}{
		{"unknown user", "no-such-user-tern", "", "no such user"},
		{"unknown group", "nobody", "no-such-group-tern", "no such group"},
		{"root", "root", "", "is root"},
		{"root group", "nobody", "root", "is root"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ResolveIdentity(tc.user, tc.group)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ResolveIdentity(%q, %q) = %v, want an error containing %q", tc.user, tc.group, err, tc.want)
			}
			if os.Geteuid() == 0 {
				// A refused drop leaves the identity alone, and says so, so
				// that the daemon exits instead of serving as root.
				err := DropPrivileges(&config.Config{User: tc.user, Group: tc.group})
				if err == nil {
					t.Errorf("DropPrivileges(%q, %q) succeeded", tc.user, tc.group)
				}
				if os.Getuid() != uid {
					t.Fatalf("uid changed to %d by a failed drop", os.Getuid())
				}
			}
		})
	}
}

func TestDropPrivilegesWithoutUserKeepsIdentity(t *testing.T) {
	uid, gid := os.Getuid(), os.Getgid()
	if err := DropPrivileges(&config.Config{}); err != nil {
		t.Fatal(err)
	}
	if os.Getuid() != uid || os.Getgid() != gid {
		t.Errorf("identity changed to %d:%d without a user key", os.Getuid(), os.Getgid())
	}
}
