package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// ternSys is a tern installation in a temporary directory: one tern.toml,
// the users file, and the daemons started from the built binaries. Daemons
// are started afresh for every measured run, so that one run's caches and
// profiles do not leak into the next.
type ternSys struct {
	bin, dir, conf string
	smtp, lmtp     int // TCP ports of smtpd's MX listener and lmtpd
	imap, pop3     int
	lmtpSock       string
	procs          map[string]*proc
	pprof          map[string]string // daemon → TERN_PPROF address
	cl             *cleanups
}

func newTern(dir, bin string, users []string, cl *cleanups) (*ternSys, error) {
	t := &ternSys{bin: bin, dir: dir, conf: filepath.Join(dir, "tern.toml"),
		procs: map[string]*proc{}, pprof: map[string]string{}, cl: cl}
	for _, p := range []*int{&t.smtp, &t.lmtp, &t.imap, &t.pop3} {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		*p = port
	}
	for _, d := range []string{"run", "vmail", "spool", "tls", "log"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, fmt.Errorf("make tern dir: %w", err)
		}
	}
	t.lmtpSock = filepath.Join(dir, "run", "lmtp.sock")
	// The peers get the same users, passwords in the clear on both sides:
	// the bench measures mail handling, not password hashing.
	var u strings.Builder
	for _, name := range users {
		fmt.Fprintf(&u, "%s@%s:{PLAIN}%s\n", name, benchDomain, benchPassword)
	}
	if err := os.WriteFile(filepath.Join(dir, "users"), []byte(u.String()), 0o644); err != nil {
		return nil, fmt.Errorf("write tern users: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "aliases"), nil, 0o644); err != nil {
		return nil, fmt.Errorf("write tern aliases: %w", err)
	}
	conf := fmt.Sprintf(`# tern under ternbench: loopback only, limits raised for the loads.
hostname  = "bench.%[1]s"
domains   = ["%[1]s"]
users     = "%[2]s/users"
aliases   = "%[2]s/aliases"
maildir   = "%[2]s/vmail/%%d/%%n/Maildir"
state_dir = "%[2]s/spool"
runtime_dir = "%[2]s/run"

[log]
level = "warn"

[tls]
cert     = "%[2]s/tls/fullchain.pem"
key      = "%[2]s/tls/privkey.pem"
generate = true

[smtpd]
mx          = ["127.0.0.1:%[3]d"]
submission  = []
submissions = []
lmtp        = "unix:%[4]s"
# Postfix checks no SPF, DKIM or DMARC out of the box; neither does tern
# here, so that both do the same work (and no DNS lookups) per message.
inbound_auth = false
max_connections        = 1000
max_connections_per_ip = 1000

[lmtpd]
listen = ["unix:%[4]s", "127.0.0.1:%[5]d"]
sieve  = "%[2]s/vmail/%%d/%%n/sieve/active.sieve"

[imapd]
listen     = ["127.0.0.1:%[6]d"]
tls_listen = []
max_connections          = 20000
max_connections_per_ip   = 20000
max_connections_per_user = 20000

[pop3d]
listen     = ["127.0.0.1:%[7]d"]
tls_listen = []
max_connections        = 1000
max_connections_per_ip = 1000
`, benchDomain, dir, t.smtp, t.lmtpSock, t.lmtp, t.imap, t.pop3)
	if err := os.WriteFile(t.conf, []byte(conf), 0o644); err != nil {
		return nil, fmt.Errorf("write tern.toml: %w", err)
	}
	cl.add("stop tern", t.stop)
	for _, d := range []string{"smtpd", "lmtpd", "imapd", "pop3d"} {
		if err := run(context.Background(), filepath.Join(bin, d), "-config", t.conf, "-check"); err != nil {
			return nil, fmt.Errorf("tern config: %w", err)
		}
	}
	return t, nil
}

// maildir is where tern keeps user's INBOX.
func (t *ternSys) maildir(user string) string {
	return filepath.Join(t.dir, "vmail", benchDomain, user, "Maildir")
}

// listenAddr is what waitDial should see before a daemon counts as up.
func (t *ternSys) listenAddr(daemon string) string {
	switch daemon {
	case "smtpd":
		return fmt.Sprintf("127.0.0.1:%d", t.smtp)
	case "lmtpd":
		return fmt.Sprintf("127.0.0.1:%d", t.lmtp)
	case "imapd":
		return fmt.Sprintf("127.0.0.1:%d", t.imap)
	default:
		return fmt.Sprintf("127.0.0.1:%d", t.pop3)
	}
}

// start starts the named daemons (lmtpd before smtpd) and waits for their
// listeners. With profiling on, each gets TERN_PPROF, the address on which
// the daemon serves net/http/pprof when it supports that.
func (t *ternSys) start(ctx context.Context, profile bool, daemons ...string) error {
	for _, d := range daemons {
		var env []string
		if profile {
			port, err := freePort()
			if err != nil {
				return err
			}
			t.pprof[d] = fmt.Sprintf("127.0.0.1:%d", port)
			env = append(env, "TERN_PPROF="+t.pprof[d])
		}
		p, err := startProc("tern "+d, filepath.Join(t.dir, "log", d+".log"), env,
			filepath.Join(t.bin, d), "-config", t.conf)
		if err != nil {
			return err
		}
		t.procs[d] = p
		if err := waitDial(ctx, t.listenAddr(d), p, 15*time.Second); err != nil {
			return fmt.Errorf("%w (log: %s)", err, tail(readFile(filepath.Join(t.dir, "log", d+".log")), 800))
		}
		if d == "lmtpd" {
			if err := waitDial(ctx, "unix:"+t.lmtpSock, p, 15*time.Second); err != nil {
				return err
			}
		}
	}
	return nil
}

// stop stops every running daemon; tern answers SIGTERM within
// daemon.ShutdownGrace.
func (t *ternSys) stop() {
	for d, p := range t.procs {
		p.stop(6 * time.Second)
		delete(t.procs, d)
	}
	t.pprof = map[string]string{}
}

func (t *ternSys) pid(daemon string) int {
	if p := t.procs[daemon]; p != nil {
		return p.pid()
	}
	return 0
}
