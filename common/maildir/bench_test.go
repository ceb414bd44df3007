package maildir

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// BenchmarkOpen100k measures opening a folder of 100,000 messages (sync +
// UID list) when nothing changed:
//   - cold: a process that has not opened the folder yet (parse the index,
//     read cur/ and new/, reconcile);
//   - warm: a process that already has it (stat new/, cur/ and the index).
//
// Page caches are warm in both cases; message bodies are never read.
func BenchmarkOpen100k(b *testing.B) {
	const n = 100_000
	root := filepath.Join(b.TempDir(), "Maildir")
	if err := ensureMaildir(root); err != nil {
		b.Fatal(err)
	}
	cur := filepath.Join(root, "cur")
	body := []byte("Subject: x\r\n\r\nbody\r\n")
	start := time.Now()
	for i := 0; i < n; i++ {
		info := ":2,"
		if i%3 == 0 {
			info = ":2,S"
		}
		name := fmt.Sprintf("%d.M%dP1Q%dR0.bench,S=%d%s", 1700000000+i/100, i, i, len(body), info)
		if err := os.WriteFile(filepath.Join(cur, name), body, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("created %d files in %v", n, time.Since(start))
	m, err := Open(root)
	if err != nil {
		b.Fatal(err)
	}
	f, err := m.Folder("INBOX")
	if err != nil {
		b.Fatal(err)
	}
	start = time.Now()
	s, err := f.Sync()
	if err != nil || len(s.Messages) != n {
		b.Fatalf("first sync: %v, %d messages", err, len(s.Messages))
	}
	b.Logf("first sync (assigns %d UIDs, writes the index) took %v", n, time.Since(start))
	// Age the directories past the trust window, as in a mailbox that has
	// not changed for a while.
	old := time.Now().Add(-time.Hour)
	for _, p := range []string{cur, filepath.Join(root, "new"), filepath.Join(root, indexName)} {
		os.Chtimes(p, old, old)
	}

	b.Run("cold", func(b *testing.B) {
		var heap uint64
		for i := 0; i < b.N; i++ {
			forgetState(root)
			var before runtime.MemStats
			if i == 0 {
				b.StopTimer()
				runtime.GC()
				runtime.ReadMemStats(&before)
				b.StartTimer()
			}
			f, err := m.Folder("INBOX")
			if err != nil {
				b.Fatal(err)
			}
			s, err := f.Sync()
			if err != nil || len(s.Messages) != n {
				b.Fatalf("sync: %v", err)
			}
			if i == 0 {
				b.StopTimer()
				var after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&after)
				heap = after.HeapAlloc - before.HeapAlloc
				runtime.KeepAlive(f)
				b.StartTimer()
			}
		}
		b.ReportMetric(float64(heap)/n, "heapB/msg")
	})
	b.Run("warm", func(b *testing.B) {
		f, err := m.Folder("INBOX")
		if err != nil {
			b.Fatal(err)
		}
		if _, err := f.Sync(); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			s, err := f.Sync()
			if err != nil || len(s.Messages) != n {
				b.Fatalf("sync: %v", err)
			}
		}
	})
}
