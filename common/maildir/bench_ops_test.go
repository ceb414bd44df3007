package maildir

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// benchFolder makes INBOX with n delivered messages, synced once.
func benchFolder(b *testing.B, n int) (*Mailbox, *Folder) {
	b.Helper()
	m := openTest(b)
	cur := filepath.Join(m.Root(), "cur")
	body := []byte("Subject: x\r\n\r\nbody\r\n")
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("%d.M%dP1Q%dR0.bench,S=%d,W=%d:2,", 1700000000+i/100, i, i, len(body), len(body))
		if err := os.WriteFile(filepath.Join(cur, name), body, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	f := folder(b, m, "INBOX")
	if s := mustSync(b, f); len(s.Messages) != n {
		b.Fatalf("%d messages", len(s.Messages))
	}
	return m, f
}

// BenchmarkStoreThenSync is one IMAP STORE +FLAGS \Seen followed by the Sync
// of the next command, in a folder that changes all the time (the IMAP mix
// of the benchmark: the trust window never passes).
func BenchmarkStoreThenSync(b *testing.B) {
	for _, n := range []int{500, 100_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			if n > 1000 && testing.Short() {
				b.Skip("big folder")
			}
			_, f := benchFolder(b, n)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				uid := uint32(i%n + 1)
				op := FlagsAdd
				if (i/n)%2 == 1 {
					op = FlagsRemove
				}
				if _, _, err := f.SetFlags([]uint32{uid}, op, []string{`\Seen`}, 0); err != nil {
					b.Fatal(err)
				}
				mustSync(b, f)
			}
		})
	}
}

// BenchmarkSyncBusy is the Syncs of three read-only commands in a folder
// that this process changed just before (untimed): under load the folder
// always changed within the last second.
func BenchmarkSyncBusy(b *testing.B) {
	_, f := benchFolder(b, 500)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		op := FlagsAdd
		if i%2 == 1 {
			op = FlagsRemove
		}
		if _, _, err := f.SetFlags([]uint32{1}, op, []string{`\Seen`}, 0); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		for j := 0; j < 3; j++ {
			mustSync(b, f)
		}
	}
}

// BenchmarkAppend is IMAP APPEND of a 5 KB message into a 500-message
// folder, followed by the Sync of the next command.
func BenchmarkAppend(b *testing.B) {
	_, f := benchFolder(b, 500)
	body := "Subject: append\r\n\r\n" + strings.Repeat("x", 5000) + "\r\n"
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := f.Append(strings.NewReader(body), []string{`\Seen`}, time.Time{}); err != nil {
			b.Fatal(err)
		}
		mustSync(b, f)
	}
}

// BenchmarkExpunge is STORE \Deleted + EXPUNGE of one message (after an
// APPEND that keeps the folder's size), then the next Sync.
func BenchmarkExpunge(b *testing.B) {
	_, f := benchFolder(b, 500)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		uid, err := f.Append(strings.NewReader("Subject: e\r\n\r\nx\r\n"), nil, time.Time{})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, _, err := f.SetFlags([]uint32{uid}, FlagsAdd, []string{`\Deleted`}, 0); err != nil {
			b.Fatal(err)
		}
		if err := f.Expunge([]uint32{uid}); err != nil {
			b.Fatal(err)
		}
		mustSync(b, f)
	}
}
