package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// postfixSys is a private Postfix instance: its own config_directory,
// queue_directory and data_directory under the temporary directory, one
// smtpd on a loopback port, no chroot. It is started with `postfix -c DIR`
// and never reads or changes /etc/postfix.
//
// With lmtpNext empty it delivers with local(8) into a Maildir:
// mail_spool_directory ends in "/", which makes local(8) write
// SPOOL/ternbench/{tmp,new,cur} as the Unix user ternbench. Otherwise it
// hands local mail to Dovecot's LMTP at lmtpNext, as
// `local_transport = lmtp:inet:...` does in a Postfix + Dovecot install.
type postfixSys struct {
	name, dir, conf string
	port            int
	uid, gid        int
	lmtp            bool
}

func newPostfix(ctx context.Context, dir, name, lmtpNext string, uid, gid int, cl *cleanups) (*postfixSys, error) {
	p := &postfixSys{name: name, dir: dir, conf: filepath.Join(dir, "etc"), uid: uid, gid: gid, lmtp: lmtpNext != ""}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	p.port = port
	for _, d := range []string{"etc", "queue", "data", "spool"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, fmt.Errorf("make postfix dir: %w", err)
		}
	}
	pfUID, pfGID, err := lookupIDs("postfix")
	if err != nil {
		return nil, err
	}
	if err := os.Chown(filepath.Join(dir, "data"), pfUID, pfGID); err != nil {
		return nil, fmt.Errorf("chown postfix data_directory: %w", err)
	}
	if err := os.Chown(filepath.Join(dir, "spool"), uid, gid); err != nil {
		return nil, fmt.Errorf("chown postfix spool: %w", err)
	}
	delivery := fmt.Sprintf("mail_spool_directory = %s/spool/\nhome_mailbox =\nmailbox_command =\n", dir)
	if p.lmtp {
		delivery = fmt.Sprintf("local_transport = lmtp:inet:%s\nlocal_recipient_maps =\n", lmtpNext)
	}
	// Debian's defaults otherwise: queue files are fsynced before 250,
	// local_destination_concurrency_limit = 2.
	mainCF := fmt.Sprintf(`# Postfix under ternbench (private instance).
compatibility_level = 3.6
queue_directory = %[1]s/queue
data_directory = %[1]s/data
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = %[2]s.bench.%[3]s
mydomain = %[3]s
mydestination = %[3]s
mynetworks = 127.0.0.0/8
alias_maps =
alias_database =
biff = no
smtpd_banner = $myhostname ESMTP
maillog_file = %[1]s/postfix.log
%[4]s`, dir, name, benchDomain, delivery)
	masterCF := fmt.Sprintf(`# Postfix under ternbench: no chroot, one smtpd on loopback.
127.0.0.1:%d inet n - n - - smtpd
pickup     unix  n - n 60 1 pickup
cleanup    unix  n - n -  0 cleanup
qmgr       unix  n - n 300 1 qmgr
rewrite    unix  - - n -  - trivial-rewrite
bounce     unix  - - n -  0 bounce
defer      unix  - - n -  0 bounce
trace      unix  - - n -  0 bounce
verify     unix  - - n -  1 verify
flush      unix  n - n 1000? 0 flush
proxymap   unix  - - n -  - proxymap
proxywrite unix  - - n -  1 proxymap
smtp       unix  - - n -  - smtp
relay      unix  - - n -  - smtp
showq      unix  n - n -  - showq
error      unix  - - n -  - error
retry      unix  - - n -  - error
discard    unix  - - n -  - discard
local      unix  - n n -  - local
lmtp       unix  - - n -  - lmtp
anvil      unix  - - n -  1 anvil
scache     unix  - - n -  1 scache
postlog    unix-dgram n - n - 1 postlogd
`, p.port)
	if err := os.WriteFile(filepath.Join(p.conf, "main.cf"), []byte(mainCF), 0o644); err != nil {
		return nil, fmt.Errorf("write main.cf: %w", err)
	}
	if err := os.WriteFile(filepath.Join(p.conf, "master.cf"), []byte(masterCF), 0o644); err != nil {
		return nil, fmt.Errorf("write master.cf: %w", err)
	}
	cl.add("stop postfix "+name, p.stop)
	if err := run(ctx, "postfix", "-c", p.conf, "start"); err != nil {
		return nil, fmt.Errorf("%w (log: %s)", err, tail(readFile(filepath.Join(dir, "postfix.log")), 800))
	}
	if err := waitDial(ctx, p.addr(), nil, 15*time.Second); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *postfixSys) addr() string { return fmt.Sprintf("127.0.0.1:%d", p.port) }

// maildir is where local(8) delivers for the Unix user.
func (p *postfixSys) maildir() string { return filepath.Join(p.dir, "spool", benchUser) }

// stop stops the instance with `postfix stop`, then makes sure: the master
// leads its own session, so killing its process group takes every child.
func (p *postfixSys) stop() {
	pid := p.masterPID()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := run(ctx, "postfix", "-c", p.conf, "stop"); err != nil {
		logf("postfix %s: %v", p.name, err)
	}
	if pid <= 0 {
		return
	}
	for i := 0; i < 100 && syscall.Kill(pid, 0) == nil; i++ {
		time.Sleep(50 * time.Millisecond)
	}
	if syscall.Kill(pid, 0) == nil {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
}

func (p *postfixSys) masterPID() int {
	b, err := os.ReadFile(filepath.Join(p.dir, "queue", "pid", "master.pid"))
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

// queueEmpty reports whether no message is left in Postfix's queue.
func (p *postfixSys) queueEmpty() bool {
	for _, q := range []string{"incoming", "active", "deferred"} {
		n := 0
		_ = filepath.WalkDir(filepath.Join(p.dir, "queue", q), func(_ string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				n++
			}
			return nil
		})
		if n > 0 {
			return false
		}
	}
	return true
}

func lookupIDs(name string) (uid, gid int, err error) {
	for _, l := range strings.Split(readFile("/etc/passwd"), "\n") {
		f := strings.Split(l, ":")
		if len(f) > 3 && f[0] == name {
			uid, _ = strconv.Atoi(f[2])
			gid, _ = strconv.Atoi(f[3])
			return uid, gid, nil
		}
	}
	return 0, 0, fmt.Errorf("no user %q in /etc/passwd", name)
}
