package listen

import (
	"fmt"
	"net"
	"os"
	"strings"
)

// Prebind opens addrs while the daemon still runs as root, before it drops
// to its configured user (common/daemon does this). The sockets wait here
// and Listen hands each out when the daemon asks for its address, so the
// daemon's own code is the same as with socket activation or without root.
// Everything else the daemon creates (queue directories, state files) is
// then created after the drop, owned by the right user. Unix socket files
// are given to uid and gid so the daemon can still set their mode.
func Prebind(addrs []string, uid, gid int) error {
	var opened []net.Listener
	for _, a := range addrs {
		if a == "" {
			continue
		}
		l, err := open(a)
		if err != nil {
			for _, l := range opened {
				l.Close()
			}
			return err
		}
		opened = append(opened, l)
		if p, ok := strings.CutPrefix(a, "unix:"); ok {
			if err := os.Lchown(p, uid, gid); err != nil {
				for _, l := range opened {
					l.Close()
				}
				return fmt.Errorf("prebind %s: %w", a, err)
			}
		}
		inheritMu.Lock()
		prebound[a] = append(prebound[a], l)
		inheritMu.Unlock()
	}
	return nil
}

// prebound holds Prebind's sockets by the address string they were opened
// for; inheritMu guards it.
var prebound = map[string][]net.Listener{}

// takePrebound returns and removes a socket Prebind opened for addr.
func takePrebound(addr string) net.Listener {
	inheritMu.Lock()
	defer inheritMu.Unlock()
	ls := prebound[addr]
	if len(ls) == 0 {
		return nil
	}
	prebound[addr] = ls[1:]
	return ls[0]
}
