package listen

import (
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// Socket activation (sd_listen_fds(3)): when systemd (or any supervisor
// following the same protocol) opened the sockets, the daemon receives them
// as file descriptors 3, 4, … with LISTEN_PID and LISTEN_FDS set. Listen
// hands out an inherited socket whose address matches the configured one, so
// the same tern.toml works with and without activation, and no daemon needs
// root to bind a port below 1024.

const firstInheritedFD = 3

var (
	inheritOnce sync.Once
	inheritMu   sync.Mutex
	inherited   []net.Listener
)

func loadInherited() {
	if os.Getenv("LISTEN_PID") != strconv.Itoa(os.Getpid()) {
		return
	}
	n, err := strconv.Atoi(os.Getenv("LISTEN_FDS"))
	if err != nil || n <= 0 {
		return
	}
	for fd := firstInheritedFD; fd < firstInheritedFD+n; fd++ {
		syscall.CloseOnExec(fd)
		f := os.NewFile(uintptr(fd), "listen-fd-"+strconv.Itoa(fd))
		l, err := net.FileListener(f)
		f.Close()
		if err == nil {
			inherited = append(inherited, l)
		}
	}
	// Children must not think the sockets are theirs.
	os.Unsetenv("LISTEN_PID")
	os.Unsetenv("LISTEN_FDS")
	os.Unsetenv("LISTEN_FDNAMES")
}

// takeInherited returns and removes the inherited listener for addr.
func takeInherited(addr string) net.Listener {
	inheritOnce.Do(loadInherited)
	inheritMu.Lock()
	defer inheritMu.Unlock()
	for i, l := range inherited {
		if sameAddr(l.Addr(), addr) {
			inherited = append(inherited[:i], inherited[i+1:]...)
			return l
		}
	}
	return nil
}

func sameAddr(a net.Addr, want string) bool {
	if p, ok := strings.CutPrefix(want, "unix:"); ok {
		return a.Network() == "unix" && a.String() == p
	}
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return false
	}
	host, port, err := net.SplitHostPort(want)
	if err != nil || strconv.Itoa(ta.Port) != port {
		return false
	}
	ip := net.ParseIP(host)
	if host == "" || (ip != nil && ip.IsUnspecified()) {
		return ta.IP.IsUnspecified()
	}
	return ip != nil && ip.Equal(ta.IP)
}
