// Package listen opens the listeners named in tern.toml ("host:port" or
// "unix:/path") and serves connections on them with a bound on how many run
// at once.
package listen

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
)

// Listen opens addr, or takes the socket for it that systemd passed in
// (socket activation, see activation.go). For a unix socket a stale socket file left by a
// previous run is removed first, the parent directory is created, and the
// socket is made group-writable so that a peer daemon in the group can
// connect.
//
// After CountConnections, the listener returned counts its connections
// (count.go).
func Listen(addr string) (net.Listener, error) {
	l, err := open(addr)
	if err != nil {
		return nil, err
	}
	return counted(addr, l), nil
}

// open is Listen without the counting, for Prebind, whose sockets Listen
// hands out (and wraps) later.
func open(addr string) (net.Listener, error) {
	if l := takePrebound(addr); l != nil {
		return l, nil
	}
	if l := takeInherited(addr); l != nil {
		return l, nil
	}
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, fmt.Errorf("listen %s: %w", addr, err)
		}
		if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
			// Only a socket nobody answers on is stale; never steal a live one.
			if c, err := net.Dial("unix", path); err == nil {
				c.Close()
				return nil, fmt.Errorf("listen %s: another process is listening", addr)
			}
			os.Remove(path)
		}
		l, err := net.Listen("unix", path)
		if err != nil {
			return nil, fmt.Errorf("listen %s: %w", addr, err)
		}
		if err := os.Chmod(path, 0o660); err != nil {
			l.Close()
			return nil, fmt.Errorf("listen %s: %w", addr, err)
		}
		return l, nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	return l, nil
}

// Dial connects to an address in the same syntax as Listen.
func Dial(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		return d.DialContext(ctx, "unix", path)
	}
	return d.DialContext(ctx, "tcp", addr)
}

// IsLoopback reports whether a connection comes from this machine: a unix
// socket or a loopback address. Plaintext passwords are allowed on such
// connections without TLS.
func IsLoopback(addr net.Addr) bool {
	switch a := addr.(type) {
	case *net.UnixAddr:
		return true
	case *net.TCPAddr:
		return a.IP.IsLoopback()
	}
	return false
}

// Group runs a set of servers and closes them together.
type Group struct {
	Log *slog.Logger

	wg   sync.WaitGroup
	mu   sync.Mutex
	errs []error
}

// Go runs serve in its own goroutine. A panic in it is logged, not fatal.
func (g *Group) Go(what string, serve func() error) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		defer Recover(g.Log, what)
		if err := serve(); err != nil && !errors.Is(err, net.ErrClosed) {
			g.mu.Lock()
			g.errs = append(g.errs, fmt.Errorf("%s: %w", what, err))
			g.mu.Unlock()
		}
	}()
}

// Wait waits for every server and returns their errors.
func (g *Group) Wait() error {
	g.wg.Wait()
	return errors.Join(g.errs...)
}

// Recover logs a panic in a goroutine that serves a connection, so that one
// bad session never takes the daemon down. Use as `defer listen.Recover(...)`.
func Recover(log *slog.Logger, what string) {
	if r := recover(); r != nil {
		log.Error("panic", "in", what, "panic", r, "stack", string(debug.Stack()))
	}
}
