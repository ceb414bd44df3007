package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// dovecotSys is a private Dovecot: its own base_dir, state_dir and log,
// IMAP, POP3 and LMTP on loopback ports, users in a passwd-file, Maildirs
// owned by the Unix user ternbench. Started with `dovecot -F -c FILE` as a
// child of the harness; it never reads /etc/dovecot.
type dovecotSys struct {
	dir, conf        string
	imap, pop3, lmtp int
	uid, gid         int
	hibernate        time.Duration
	p                *proc
}

func newDovecot(ctx context.Context, dir string, users []string, uid, gid, maxConns int, cl *cleanups) (*dovecotSys, error) {
	d := &dovecotSys{dir: dir, conf: filepath.Join(dir, "dovecot.conf"), uid: uid, gid: gid, hibernate: 2 * time.Second}
	for _, p := range []*int{&d.imap, &d.pop3, &d.lmtp} {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		*p = port
	}
	for _, sub := range []string{"run", "state", "home"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return nil, fmt.Errorf("make dovecot dir: %w", err)
		}
	}
	var pw strings.Builder
	for _, u := range users {
		home := d.home(u)
		if err := os.MkdirAll(home, 0o755); err != nil {
			return nil, fmt.Errorf("make dovecot home: %w", err)
		}
		if err := os.Chown(home, uid, gid); err != nil {
			return nil, fmt.Errorf("chown dovecot home: %w", err)
		}
		fmt.Fprintf(&pw, "%s@%s:{PLAIN}%s:%d:%d::%s\n", u, benchDomain, benchPassword, uid, gid, home)
	}
	if err := os.WriteFile(filepath.Join(dir, "passwd"), []byte(pw.String()), 0o644); err != nil {
		return nil, fmt.Errorf("write dovecot passwd: %w", err)
	}
	procs := maxConns + 100
	conf := fmt.Sprintf(`# Dovecot under ternbench (private instance).
base_dir = %[1]s/run
state_dir = %[1]s/state
instance_name = ternbench
log_path = %[1]s/dovecot.log
protocols = imap pop3 lmtp
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:~/Maildir
# Durability equal to tern's: fsync a message before it is acknowledged.
mail_fsync = optimized
first_valid_uid = 1
default_internal_user = dovecot
default_internal_group = dovecot
default_login_user = dovenull
mail_max_userip_connections = %[5]d
# Idle IMAP sessions move into the shared imap-hibernate process, which is
# how Dovecot is meant to hold many IDLE clients.
imap_hibernate_timeout = %[6]ds
lmtp_save_to_detail_mailbox = no

# Login processes in "high-performance" mode, one per core.
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = %[2]d
  }
  inet_listener imaps {
    port = 0
  }
  service_count = 0
  process_min_avail = %[7]d
  client_limit = %[5]d
}
service pop3-login {
  inet_listener pop3 {
    address = 127.0.0.1
    port = %[3]d
  }
  inet_listener pop3s {
    port = 0
  }
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = %[4]d
  }
  unix_listener lmtp {
    mode = 0666
  }
}
service imap {
  process_limit = %[5]d
  unix_listener imap-master {
    user = dovecot
  }
}
service imap-hibernate {
  unix_listener imap-hibernate {
    mode = 0666
  }
  client_limit = %[5]d
}
service auth {
  client_limit = %[8]d
}
service anvil {
  client_limit = %[8]d
}
protocol lmtp {
  postmaster_address = postmaster@%[9]s
}
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%%u %[1]s/passwd
}
userdb {
  driver = passwd-file
  args = username_format=%%u %[1]s/passwd
}
`, dir, d.imap, d.pop3, d.lmtp, procs, int(d.hibernate/time.Second), 2, 3*procs, benchDomain)
	if err := os.WriteFile(d.conf, []byte(conf), 0o644); err != nil {
		return nil, fmt.Errorf("write dovecot.conf: %w", err)
	}
	p, err := startProc("dovecot", filepath.Join(dir, "dovecot.stderr"), nil, "dovecot", "-F", "-c", d.conf)
	if err != nil {
		return nil, err
	}
	d.p = p
	cl.add("stop dovecot", func() { p.stop(10 * time.Second) })
	for _, port := range []int{d.imap, d.pop3, d.lmtp} {
		if err := waitDial(ctx, fmt.Sprintf("127.0.0.1:%d", port), p, 20*time.Second); err != nil {
			return nil, fmt.Errorf("%w (log: %s)", err, tail(readFile(filepath.Join(dir, "dovecot.log")), 800))
		}
	}
	return d, nil
}

func (d *dovecotSys) home(user string) string { return filepath.Join(d.dir, "home", user) }

func (d *dovecotSys) maildir(user string) string { return filepath.Join(d.home(user), "Maildir") }

// mem is the memory of the master and every process it started.
func (d *dovecotSys) mem() (memUse, error) { return treeMem(d.p.pid()) }
