package listen

import (
	"net"
	"os"
	"path/filepath"
	"testing"
)

func TestUnixSocketStaleAndLive(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run", "x.sock")
	l, err := Listen("unix:" + path)
	if err != nil {
		t.Fatal(err)
	}
	// A live socket must not be stolen by a second daemon.
	if _, err := Listen("unix:" + path); err == nil {
		t.Fatal("second listener on a live socket succeeded")
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o660 {
		t.Fatalf("socket mode: %v %v", fi, err)
	}
	// Leave a stale socket file behind, as a crashed daemon would.
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	l2, err := Listen("unix:" + path)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	l2.Close()
}

func TestIsLoopback(t *testing.T) {
	cases := map[net.Addr]bool{
		&net.TCPAddr{IP: net.ParseIP("127.0.0.1")}:   true,
		&net.TCPAddr{IP: net.ParseIP("::1")}:         true,
		&net.TCPAddr{IP: net.ParseIP("192.0.2.1")}:   false,
		&net.UnixAddr{Name: "/run/x", Net: "unix"}:   true,
		&net.TCPAddr{IP: net.ParseIP("127.8.9.10")}:  true,
		&net.TCPAddr{IP: net.ParseIP("2001:db8::1")}: false,
	}
	for a, want := range cases {
		if got := IsLoopback(a); got != want {
			t.Errorf("IsLoopback(%v) = %v", a, got)
		}
	}
}
