package e2e

// Operating tern: the man pages, the systemd units, the fail2ban filter and
// the Debian package, checked with the tools an admin's system uses on them
// (mandoc, man, systemd-analyze, fail2ban-regex, dpkg-deb). These tests use
// only their own helpers, named ops*, so that this file stands alone.

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"

	"tern/common/config"
)

// opsPrograms are the programs the package ships.
var opsPrograms = []string{"smtpd", "lmtpd", "imapd", "pop3d", "webd", "mailq"}

// opsDaemons have a systemd service and socket unit each.
var opsDaemons = []string{"smtpd", "lmtpd", "imapd", "pop3d", "webd"}

// opsMaxExposure is the highest `systemd-analyze security` exposure a
// service may have: 4.0 is the upper bound of the "OK" rating.
const opsMaxExposure = 4.0

// opsRoot is the top of the repository.
func opsRoot(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot find the test's source file")
	}
	return filepath.Dir(filepath.Dir(file))
}

// opsTool returns the path of a command, or skips the test naming the
// Debian package that provides it.
func opsTool(t testing.TB, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not installed (apt-get install %s)", name, pkg)
	}
	return p
}

// opsRun runs a command and returns its standard output and error apart.
func opsRun(t testing.TB, dir string, env []string, name string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// opsManPages lists man/*.[1-8].
func opsManPages(t testing.TB) []string {
	t.Helper()
	pages, err := filepath.Glob(filepath.Join(opsRoot(t), "man", "*.[1-8]"))
	if err != nil {
		t.Fatal(err)
	}
	if len(pages) == 0 {
		t.Fatal("no man pages in man/")
	}
	return pages
}

// TestOpsManLint: `mandoc -T lint` prints nothing for every page. It runs in
// man/, where mandoc also looks for the pages that .Xr names, so links
// between tern's pages are checked too.
func TestOpsManLint(t *testing.T) {
	mandoc := opsTool(t, "mandoc", "mandoc")
	pages := opsManPages(t)
	names := make([]string, len(pages))
	for i, p := range pages {
		names[i] = filepath.Base(p)
	}
	out, errOut, _ := opsRun(t, filepath.Join(opsRoot(t), "man"), nil, mandoc, append([]string{"-T", "lint"}, names...)...)
	// Two kinds of message are about the machine, not the pages: whether
	// the page of another project (fcntl(2)) is installed, and whether
	// mandoc's database of installed pages is up to date. Every other
	// message fails the test, including a link to a tern page that does
	// not exist.
	machine := regexp.MustCompile(`^mandoc: (outdated mandoc\.db lacks .*|\S+: STYLE: referenced manual not found: Xr (\S+) \d.*)$`)
	var problems []string
	for _, l := range strings.Split(strings.TrimSpace(out+errOut), "\n") {
		if l == "" {
			continue
		}
		if m := machine.FindStringSubmatch(l); m != nil && !strings.HasPrefix(m[2], "tern") {
			continue
		}
		problems = append(problems, l)
	}
	if len(problems) > 0 {
		t.Errorf("mandoc -T lint %s:\n%s", strings.Join(names, " "), strings.Join(problems, "\n"))
	}
}

// TestOpsManRender: `man -l` renders each page without a complaint, with a
// NAME section naming the page.
func TestOpsManRender(t *testing.T) {
	man := opsTool(t, "man", "man-db")
	for _, p := range opsManPages(t) {
		out, errOut, err := opsRun(t, "", []string{"MANWIDTH=80", "MANPAGER=cat", "PAGER=cat", "LC_ALL=C.UTF-8"}, man, "-l", p)
		base := filepath.Base(p)
		ext := filepath.Ext(base)
		title := strings.ToUpper(strings.TrimSuffix(base, ext)) + "(" + ext[1:] + ")"
		if err != nil || errOut != "" {
			t.Errorf("man -l %s: %v\n%s", p, err, errOut)
			continue
		}
		if !strings.HasPrefix(strings.TrimSpace(out), title) || !strings.Contains(out, "\nNAME\n") {
			t.Errorf("man -l %s: want the title %s and a NAME section:\n%.400s", p, title, out)
		}
	}
}

// TestOpsManPagesComplete: every program and file has its page, under a name
// that no other MTA's page uses.
func TestOpsManPagesComplete(t *testing.T) {
	for _, p := range []string{
		"tern.7", "tern.toml.5", "tern-users.5", "tern-aliases.5", "tern-maildir.5", "tern-queue.5",
		"tern-smtpd.8", "tern-lmtpd.8", "tern-imapd.8", "tern-pop3d.8", "tern-mailq.1",
	} {
		if _, err := os.Stat(filepath.Join(opsRoot(t), "man", p)); err != nil {
			t.Errorf("man page %s is missing: %v", p, err)
		}
	}
}

// opsTOMLKeys returns the dotted keys of tern.toml, from the toml tags of
// config.Config, grouped by table ("" for the top level).
func opsTOMLKeys() map[string][]string {
	keys := map[string][]string{}
	ct := reflect.TypeOf(config.Config{})
	for i := 0; i < ct.NumField(); i++ {
		f := ct.Field(i)
		tag := strings.Split(f.Tag.Get("toml"), ",")[0]
		if tag == "" || tag == "-" {
			continue
		}
		if f.Type.Kind() == reflect.Struct {
			for j := 0; j < f.Type.NumField(); j++ {
				sub := strings.Split(f.Type.Field(j).Tag.Get("toml"), ",")[0]
				if sub != "" && sub != "-" {
					keys[tag] = append(keys[tag], sub)
				}
			}
			continue
		}
		keys[""] = append(keys[""], tag)
	}
	return keys
}

// TestOpsTernTomlPageDocumentsEveryKey: tern.toml(5) has an entry for every
// key of the configuration, in the subsection of its table, with a default.
func TestOpsTernTomlPageDocumentsEveryKey(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(opsRoot(t), "man", "tern.toml.5"))
	if err != nil {
		t.Fatal(err)
	}
	// Split the page into its subsections: "Top-level keys" and
	// "The [table] table".
	sections := map[string]string{}
	current := ""
	tableRe := regexp.MustCompile(`^\.Ss The \\&\[(\w+)\\&\] table$`)
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, ".Ss ") || strings.HasPrefix(line, ".Sh ") {
			current = "-"
			if m := tableRe.FindStringSubmatch(line); m != nil {
				current = m[1]
			} else if line == ".Ss Top-level keys" {
				current = ""
			}
			continue
		}
		sections[current] += line + "\n"
	}
	for table, keys := range opsTOMLKeys() {
		body, ok := sections[table]
		if !ok {
			t.Errorf("tern.toml(5) has no subsection for the [%s] table", table)
			continue
		}
		entries := strings.Split(body, ".It Ic ")
		for _, key := range keys {
			found := false
			for _, e := range entries[1:] {
				if strings.HasPrefix(e, key+" ") {
					found = true
					// An entry without text of its own shares the next
					// entry's (.It lines one after the other).
					text := strings.TrimSpace(strings.SplitN(e, "\n", 2)[1])
					if text != "" && !strings.Contains(text, "Default") && !strings.Contains(text, "Required") {
						t.Errorf("tern.toml(5): key %q has no default", opsDotted(table, key))
					}
				}
			}
			if !found {
				t.Errorf("tern.toml(5) does not document %q (want \".It Ic %s\" under its table)", opsDotted(table, key), key)
			}
		}
	}
}

func opsDotted(table, key string) string {
	if table == "" {
		return key
	}
	return table + "." + key
}

// opsUnits copies the unit files into a temporary directory, pointing
// their programs at stand-in executables there: systemd-analyze checks that
// ExecStart= names an executable, and tern is not installed in /usr/lib/tern
// on a build machine.
func opsUnits(t *testing.T) (dir string, units []string) {
	t.Helper()
	dir = t.TempDir()
	libexec := filepath.Join(dir, "libexec")
	if err := os.Mkdir(libexec, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range opsDaemons {
		if err := os.WriteFile(filepath.Join(libexec, d), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	src, err := filepath.Glob(filepath.Join(opsRoot(t), "systemd", "tern-*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(src) != 2*len(opsDaemons) {
		t.Fatalf("systemd/ has %d units, want a service and a socket for each of %v", len(src), opsDaemons)
	}
	for _, s := range src {
		b, err := os.ReadFile(s)
		if err != nil {
			t.Fatal(err)
		}
		b = bytes.ReplaceAll(b, []byte("/usr/lib/tern/"), []byte(libexec+"/"))
		u := filepath.Join(dir, filepath.Base(s))
		if err := os.WriteFile(u, b, 0o644); err != nil {
			t.Fatal(err)
		}
		units = append(units, u)
	}
	return dir, units
}

// opsManPath makes a man tree of the repository's pages, so that the units'
// Documentation=man:... links are resolved against them.
func opsManPath(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, p := range opsManPages(t) {
		sec := strings.TrimPrefix(filepath.Ext(p), ".")
		d := filepath.Join(dir, "man"+sec)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(p, filepath.Join(d, filepath.Base(p))); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// opsSystemdAnalyze skips the test when systemd-analyze is missing or cannot
// run here.
func opsSystemdAnalyze(t *testing.T) string {
	t.Helper()
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed (apt-get install systemd): units not verified")
	}
	if _, errOut, err := opsRun(t, "", nil, sa, "--version"); err != nil {
		t.Skipf("systemd-analyze cannot run here: %v %s", err, errOut)
	}
	return sa
}

// TestOpsSystemdVerify: `systemd-analyze verify` finds nothing to say about
// the units, including that every Documentation= page exists.
func TestOpsSystemdVerify(t *testing.T) {
	sa := opsSystemdAnalyze(t)
	_, units := opsUnits(t)
	args := append([]string{"verify"}, units...)
	env := []string{"MANPATH=" + opsManPath(t)}
	if _, err := exec.LookPath("man"); err != nil {
		t.Log("man not installed: Documentation= links not checked")
		args = append([]string{"verify", "--man=no"}, units...)
	}
	out, errOut, err := opsRun(t, "", env, sa, args...)
	if err != nil || strings.TrimSpace(out+errOut) != "" {
		t.Errorf("systemd-analyze verify: %v\n%s%s", err, out, errOut)
	}
}

// TestOpsSystemdSecurity: each service rates "OK" or better with
// `systemd-analyze security`, and runs as its own unprivileged user.
func TestOpsSystemdSecurity(t *testing.T) {
	sa := opsSystemdAnalyze(t)
	dir, _ := opsUnits(t)
	re := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`)
	wantUser := map[string]string{"smtpd": "tern", "lmtpd": "vmail", "imapd": "vmail", "pop3d": "vmail", "webd": "tern"}
	for _, d := range opsDaemons {
		unit := filepath.Join(dir, "tern-"+d+".service")
		out, errOut, err := opsRun(t, "", nil, sa, "security", "--offline=true", "--no-pager", unit)
		m := re.FindStringSubmatch(out + errOut)
		if m == nil {
			t.Errorf("systemd-analyze security %s: %v, no exposure level in:\n%s%s", unit, err, out, errOut)
			continue
		}
		exposure, _ := strconv.ParseFloat(m[1], 64)
		t.Logf("tern-%s.service exposure %.1f", d, exposure)
		if exposure > opsMaxExposure {
			t.Errorf("tern-%s.service: exposure %.1f, want at most %.1f", d, exposure, opsMaxExposure)
		}
		b, err := os.ReadFile(unit)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range []string{"User=" + wantUser[d], "Type=notify", "ExecReload=/bin/kill -HUP $MAINPID", "CapabilityBoundingSet=\n"} {
			if !bytes.Contains(b, []byte("\n"+line)) {
				t.Errorf("tern-%s.service lacks %q", d, strings.TrimSpace(line))
			}
		}
	}
}

// TestOpsSocketUnitsMatchConfig: the socket units listen where the
// installed tern.toml says, since a daemon only takes an inherited socket
// whose address equals a configured one.
func TestOpsSocketUnitsMatchConfig(t *testing.T) {
	cfg, err := config.Load(filepath.Join(opsRoot(t), "etc", "tern.toml"))
	if err != nil {
		t.Fatal(err)
	}
	// The listeners each daemon declares in its main.go.
	want := map[string][]string{}
	for d, addrs := range map[string][][]string{
		"smtpd": {cfg.SMTPD.MX, cfg.SMTPD.Submission, cfg.SMTPD.Submissions, {cfg.SMTPD.LocalSubmit}},
		"lmtpd": {cfg.LMTPD.Listen, cfg.ManageSieve.Listen},
		"imapd": {cfg.IMAPD.Listen, cfg.IMAPD.TLSListen},
		"pop3d": {cfg.POP3D.Listen, cfg.POP3D.TLSListen},
		"webd":  {cfg.WebD.Listen, cfg.WebD.TLSListen, {cfg.WebD.Metrics}},
	} {
		for _, as := range addrs {
			for _, a := range as {
				if a != "" {
					want[d] = append(want[d], a)
				}
			}
		}
	}
	for _, d := range opsDaemons {
		b, err := os.ReadFile(filepath.Join(opsRoot(t), "systemd", "tern-"+d+".socket"))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, l := range strings.Split(string(b), "\n") {
			if a, ok := strings.CutPrefix(l, "ListenStream="); ok {
				if strings.HasPrefix(a, "/") {
					a = "unix:" + a
				}
				got = append(got, a)
			}
		}
		w := append([]string(nil), want[d]...)
		sort.Strings(got)
		sort.Strings(w)
		if !reflect.DeepEqual(got, w) {
			t.Errorf("tern-%s.socket listens on %v, etc/tern.toml configures %v", d, got, w)
		}
	}
	if lmtp := cfg.SMTPD.LMTP; len(cfg.LMTPD.Listen) == 0 || lmtp != cfg.LMTPD.Listen[0] {
		t.Errorf("smtpd.lmtp %q is not lmtpd's socket %v", lmtp, cfg.LMTPD.Listen)
	}
}

// TestOpsFail2banFilter runs fail2ban-regex with the shipped filter over log
// lines as the daemons write them: each failed login is found with its
// client address, whatever the order of the fields, and text a client
// controls (a user name) never yields an address.
func TestOpsFail2banFilter(t *testing.T) {
	f2b := opsTool(t, "fail2ban-regex", "fail2ban")
	lines := []struct {
		line, ip string // ip is "" when the line must not match
	}{
		// As the daemons write them (common/maillog.AuthFailed; TestMailLog
		// checks the filter against lines of running daemons too).
		{`time=2026-12-02T07:02:13.383Z level=INFO msg="authentication failed" daemon=imapd conn=3 ip=192.0.2.7 event=auth_failed user=demo@example.test reason="bad credentials" failures=1 ip_failures=3`, "192.0.2.7"},
		{`time=2026-12-02T07:02:07.376+01:00 level=INFO msg="authentication failed" daemon=smtpd conn=9 ip=198.51.100.9 event=auth_failed user=unknown reason="bad credentials" failures=1 ip_failures=1`, "198.51.100.9"},
		{`time=2026-12-02T07:02:14.000Z level=INFO msg="authentication failed" daemon=pop3d conn=1 ip=2001:db8::5 event=auth_failed user="evil ip=203.0.113.66" reason="bad credentials" failures=1 ip_failures=1`, "2001:db8::5"},
		{`time=2026-12-02T07:02:15.000Z level=INFO msg="authentication failed" daemon=pop3d conn=2 ip=192.0.2.8 event=auth_failed user="x\" ip=203.0.113.66 y" reason="bad credentials" failures=1 ip_failures=1`, "192.0.2.8"},
		{`Dec  2 07:02:16 mail smtpd[812]: time=2026-12-02T07:02:16.000Z level=INFO msg="authentication failed" daemon=smtpd conn=a ip=192.0.2.11 event=auth_failed user=demo@example.test reason="bad credentials" failures=1 ip_failures=1`, "192.0.2.11"},
		{`time=2026-12-02T07:02:17.000Z level=INFO msg="authentication failed" daemon=lmtpd service=managesieve conn=s1 ip=192.0.2.12 event=auth_failed user=unknown reason="bad credentials" failures=1 ip_failures=1`, "192.0.2.12"},
		{`time=2026-11-22T10:00:05.000Z level=INFO msg="authentication failed" daemon=pop3d event=auth_failed user="ip=203.0.113.66"`, ""},
		{`time=2026-11-22T10:00:06.000Z level=INFO msg=delivered daemon=lmtpd event=delivered ip=192.0.2.9`, ""},
		{`time=2026-11-22T10:00:07.000Z level=INFO msg="x event=auth_failed ip=203.0.113.67" daemon=smtpd ip=192.0.2.10`, ""},
		{`time=2026-11-22T10:00:08.000Z level=INFO msg="authentication failed" daemon=imapd event=auth_failed_later ip=203.0.113.68`, ""},
	}
	var log strings.Builder
	var want []string
	for _, l := range lines {
		log.WriteString(l.line + "\n")
		if l.ip != "" {
			want = append(want, l.ip)
		}
	}
	logFile := filepath.Join(t.TempDir(), "mail.log")
	if err := os.WriteFile(logFile, []byte(log.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	filter := filepath.Join(opsRoot(t), "packaging", "fail2ban", "tern.conf")
	out, errOut, err := opsRun(t, "", nil, f2b, "-o", "ip", logFile, filter)
	if err != nil {
		t.Fatalf("fail2ban-regex: %v\n%s%s", err, out, errOut)
	}
	got := strings.Fields(out)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("fail2ban-regex found %v, want %v\n%s", got, want, errOut)
	}
}

// opsBuildDeb builds the programs and the package into a temporary
// directory. It skips when a program does not compile yet. With
// TERN_OPS_BINDIR set, the programs already built there are packaged.
func opsBuildDeb(t *testing.T) string {
	t.Helper()
	opsTool(t, "dpkg-deb", "dpkg")
	root := opsRoot(t)
	bin := os.Getenv("TERN_OPS_BINDIR")
	if bin == "" {
		bin = t.TempDir()
		args := []string{"build", "-o", bin + "/"}
		for _, p := range opsPrograms {
			args = append(args, "tern/"+p)
		}
		if out, errOut, err := opsRun(t, root, nil, "go", args...); err != nil {
			t.Skipf("the programs do not all build yet, so no package: %v\n%s%s", err, out, errOut)
		}
	}
	// Fast compression: the test checks the contents, not the size.
	out, errOut, err := opsRun(t, root, []string{"DEB_COMPRESS=gzip", "DEB_COMPRESS_LEVEL=1"}, filepath.Join(root, "packaging", "build-deb"),
		"-v", "v1.2.3", "-b", bin, "-o", t.TempDir(), "-a", "amd64")
	if err != nil {
		t.Fatalf("build-deb: %v\n%s%s", err, out, errOut)
	}
	deb := strings.TrimSpace(out)
	if filepath.Base(deb) != "tern_1.2.3_amd64.deb" {
		t.Fatalf("build-deb wrote %q, want tern_1.2.3_amd64.deb", deb)
	}
	return deb
}

// TestOpsDebPackage: the package holds what an admin expects where Debian
// puts it, with the config as a conffile, and its config passes -check.
func TestOpsDebPackage(t *testing.T) {
	deb := opsBuildDeb(t)
	info, errOut, err := opsRun(t, "", nil, "dpkg-deb", "-I", deb)
	if err != nil {
		t.Fatalf("dpkg-deb -I: %v\n%s", err, errOut)
	}
	for _, want := range []string{
		"Package: tern", "Version: 1.2.3", "Architecture: amd64", "Depends: adduser",
		"Provides: mail-transport-agent", "Conflicts: mail-transport-agent", "Replaces: mail-transport-agent",
		" postinst ", " prerm ", " postrm ", " conffiles ",
	} {
		if !strings.Contains(info, want) {
			t.Errorf("dpkg-deb -I lacks %q:\n%s", want, info)
		}
	}
	contents, errOut, err := opsRun(t, "", nil, "dpkg-deb", "-c", deb)
	if err != nil {
		t.Fatalf("dpkg-deb -c: %v\n%s", err, errOut)
	}
	want := []string{
		"-rwxr-xr-x root/root ./usr/lib/tern/smtpd", "-rwxr-xr-x root/root ./usr/lib/tern/lmtpd",
		"-rwxr-xr-x root/root ./usr/lib/tern/imapd", "-rwxr-xr-x root/root ./usr/lib/tern/pop3d",
		"-rwxr-xr-x root/root ./usr/sbin/mailq", "lrwxrwxrwx root/root ./usr/sbin/sendmail -> mailq",
		"-rw-r--r-- root/root ./etc/tern/tern.toml",
		"-rw-r--r-- root/root ./etc/fail2ban/filter.d/tern.conf",
	}
	for _, d := range opsDaemons {
		want = append(want, "-rw-r--r-- root/root ./lib/systemd/system/tern-"+d+".service",
			"-rw-r--r-- root/root ./lib/systemd/system/tern-"+d+".socket")
	}
	for _, p := range opsManPages(t) {
		sec := strings.TrimPrefix(filepath.Ext(p), ".")
		want = append(want, "-rw-r--r-- root/root ./usr/share/man/man"+sec+"/"+filepath.Base(p)+".gz")
	}
	// dpkg-deb -c lines: mode owner size date time path; drop size and date.
	have := map[string]bool{}
	for _, l := range strings.Split(contents, "\n") {
		f := strings.Fields(l)
		if len(f) >= 6 {
			have[strings.Join(append(f[:2:2], f[5:]...), " ")] = true
		}
	}
	for _, w := range want {
		if !have[w] {
			t.Errorf("package lacks %q; it holds:\n%s", w, contents)
		}
	}

	ctl := t.TempDir()
	if out, errOut, err := opsRun(t, "", nil, "dpkg-deb", "-e", deb, ctl); err != nil {
		t.Fatalf("dpkg-deb -e: %v\n%s%s", err, out, errOut)
	}
	conffiles, err := os.ReadFile(filepath.Join(ctl, "conffiles"))
	if err != nil || !strings.Contains(string(conffiles), "/etc/tern/tern.toml\n") {
		t.Errorf("/etc/tern/tern.toml is not a conffile: %q %v", conffiles, err)
	}
	for _, s := range []string{"postinst", "prerm", "postrm"} {
		if out, errOut, err := opsRun(t, "", nil, "sh", "-n", filepath.Join(ctl, s)); err != nil {
			t.Errorf("%s: %v\n%s%s", s, err, out, errOut)
		}
	}
	postinst, _ := os.ReadFile(filepath.Join(ctl, "postinst"))
	for _, want := range []string{"/var/spool/tern", "/var/vmail", "adduser --system"} {
		if !strings.Contains(string(postinst), want) {
			t.Errorf("postinst does not mention %q", want)
		}
	}
	if bytes.Contains(postinst, []byte("systemctl start")) || bytes.Contains(postinst, []byte("systemctl enable")) {
		t.Error("postinst starts or enables a unit; nothing may start before the admin configures tern")
	}

	tree := t.TempDir()
	if out, errOut, err := opsRun(t, "", nil, "dpkg-deb", "-x", deb, tree); err != nil {
		t.Fatalf("dpkg-deb -x: %v\n%s%s", err, out, errOut)
	}
	for _, d := range opsDaemons {
		out, errOut, err := opsRun(t, "", nil, filepath.Join(tree, "usr/lib/tern", d), "-check", "-config", filepath.Join(tree, "etc/tern/tern.toml"))
		if err != nil {
			t.Errorf("packaged %s -check on the packaged tern.toml: %v\n%s%s", d, err, out, errOut)
		}
	}
}

// TestOpsDebInstall installs the package with dpkg and checks what the
// maintainer scripts made. It changes a system, so it runs only with
// TERN_DEB_INSTALL=1: into the Debian root at $TERN_DEB_ROOT (made with
// `debootstrap --variant=minbase bookworm DIR`) with `dpkg --root`, or, with
// no root given, on this machine, where it is purged afterwards.
func TestOpsDebInstall(t *testing.T) {
	if os.Getenv("TERN_DEB_INSTALL") != "1" {
		t.Skip("set TERN_DEB_INSTALL=1 (and TERN_DEB_ROOT=a debootstrap directory) to install the package")
	}
	if os.Geteuid() != 0 {
		t.Skip("installing a package needs root")
	}
	deb := opsBuildDeb(t)
	root := os.Getenv("TERN_DEB_ROOT")
	// in runs a command inside the installed system.
	in := func(name string, args ...string) (string, error) {
		t.Helper()
		if root != "" {
			args = append([]string{root, name}, args...)
			name = "chroot"
		}
		out, errOut, err := opsRun(t, "", []string{"LC_ALL=C"}, name, args...)
		return out + errOut, err
	}
	dpkg := func(args ...string) (string, error) {
		t.Helper()
		if root != "" {
			args = append([]string{"--root=" + root}, args...)
		}
		out, errOut, err := opsRun(t, "", []string{"LC_ALL=C"}, "dpkg", args...)
		return out + errOut, err
	}
	if root == "" {
		out, _, _ := opsRun(t, "", nil, "dpkg-query", "-W", "-f", "${Package} ${db:Status-Abbrev} ${Provides}\n")
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, " ii ") && strings.Contains(l, "mail-transport-agent") && !strings.HasPrefix(l, "tern ") {
				t.Skipf("another MTA is installed (%s), which tern conflicts with; set TERN_DEB_ROOT to a debootstrap directory", l)
			}
		}
	}
	t.Cleanup(func() {
		if out, err := dpkg("--purge", "tern"); err != nil {
			t.Errorf("dpkg --purge tern: %v\n%s", err, out)
		}
	})
	if out, err := dpkg("-i", deb); err != nil {
		t.Fatalf("dpkg -i: %v\n%s", err, out)
	}
	if out, err := in("/usr/lib/tern/smtpd", "-check", "-config", "/etc/tern/tern.toml"); err != nil {
		t.Errorf("installed smtpd -check: %v\n%s", err, out)
	}
	for path, want := range map[string]string{
		"/var/spool/tern": "tern:tern 700",
		"/var/vmail":      "vmail:vmail 700",
		"/etc/tern/users": "root:tern 640",
		"/etc/tern/tls":   "root:tern 750",
	} {
		out, err := in("stat", "-c", "%U:%G %a", path)
		if err != nil || strings.TrimSpace(out) != want {
			t.Errorf("%s: %q %v, want %q", path, strings.TrimSpace(out), err, want)
		}
	}
	if out, err := in("id", "-nG", "vmail"); err != nil || !strings.Contains(out, "tern") {
		t.Errorf("vmail is not in group tern: %q %v", out, err)
	}
	if _, err := in("sh", "-c", "command -v man"); err == nil {
		out, err := in("man", "-w", "tern-smtpd")
		if err != nil || !strings.Contains(out, "/usr/share/man/man8/tern-smtpd.8.gz") {
			t.Errorf("man -w tern-smtpd: %q %v", out, err)
		}
	} else {
		t.Log("man-db is not installed in the root: man pages checked as files only")
		if out, err := in("test", "-f", "/usr/share/man/man8/tern-smtpd.8.gz"); err != nil {
			t.Errorf("tern-smtpd(8) not installed: %v %s", err, out)
		}
	}
	// An admin's tern.toml survives reinstallation, and mail survives purge.
	if out, err := in("sh", "-c", `echo '# edited' >> /etc/tern/tern.toml && echo mail > /var/vmail/kept`); err != nil {
		t.Fatalf("editing the installed config: %v\n%s", err, out)
	}
	if out, err := dpkg("--force-confold", "-i", deb); err != nil {
		t.Fatalf("dpkg -i again: %v\n%s", err, out)
	}
	if out, err := in("tail", "-n", "1", "/etc/tern/tern.toml"); err != nil || strings.TrimSpace(out) != "# edited" {
		t.Errorf("reinstalling replaced the admin's tern.toml: last line %q %v", out, err)
	}
	if out, err := dpkg("--purge", "tern"); err != nil {
		t.Fatalf("dpkg --purge: %v\n%s", err, out)
	}
	if out, err := in("cat", "/var/vmail/kept"); err != nil || strings.TrimSpace(out) != "mail" {
		t.Errorf("purge lost /var/vmail: %q %v", out, err)
	}
	if out, err := in("rm", "/var/vmail/kept"); err != nil {
		t.Errorf("cleaning up: %v %s", err, out)
	}
	// Installed again for the cleanup's purge to have something to do, and
	// to check that an install over left-behind users and directories works.
	if out, err := dpkg("-i", deb); err != nil {
		t.Fatalf("dpkg -i after purge: %v\n%s", err, out)
	}
}
