package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// clusterPrereqs skips TestCluster, with the reason, where it cannot run:
// not root (network namespaces, FUSE mounts, glusterd), no glusterd
// (Debian package glusterfs-server), no ip (iproute2), no /dev/fuse; and in
// -short mode. TERN_CLUSTER=0 turns it off; TERN_CLUSTER=1 forces it: a
// missing prerequisite is then a failure, not a skip.
func clusterPrereqs(t *testing.T) {
	t.Helper()
	force := os.Getenv("TERN_CLUSTER")
	switch {
	case force == "0":
		t.Skip("cluster test turned off by TERN_CLUSTER=0")
	case force == "" && testing.Short():
		t.Skip("cluster test skipped in -short mode (TERN_CLUSTER=1 forces it)")
	}
	missing := ""
	if os.Geteuid() != 0 {
		missing = "needs root (network namespaces, FUSE mounts, glusterd)"
	} else if _, err := exec.LookPath("glusterd"); err != nil {
		missing = "glusterd not installed (Debian package glusterfs-server)"
	} else if _, err := exec.LookPath("ip"); err != nil {
		missing = "ip (iproute2) not installed"
	} else if f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0); err != nil {
		missing = "FUSE not available: " + err.Error()
	} else {
		f.Close()
	}
	if missing == "" {
		lockCluster(t)
		return
	}
	if force != "" {
		t.Fatalf("cluster test forced by TERN_CLUSTER=%s cannot run: %s", force, missing)
	}
	t.Skip("cluster test skipped: " + missing)
}

// lockCluster waits for any other TestCluster on this machine to end: the
// setup's network namespaces (tern-gl1..3, tern-glc, tern-glbr) have fixed
// names, and a second "setup up" takes the first volume down. The lock is
// freed after the volume is down (cleanups run last-registered first).
func lockCluster(t *testing.T) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "tern-cluster.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatalf("cluster lock: %v", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Logf("waiting for another cluster test on this machine to end")
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
			f.Close()
			t.Fatalf("cluster lock: %v", err)
		}
	}
	t.Cleanup(func() { f.Close() })
}
