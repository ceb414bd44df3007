package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"
)

// profiler collects pprof profiles of tern's daemons during one load. A
// daemon serves net/http/pprof on the address in its TERN_PPROF variable;
// the Go CPU profile endpoint records for a fixed time, so the load is
// covered by back-to-back one-second profiles merged at the end with
// `go tool pprof -proto`. The allocation profile (cumulative since the
// daemon started, and each daemon starts with the load) is taken when the
// load ends.
type profiler struct {
	dir    string
	prefix string
	addrs  map[string]string
	cancel context.CancelFunc
	wg     sync.WaitGroup
	chunks map[string][]string
	mu     sync.Mutex
}

var slugRE = regexp.MustCompile(`[^a-z0-9]+`)

func slug(s string) string {
	return strings.Trim(slugRE.ReplaceAllString(strings.ToLower(s), "-"), "-")
}

// startProfiles begins CPU profiling of every daemon in addrs.
func startProfiles(dir, load string, addrs map[string]string) *profiler {
	ctx, cancel := context.WithCancel(context.Background())
	p := &profiler{dir: dir, prefix: slug(load), addrs: addrs, cancel: cancel, chunks: map[string][]string{}}
	for d, addr := range addrs {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				path := filepath.Join(dir, fmt.Sprintf(".%s-%s-cpu-%03d.pb.gz", p.prefix, d, i))
				if err := fetch(ctx, "http://"+addr+"/debug/pprof/profile?seconds=1", path); err != nil {
					if ctx.Err() == nil && i == 0 {
						logf("profile %s: %v (does the daemon support TERN_PPROF?)", d, err)
					}
					if ctx.Err() == nil {
						// Not supported, or the daemon is gone: stop asking.
						return
					}
					return
				}
				p.mu.Lock()
				p.chunks[d] = append(p.chunks[d], path)
				p.mu.Unlock()
			}
		}()
	}
	return p
}

// finish takes the allocation profiles and merges the CPU chunks.
func (p *profiler) finish() {
	if p == nil {
		return
	}
	for d, addr := range p.addrs {
		path := filepath.Join(p.dir, fmt.Sprintf("%s-%s-allocs.pb.gz", p.prefix, d))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := fetch(ctx, "http://"+addr+"/debug/pprof/allocs", path); err != nil {
			os.Remove(path)
		}
		cancel()
	}
	p.cancel()
	p.wg.Wait()
	for d, chunks := range p.chunks {
		if len(chunks) == 0 {
			continue
		}
		out := filepath.Join(p.dir, fmt.Sprintf("%s-%s-cpu.pb.gz", p.prefix, d))
		f, err := os.Create(out)
		if err != nil {
			continue
		}
		cmd := exec.Command("go", append([]string{"tool", "pprof", "-proto"}, chunks...)...)
		cmd.Stdout = f
		err = cmd.Run()
		f.Close()
		if err != nil {
			// Keep the chunks when they cannot be merged.
			os.Remove(out)
			for i, c := range chunks {
				_ = os.Rename(c, filepath.Join(p.dir, fmt.Sprintf("%s-%s-cpu-%03d.pb.gz", p.prefix, d, i)))
			}
			continue
		}
		for _, c := range chunks {
			os.Remove(c)
		}
	}
}

func fetch(ctx context.Context, url, path string) error {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	return f.Close()
}

// pprofHook is added to each daemon's package main at build time (go build
// -overlay), so that profiles can be taken without changing tern's code: it
// serves net/http/pprof on $TERN_PPROF when that is set.
const pprofHook = `package main

import (
	"net/http"
	_ "net/http/pprof"
	"os"
)

func init() {
	if addr := os.Getenv("TERN_PPROF"); addr != "" {
		go func() { _ = http.ListenAndServe(addr, nil) }()
	}
}
`

// buildProfiling builds the daemons from the source tree at src into dir
// with pprofHook added, and returns dir.
func buildProfiling(ctx context.Context, src, dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("make %s: %w", dir, err)
	}
	hook := filepath.Join(dir, "pprof_hook.go")
	if err := os.WriteFile(hook, []byte(pprofHook), 0o644); err != nil {
		return "", fmt.Errorf("write pprof hook: %w", err)
	}
	overlay := `{"Replace":{`
	for i, d := range []string{"smtpd", "lmtpd", "imapd", "pop3d"} {
		if i > 0 {
			overlay += ","
		}
		abs, err := filepath.Abs(filepath.Join(src, d, "zz_ternbench_pprof.go"))
		if err != nil {
			return "", err
		}
		overlay += fmt.Sprintf("%q:%q", abs, hook)
	}
	overlay += "}}"
	ovPath := filepath.Join(dir, "overlay.json")
	if err := os.WriteFile(ovPath, []byte(overlay), 0o644); err != nil {
		return "", fmt.Errorf("write overlay: %w", err)
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-overlay", ovPath, "-o", dir+"/", "./smtpd", "./lmtpd", "./imapd", "./pop3d")
	cmd.Dir = src
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build profiling daemons: %w: %s", err, tail(string(out), 1000))
	}
	return dir, nil
}

// withTern runs body against freshly started tern daemons and stops them
// afterwards. The first round of each load is profiled when asked for.
func (b *bench) withTern(ctx context.Context, load string, round int, daemons []string, body func(context.Context) (float64, error)) (float64, error) {
	profile := b.opt.profile && round == 0
	if err := b.tern.start(ctx, profile, daemons...); err != nil {
		b.tern.stop()
		return 0, err
	}
	defer b.tern.stop()
	var prof *profiler
	if profile {
		prof = startProfiles(b.profDir, load, b.tern.pprof)
	}
	v, err := body(ctx)
	prof.finish()
	return v, err
}
