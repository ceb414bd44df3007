package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is a child process the harness started and must stop. Each child
// gets its own process group, so that a Ctrl-C at the terminal reaches only
// the harness, which then stops the children in order, and so that stopping
// a child also stops whatever it forked.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
	once sync.Once
}

// startProc runs argv with its output appended to logPath.
func startProc(name, logPath string, env []string, argv ...string) (*proc, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open log of %s: %w", name, err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.Env = append(os.Environ(), env...)
	// Pdeathsig is the last line of defence: if the harness itself is
	// killed with SIGKILL, the kernel still stops its direct children.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the process group, waits up to grace, then kills the
// group. Only the first call acts: a process group id, once empty, may be
// reused by an unrelated process.
func (p *proc) stop(grace time.Duration) {
	p.once.Do(func() { p.stopOnce(grace) })
}

func (p *proc) stopOnce(grace time.Duration) {
	if p.exited() {
		return
	}
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
	// Children that outlived their parent in the same group.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}

// cleanups is the list of things to undo, run last-in first-out exactly
// once, on success, on failure and on Ctrl-C alike.
type cleanups struct {
	mu  sync.Mutex
	fns []cleanup
}

type cleanup struct {
	name string
	fn   func()
}

func (c *cleanups) add(name string, fn func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fns = append(c.fns, cleanup{name, fn})
}

func (c *cleanups) run() {
	for {
		c.mu.Lock()
		if len(c.fns) == 0 {
			c.mu.Unlock()
			return
		}
		f := c.fns[len(c.fns)-1]
		c.fns = c.fns[:len(c.fns)-1]
		c.mu.Unlock()
		logf("cleanup: %s", f.name)
		f.fn()
	}
}

// freePort asks the kernel for an unused loopback port. Another program
// could take it before the server binds it; the machine is shared, so a
// server that fails to bind is reported as such rather than retried.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitDial waits until addr ("host:port" or "unix:/path") accepts
// connections, or p (if not nil) exits, or timeout passes.
func waitDial(ctx context.Context, addr string, p *proc, timeout time.Duration) error {
	network, a := "tcp", addr
	if s, ok := strings.CutPrefix(addr, "unix:"); ok {
		network, a = "unix", s
	}
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout(network, a, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if p != nil && p.exited() {
			return fmt.Errorf("%s exited before listening on %s: %v", p.name, addr, p.err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listens on %s after %v: %w", addr, timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// procStatusKB reads a "Name:   N kB" line of /proc/PID/status.
func procStatusKB(pid int, field string) (int64, error) {
	return procFileKB(filepath.Join("/proc", strconv.Itoa(pid), "status"), field)
}

func procFileKB(path, field string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || k != field {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse %s in %s: %w", field, path, err)
		}
		return n, nil
	}
	return 0, fmt.Errorf("%s: no %s", path, field)
}

// memUse is resident memory of a set of processes.
type memUse struct {
	Procs int
	RSSKB int64 // sum of VmRSS: counts shared pages once per process
	PSSKB int64 // sum of Pss: shared pages divided among their users
}

// treeMem sums the memory of root and all its descendants.
func treeMem(root int) (memUse, error) {
	pids, err := descendants(root)
	if err != nil {
		return memUse{}, err
	}
	var m memUse
	for _, pid := range append([]int{root}, pids...) {
		rss, err := procStatusKB(pid, "VmRSS")
		if err != nil {
			continue // exited meanwhile
		}
		m.Procs++
		m.RSSKB += rss
		if pss, err := procFileKB(filepath.Join("/proc", strconv.Itoa(pid), "smaps_rollup"), "Pss"); err == nil {
			m.PSSKB += pss
		}
	}
	if m.Procs == 0 {
		return m, fmt.Errorf("process %d is gone", root)
	}
	return m, nil
}

// descendants lists every process below root, from /proc/*/stat.
func descendants(root int) ([]int, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	children := map[int][]int{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// The command name is in parentheses and may contain spaces.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		children[ppid] = append(children[ppid], pid)
	}
	var out []int
	queue := []int{root}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out, nil
}

// run runs a command to completion and returns its combined output in the
// error when it fails.
func run(ctx context.Context, argv ...string) error {
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
