package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"runtime"
	"strconv"
	"strings"
	"syscall"
)

// benchUser is the Unix account that owns the peers' Maildirs: Postfix's
// local(8) delivers only to Unix users, and Dovecot refuses to act as root.
const benchUser = "ternbench"

// The packages the peers come from, and a file each provides.
var peerPackages = []struct{ pkg, file string }{
	{"postfix", "/usr/sbin/postfix"},
	{"postfix", "/usr/sbin/smtp-source"},
	{"dovecot-imapd", "/usr/lib/dovecot/imap"},
	{"dovecot-pop3d", "/usr/lib/dovecot/pop3"},
	{"dovecot-lmtpd", "/usr/lib/dovecot/lmtp"},
}

// ensurePeers installs Postfix and Dovecot from Debian when missing. The
// packages must not start the system's own Postfix or Dovecot on ports 25,
// 143 and 110: debconf is told that Postfix needs "No configuration", and a
// policy-rc.d that refuses every start is in place during the install.
func ensurePeers(ctx context.Context) error {
	var missing []string
	seen := map[string]bool{}
	for _, p := range peerPackages {
		if _, err := os.Stat(p.file); err != nil && !seen[p.pkg] {
			seen[p.pkg] = true
			missing = append(missing, p.pkg)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	logf("installing %s", strings.Join(missing, " "))
	const policy = "/usr/sbin/policy-rc.d"
	if _, err := os.Stat(policy); errors.Is(err, os.ErrNotExist) {
		if err := os.WriteFile(policy, []byte("#!/bin/sh\n# ternbench: no service starts during its install\nexit 101\n"), 0o755); err != nil {
			return fmt.Errorf("write %s: %w", policy, err)
		}
		defer os.Remove(policy)
	}
	sel := exec.CommandContext(ctx, "debconf-set-selections")
	sel.Stdin = strings.NewReader("postfix postfix/main_mailer_type select No configuration\n")
	if out, err := sel.CombinedOutput(); err != nil {
		return fmt.Errorf("debconf-set-selections: %w: %s", err, out)
	}
	env := append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	for _, argv := range [][]string{
		{"apt-get", "update"},
		append([]string{"apt-get", "install", "-y", "--no-install-recommends"}, missing...),
	} {
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, tail(string(out), 2000))
		}
	}
	return nil
}

// ensureUser makes the benchUser system account when it does not exist, and
// returns its uid and gid.
func ensureUser(ctx context.Context) (uid, gid int, err error) {
	u, err := user.Lookup(benchUser)
	if err != nil {
		logf("creating system user %s", benchUser)
		if err := run(ctx, "useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
			"--shell", "/usr/sbin/nologin", benchUser); err != nil {
			return 0, 0, err
		}
		if u, err = user.Lookup(benchUser); err != nil {
			return 0, 0, fmt.Errorf("look up %s: %w", benchUser, err)
		}
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid, nil
}

// raiseFileLimit lifts the soft limit on open files to the hard limit, for
// the harness and for the daemons it starts (10,000 IDLE connections need
// more than the usual 1,024). Setting it explicitly also stops Go from
// restoring the lower limit in children.
func raiseFileLimit() (uint64, error) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, fmt.Errorf("getrlimit: %w", err)
	}
	l.Cur = l.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, fmt.Errorf("setrlimit: %w", err)
	}
	return l.Cur, nil
}

// raiseInotify makes sure one Unix user may hold at least n inotify
// instances. Every Dovecot imap process (all run as ternbench) takes one;
// past the limit (128 on Debian) Dovecot falls back to polling and cannot
// hibernate IDLE sessions, which Dovecot's documentation tells admins to
// avoid by raising it. The old value is put back by the returned function.
func raiseInotify(n int) (restore func(), err error) {
	const path = "/proc/sys/fs/inotify/max_user_instances"
	old := strings.TrimSpace(readFile(path))
	cur, err := strconv.Atoi(old)
	if err != nil {
		return nil, fmt.Errorf("read %s: %q", path, old)
	}
	if cur >= n {
		return func() {}, nil
	}
	if err := os.WriteFile(path, []byte(strconv.Itoa(n)), 0o644); err != nil {
		return nil, fmt.Errorf("raise %s to %d: %w", path, n, err)
	}
	logf("raised fs.inotify.max_user_instances from %d to %d for this run", cur, n)
	return func() {
		if err := os.WriteFile(path, []byte(old), 0o644); err != nil {
			logf("restore %s: %v", path, err)
		}
	}, nil
}

// machine is what the report says about where it ran.
type machine struct {
	Date, Host, OS, Kernel, CPU string
	Cores                       int
	MemGiB                      float64
	Dir, FS                     string
	Go, Postfix, Dovecot, Tern  string
}

func machineFacts(ctx context.Context, dir, binDir string) machine {
	m := machine{Cores: runtime.NumCPU(), Dir: dir, Go: runtime.Version()}
	m.Host, _ = os.Hostname()
	m.Kernel = strings.TrimSpace(readFile("/proc/sys/kernel/osrelease"))
	for _, l := range strings.Split(readFile("/etc/os-release"), "\n") {
		if v, ok := strings.CutPrefix(l, "PRETTY_NAME="); ok {
			m.OS = strings.Trim(v, `"`)
		}
	}
	if kb, err := procFileKB("/proc/meminfo", "MemTotal"); err == nil {
		m.MemGiB = float64(kb) / (1 << 20)
	}
	f, _ := os.Open("/proc/cpuinfo")
	if f != nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	m.FS = output(ctx, "findmnt", "-n", "-o", "FSTYPE,SOURCE,OPTIONS", "--target", dir)
	if m.FS == "" {
		m.FS = output(ctx, "stat", "-f", "-c", "%T", dir)
	}
	m.Postfix = output(ctx, "dpkg-query", "-W", "-f", "${Version}", "postfix")
	m.Dovecot = output(ctx, "dovecot", "--version")
	m.Tern = output(ctx, binDir+"/smtpd", "-version")
	return m
}

func output(ctx context.Context, argv ...string) string {
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
