package maildir

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestGroupSyncConcurrentDeliveries: deliveries into one folder from many
// goroutines all land, each in new/, and the table of directory syncers
// is empty once they are done.
func TestGroupSyncConcurrentDeliveries(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "Maildir")
	const n = 64
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, err := Deliver(dir, strings.NewReader(fmt.Sprintf("Subject: %d\r\n\r\nbody\r\n", i)), nil)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	ents, err := os.ReadDir(filepath.Join(dir, "new"))
	if err != nil || len(ents) != n {
		t.Fatalf("new/ holds %d files (%v), want %d", len(ents), err, n)
	}
	dirSyncers.mu.Lock()
	left := len(dirSyncers.m)
	dirSyncers.mu.Unlock()
	if left != 0 {
		t.Errorf("%d directory syncers left", left)
	}
}

// TestGroupSyncReportsErrors: a caller whose directory cannot be synced
// gets the error.
func TestGroupSyncReportsErrors(t *testing.T) {
	if err := syncDirShared(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("fsync of a missing directory succeeded")
	}
	dir := t.TempDir()
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := syncDirShared(dir); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
}
