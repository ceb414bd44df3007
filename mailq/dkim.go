package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"tern/common/config"
	"tern/common/dkim"
)

// dkimKeygen is `mailq -dkim-keygen DOMAIN`: it makes a new DKIM key for a
// local domain at the [dkim] key path and prints the DNS TXT record that
// publishes it, ready for a zone file. An existing key is never replaced:
// rotating a key means a new selector, published before the old record is
// withdrawn (RFC 6376 3.1), which is the admin's to plan.
//
// Run by root, the key file is given to the owner of the queue directory
// (the user tern-smtpd runs as), who must read it; it stays mode 0600.
func dkimKeygen(cfg *config.Config, domain, alg string, stdout, stderr io.Writer) int {
	if !cfg.IsLocalDomain(domain) {
		fmt.Fprintf(stderr, "mailq: %s is not one of the local domains %v\n", domain, cfg.Domains)
		return exUsage
	}
	if alg != "rsa" && alg != "ed25519" {
		fmt.Fprintf(stderr, "mailq: -dkim-alg must be rsa or ed25519, not %q\n", alg)
		return exUsage
	}
	path := dkim.KeyPath(cfg.DKIM.Key, domain)
	if _, err := os.Stat(path); err == nil {
		fmt.Fprintf(stderr, "mailq: %s exists; a new key needs a new selector and file (see tern-mailq(1))\n", path)
		return exNoPerm
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		fmt.Fprintf(stderr, "mailq: %v\n", err)
		return exIOErr
	}
	key, pemData, err := dkim.GenerateKey(alg)
	if err != nil {
		fmt.Fprintf(stderr, "mailq: %v\n", err)
		return exSoftware
	}
	if err := dkim.WriteKey(path, pemData); err != nil {
		fmt.Fprintf(stderr, "mailq: %v\n", err)
		if errors.Is(err, fs.ErrPermission) {
			return exNoPerm
		}
		return exIOErr
	}
	if err := giveToQueueOwner(cfg, path); err != nil {
		fmt.Fprintf(stderr, "mailq: warning: %v; make sure tern-smtpd can read %s\n", err, path)
	}
	record, err := dkim.TXTRecord(key)
	if err != nil {
		fmt.Fprintf(stderr, "mailq: %v\n", err)
		return exSoftware
	}
	fmt.Fprintf(stderr, "mailq: wrote the %s key of %s to %s\n", alg, domain, path)
	fmt.Fprintf(stdout, "; publish in the DNS zone of %s, then mail from it is signed (selector %q)\n", domain, cfg.DKIM.Selector)
	fmt.Fprintln(stdout, dkim.ZoneLines(cfg.DKIM.Selector, domain, record))
	return exOK
}

// giveToQueueOwner chowns path to the owner of the queue directory when
// run by root, so that tern-smtpd can read the key.
func giveToQueueOwner(cfg *config.Config, path string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	fi, err := os.Stat(filepath.Join(cfg.StateDir, "queue"))
	if err != nil {
		return fmt.Errorf("cannot find tern-smtpd's user (no queue yet): %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || st.Uid == 0 {
		return nil
	}
	if err := os.Chown(path, int(st.Uid), int(st.Gid)); err != nil {
		return fmt.Errorf("give the key to tern-smtpd's user: %w", err)
	}
	return os.Chown(filepath.Dir(path), int(st.Uid), int(st.Gid))
}
