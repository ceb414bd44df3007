package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// loadDisk measures the ceiling every delivery sits under: the rate of
// durable file creations on the temporary directory's file system, each one
// write 10 KB → fsync → rename into new/ → fsync new/, from 1 and 10
// threads. No mail server can acknowledge mail faster than this per
// message it stores.
func (b *bench) loadDisk(ctx context.Context) {
	for _, threads := range []int{1, 10} {
		r := b.addRow(&row{Load: fmt.Sprintf("disk ceiling: durable file creations, %d thread(s)", threads),
			Unit: "files/s", Higher: true})
		for round := 0; round < b.sz.Rounds && ctx.Err() == nil; round++ {
			v, err := diskRate(ctx, filepath.Join(b.dir, "disk"), threads, b.sz.DiskFiles, b.sz.MessageSize)
			if err != nil {
				r.fail("disk", err)
				continue
			}
			r.Tern = append(r.Tern, v)
		}
		r.Note = "no peer"
	}
}

func diskRate(ctx context.Context, dir string, threads, files, size int) (float64, error) {
	defer os.RemoveAll(dir)
	for _, sub := range []string{"tmp", "new"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return 0, fmt.Errorf("make %s: %w", dir, err)
		}
	}
	newDir, err := os.Open(filepath.Join(dir, "new"))
	if err != nil {
		return 0, fmt.Errorf("open new/: %w", err)
	}
	defer newDir.Close()
	data := message(0, size)
	var next atomic.Int64
	var firstErr error
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	for t := 0; t < threads; t++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := next.Add(1)
				if i > int64(files) {
					return
				}
				if err := durableCreate(dir, newDir, fmt.Sprintf("f%d", i), data); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return 0, firstErr
	}
	if ctx.Err() != nil {
		return 0, ctx.Err()
	}
	return float64(files) / time.Since(start).Seconds(), nil
}

func durableCreate(dir string, newDir *os.File, name string, data []byte) error {
	tmp := filepath.Join(dir, "tmp", name)
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", tmp, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("fsync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "new", name)); err != nil {
		return fmt.Errorf("rename %s: %w", tmp, err)
	}
	if err := newDir.Sync(); err != nil {
		return fmt.Errorf("fsync new/: %w", err)
	}
	return nil
}
