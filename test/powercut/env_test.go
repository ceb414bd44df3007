package powercut

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"tern/test/crashfs"
)

// builds holds the daemons built once per set of build tags.
var (
	buildMu sync.Mutex
	builds  = map[string]string{}
	tmpRoot string
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tern-powercut-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	tmpRoot = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// daemons builds smtpd, lmtpd, imapd, pop3d and mailq with the given
// build tags (once per set) and returns their directory. They are built
// without the race detector even under -race (test/ runs them with it):
// here the time goes into hundreds of restarts, which a raced daemon
// makes several times slower.
func daemons(t *testing.T, tags string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if d, ok := builds[tags]; ok {
		return d
	}
	dir := filepath.Join(tmpRoot, "bin-"+strings.ReplaceAll(tags, ",", "-"))
	args := []string{"build", "-o", dir + "/"}
	if tags != "" {
		args = append(args, "-tags", tags)
	}
	args = append(args, "tern/smtpd", "tern/lmtpd", "tern/imapd", "tern/pop3d", "tern/mailq")
	cmd := exec.Command("go", args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %v: %v\n%s", args, err, out)
	}
	builds[tags] = dir
	return dir
}

// requireFUSE skips the test where a FUSE file system cannot be mounted.
func requireFUSE(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skip("power-cut tests need FUSE: /dev/fuse is missing")
	}
	backing, mnt := t.TempDir(), t.TempDir()
	c, err := crashfs.Mount(backing, mnt)
	if err != nil {
		t.Skipf("power-cut tests need FUSE, which cannot be mounted here (root, or fusermount3 from the fuse3 package): %v", err)
	}
	c.Unmount()
}

// env is tern on a crashfs, restarted on what each cut leaves.
type env struct {
	t      *testing.T
	bin    string
	dir    string // outside the file system under test: config, users, sockets, TLS
	mnt    string
	disk   string // the current backing directory
	disks  string // where the backing directories are made
	rounds int
	cfs    *crashfs.FS
	config string
	mx     string
	imap   string
	pop3   string
	lmtp   string // unix socket path
	procs  map[string]*proc
	logs   map[string]*bytes.Buffer
	logMu  sync.Mutex
	// removing counts the old disks still being removed.
	removing sync.WaitGroup
	rng      *rand.Rand
}

func newEnv(t *testing.T, bin string, seed uint64) *env {
	dir := t.TempDir()
	e := &env{t: t, bin: bin, dir: dir, mnt: filepath.Join(dir, "mnt"), procs: map[string]*proc{},
		logs: map[string]*bytes.Buffer{}, rng: rand.New(rand.NewPCG(seed, 0x70c))}
	for _, d := range []string{"mnt", "run", "tls"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	// The disks (the backing trees) live on tmpfs where there is one:
	// each cut writes a whole tree and removes the last, and the disk
	// under them is not what is tested.
	e.disks = dir
	if shm, err := os.MkdirTemp("/dev/shm", "tern-powercut-"); err == nil {
		e.disks = shm
		t.Cleanup(func() { os.RemoveAll(shm) })
	}
	e.disk = filepath.Join(e.disks, "disk-0")
	if err := os.Mkdir(e.disk, 0o700); err != nil {
		t.Fatal(err)
	}
	_, file, _, _ := runtime.Caller(0)
	users, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "..", "etc", "dev-users"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "users"), string(users))
	writeFile(t, filepath.Join(dir, "aliases"), "postmaster: demo@example.test\n")
	e.writeConfig()
	t.Cleanup(func() {
		e.removing.Wait()
		e.killAll()
		if e.cfs != nil {
			e.cfs.Unmount()
		}
		if t.Failed() {
			e.logMu.Lock()
			for d, b := range e.logs {
				t.Logf("--- %s log (last round):\n%s", d, tail(b.String(), 6000))
			}
			e.logMu.Unlock()
		}
	})
	return e
}

// writeConfig writes tern.toml with fresh loopback ports. Other tests on
// the machine may take a port while the daemons are down between cuts;
// start then moves to new ones.
func (e *env) writeConfig() {
	t, dir := e.t, e.dir
	e.mx, e.imap, e.pop3 = freePort(t), freePort(t), freePort(t)
	e.lmtp = filepath.Join(dir, "run", "lmtp.sock")
	dns := deadUDP(t)
	e.config = filepath.Join(dir, "tern.toml")
	writeFile(t, e.config, fmt.Sprintf(`hostname = "mail.example.test"
domains = ["example.test"]
users = %q
aliases = %q
maildir = %q
state_dir = %q
[log]
level = "info"
[tls]
cert = %q
key = %q
generate = true
[smtpd]
mx = [%q]
submission = [%q]
submissions = [%q]
lmtp = "unix:%s"
local_submit = "unix:%s"
local_retry = "300ms"
[lmtpd]
listen = ["unix:%s"]
sieve = %q
[imapd]
listen = [%q]
tls_listen = [%q]
[pop3d]
listen = [%q]
tls_listen = [%q]
[dns]
resolver = %q
timeout = "1s"
# crashfs stands for one machine's local disk (ext4 rules, one host), so
# the store runs as it does there. On a FUSE mount "auto" would choose the
# shared-storage mode meant for several hosts, which polls and rescans and
# slows the IMAP and POP3 load about tenfold; power cuts under that mode
# are the cluster set-up's to test (tern-cluster(7)).
[storage]
shared = false
`, filepath.Join(dir, "users"), filepath.Join(dir, "aliases"),
		filepath.Join(e.mnt, "vmail", "%d", "%n", "Maildir"), filepath.Join(e.mnt, "spool"),
		filepath.Join(dir, "tls", "cert.pem"), filepath.Join(dir, "tls", "key.pem"),
		e.mx, freePort(t), freePort(t), e.lmtp, filepath.Join(dir, "run", "submit.sock"),
		e.lmtp, filepath.Join(dir, "sieve", "%d", "%n", "active.sieve"),
		e.imap, freePort(t), e.pop3, freePort(t), dns))
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// mount mounts the crashfs on the current disk.
func (e *env) mount() {
	e.t.Helper()
	c, err := crashfs.Mount(e.disk, e.mnt)
	if err != nil {
		e.t.Fatal(err)
	}
	if p := os.Getenv("TERN_POWERCUT_TRACE"); p != "" {
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			e.t.Fatal(err)
		}
		var mu sync.Mutex
		fmt.Fprintf(f, "=== mount %s\n", e.disk)
		c.Trace = func(format string, args ...any) {
			mu.Lock()
			defer mu.Unlock()
			fmt.Fprintf(f, time.Now().Format("15:04:05.000000 ")+format+"\n", args...)
		}
	}
	e.cfs = c
}

// start starts daemons at once and waits until each listens; when one
// exits at start (a port taken meanwhile), it stops them and tries again
// on new ports.
func (e *env) start(names ...string) {
	e.t.Helper()
	for try := 0; ; try++ {
		err := e.startOnce(names...)
		if err == nil {
			return
		}
		e.killAll()
		e.reap()
		if try == 3 {
			e.logMu.Lock()
			for d, b := range e.logs {
				e.t.Logf("--- %s log:\n%s", d, tail(b.String(), 4000))
			}
			e.logMu.Unlock()
			e.t.Fatal(err)
		}
		e.writeConfig()
	}
}

func (e *env) startOnce(names ...string) error {
	e.logMu.Lock()
	e.logs = map[string]*bytes.Buffer{}
	e.logMu.Unlock()
	// A power cut starts a new boot: the daemons read a fresh boot id
	// (tern's change log trusts unsynced lines written in the same boot,
	// which a process crash keeps and a power cut does not).
	boot := filepath.Join(e.dir, "boot_id")
	writeFile(e.t, boot, fmt.Sprintf("%08x-0000-4000-8000-%012x\n", e.rounds, e.rng.Uint64()&(1<<48-1)))
	var wg sync.WaitGroup
	errs := make(chan error, len(names))
	for _, name := range names {
		cmd := exec.Command("unshare", "--mount", "--propagation", "private", "--",
			"sh", "-c", `mount --bind "$0" /proc/sys/kernel/random/boot_id && exec "$@"`,
			boot, filepath.Join(e.bin, name), "-config", e.config)
		cmd.Dir = e.dir
		buf := &bytes.Buffer{}
		e.logMu.Lock()
		e.logs[name] = buf
		e.logMu.Unlock()
		w := &lockedWriter{mu: &e.logMu, b: buf}
		cmd.Stdout, cmd.Stderr = w, w
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("start %s: %w", name, err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		e.procs[name] = &proc{cmd: cmd, exited: exited}
		var addr string
		switch name {
		case "smtpd":
			addr = e.mx
		case "lmtpd":
			addr = "unix:" + e.lmtp
		case "imapd":
			addr = e.imap
		case "pop3d":
			addr = e.pop3
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- waitListening(addr, exited)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// proc is a running daemon; exited is closed once it is reaped.
type proc struct {
	cmd    *exec.Cmd
	exited chan struct{}
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func waitListening(addr string, exited <-chan struct{}) error {
	network, a := "tcp", addr
	if p, ok := strings.CutPrefix(addr, "unix:"); ok {
		network, a = "unix", p
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("daemon for %s exited at start", addr)
		default:
		}
		if c, err := net.DialTimeout(network, a, time.Second); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	return fmt.Errorf("nothing listens on %s", addr)
}

// killAll sends SIGKILL to every daemon (no cleanup, as a power cut).
func (e *env) killAll() {
	for _, p := range e.procs {
		p.cmd.Process.Signal(syscall.SIGKILL)
	}
}

// reap waits until the killed daemons are gone.
func (e *env) reap() {
	for name, p := range e.procs {
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			e.t.Errorf("%s still running 10 s after SIGKILL", name)
		}
		delete(e.procs, name)
	}
}

// stop stops every daemon cleanly (SIGTERM).
func (e *env) stop() {
	for _, p := range e.procs {
		p.cmd.Process.Signal(syscall.SIGTERM)
	}
	for name, p := range e.procs {
		select {
		case <-p.exited:
		case <-time.After(15 * time.Second):
			p.cmd.Process.Kill()
			<-p.exited
			e.t.Errorf("%s did not stop within 15 s of SIGTERM", name)
		}
		delete(e.procs, name)
	}
}

// next unmounts after a cut and writes the next disk from the image.
func (e *env) next(img *crashfs.Image) {
	e.t.Helper()
	t0 := time.Now()
	if err := e.cfs.Unmount(); err != nil {
		e.t.Logf("unmount: %v", err)
	}
	if os.Getenv("TERN_POWERCUT_TIMING") != "" {
		defer func(t1 time.Time) { e.t.Logf("unmount %v write+remove %v", t1.Sub(t0), time.Since(t1)) }(time.Now())
	}
	e.cfs = nil
	e.rounds++
	next := filepath.Join(e.disks, fmt.Sprintf("disk-%d", e.rounds))
	if err := os.Mkdir(next, 0o700); err != nil {
		e.t.Fatal(err)
	}
	if err := img.WriteTo(next); err != nil {
		e.t.Fatal(err)
	}
	if keep := os.Getenv("TERN_POWERCUT_KEEP"); keep != "" {
		os.Rename(e.disk, filepath.Join(keep, filepath.Base(e.disk)))
	} else {
		e.removing.Add(1)
		go func(old string) {
			defer e.removing.Done()
			os.RemoveAll(old)
		}(e.disk)
	}
	e.disk = next
}

// shutdown stops the daemons cleanly and unmounts: everything on the
// disk stays (a clean shutdown with sync).
func (e *env) shutdown() {
	e.stop()
	if err := e.cfs.Unmount(); err != nil {
		e.t.Logf("unmount: %v", err)
	}
	e.cfs = nil
}

// queued lists the queue ids mailq shows.
func (e *env) queued() map[string]bool {
	e.t.Helper()
	out, err := exec.Command(filepath.Join(e.bin, "mailq"), "-config", e.config, "-json").Output()
	if err != nil {
		e.t.Fatalf("mailq -json: %v", err)
	}
	ids := map[string]bool{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var m struct {
			QueueID string `json:"queue_id"`
		}
		if err := dec.Decode(&m); err != nil {
			e.t.Fatalf("mailq -json: %v", err)
		}
		ids[m.QueueID] = true
	}
	return ids
}

func writeFile(t *testing.T, p, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func deadUDP(t *testing.T) string {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().String()
}
