package maildir

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func scansOf(f *Folder) uint64 {
	f.st.mu.Lock()
	defer f.st.mu.Unlock()
	return f.st.scans
}

// With inotify, the changes this process makes (STORE, APPEND, EXPUNGE)
// update the cached state in place: the Syncs after them list nothing.
// Without inotify every Sync after a change scans, as the mtime rules say.
func TestOwnChangesNeedNoScan(t *testing.T) {
	m := openTest(t)
	f := folder(t, m, "INBOX")
	for i := 0; i < 5; i++ {
		deliver(t, m, "INBOX", fmt.Sprintf("Subject: %d\r\n\r\nx\r\n", i))
	}
	s := mustSync(t, f)
	if f.st.ev == nil {
		t.Skip("inotify unavailable")
	}
	base := scansOf(f)
	if _, _, err := f.SetFlags([]uint32{1, 2}, FlagsAdd, []string{`\Seen`, "$Work"}, 0); err != nil {
		t.Fatal(err)
	}
	uid, err := f.Append(strings.NewReader("Subject: a\r\n\r\nappended\r\n"), []string{`\Flagged`}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Expunge([]uint32{3}); err != nil {
		t.Fatal(err)
	}
	s2 := mustSync(t, f)
	mustSync(t, f)
	if n := scansOf(f) - base; n != 0 {
		t.Fatalf("%d full scans after own changes, want 0", n)
	}
	checkSnapshot(t, s2)
	if got := uidsOf(s2); !reflect.DeepEqual(got, []uint32{1, 2, 4, 5, uid}) {
		t.Fatalf("UIDs %v", got)
	}
	if s2.HighestModSeq <= s.HighestModSeq {
		t.Fatalf("HIGHESTMODSEQ %d after changes, was %d", s2.HighestModSeq, s.HighestModSeq)
	}
	// A fresh process (full read of index and log) agrees with the
	// incremental state, message by message.
	forgetState(f.Dir())
	s3 := mustSync(t, folder(t, m, "INBOX"))
	if !reflect.DeepEqual(s2, s3) {
		t.Fatalf("incremental snapshot\n%+v\ndiffers from a fresh read\n%+v", s2, s3)
	}
}

// A change by another program or process is seen by the very next Sync of
// an active session, with inotify and with the mtime rules, however recent
// the last scan; and its events do not get lost among this process's own.
func TestForeignChangeSeenAtNextSync(t *testing.T) {
	for _, polling := range []bool{false, true} {
		t.Run(map[bool]string{false: "inotify", true: "polling"}[polling], func(t *testing.T) {
			forcePolling = polling
			defer func() { forcePolling = false }()
			m := openTest(t)
			f := folder(t, m, "INBOX")
			for i := 0; i < 3; i++ {
				deliver(t, m, "INBOX", fmt.Sprintf("Subject: %d\r\n\r\nx\r\n", i))
			}
			s := mustSync(t, f)
			cur := filepath.Join(m.Root(), "cur")
			for round := 0; round < 20; round++ {
				// An own change, then at once an outside rename (mutt).
				if _, _, err := f.SetFlags([]uint32{1}, FlagsAdd, []string{fmt.Sprintf("k%d", round)}, 0); err != nil {
					t.Fatal(err)
				}
				key := s.Messages[1].Key
				names, _ := listMessages(cur)
				var from string
				for _, n := range names {
					if strings.HasPrefix(n, key) {
						from = n
					}
				}
				to := key + ":2,"
				if !strings.HasSuffix(from, "R") {
					to = key + ":2,R"
				}
				if err := os.Rename(filepath.Join(cur, from), filepath.Join(cur, to)); err != nil {
					t.Fatal(err)
				}
				s2 := mustSync(t, f)
				if got := s2.Messages[1].HasFlag(`\Answered`); got != strings.HasSuffix(to, "R") {
					t.Fatalf("round %d: outside rename to %q not seen: %v", round, to, s2.Messages[1].Flags)
				}
			}
			// Another tern process: expunge 3, flag 1.
			if out, err := helperCmd(t, "change", "ROOT="+m.Root(), "EXPUNGE=3", "FLAG=1").Output(); err != nil {
				t.Fatalf("helper: %v %s", err, out)
			}
			s3 := mustSync(t, f)
			if len(s3.Messages) != 2 || !s3.Messages[0].HasFlag("$Later") {
				t.Fatalf("another process's changes not seen: %+v", s3.Messages)
			}
		})
	}
}

// An idle session learns of another process's flag change (a rename in
// cur/ plus a log line) within 2 s.
func TestIdleSeesOtherProcessFlagChange(t *testing.T) {
	m := openTest(t)
	deliver(t, m, "INBOX", "Subject: a\r\n\r\nx\r\n")
	deliver(t, m, "INBOX", "Subject: b\r\n\r\nx\r\n")
	f := folder(t, m, "INBOX")
	mustSync(t, f)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := f.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := helperCmd(t, "change", "ROOT="+m.Root(), "EXPUNGE=99", "FLAG=2").Output(); err != nil {
		t.Fatalf("helper: %v %s", err, out)
	}
	deadline := time.After(2 * time.Second)
	for {
		select {
		case <-ch:
		case <-deadline:
			t.Fatal("flag change by another process not seen within 2s")
		}
		if s := mustSync(t, f); s.Messages[1].HasFlag(`\Flagged`) {
			return
		}
	}
}

// Crash analysis, step by step: a machine crash loses the log lines that
// were not fsynced (flag changes, expunges), never the renames and removals
// in cur/ (fsynced before OK) nor new UIDs (fsynced). After the reboot the
// names are synced again: same UIDs, flags from the names, and modseqs above
// every one a client may have seen, so HIGHESTMODSEQ never goes backwards.
func TestCrashLosesUnsyncedLogLines(t *testing.T) {
	m := openTest(t)
	for i := 0; i < 4; i++ {
		deliver(t, m, "INBOX", fmt.Sprintf("Subject: %d\r\n\r\nx\r\n", i))
	}
	f := folder(t, m, "INBOX")
	s := mustSync(t, f)
	uid, err := f.Append(strings.NewReader("Subject: new\r\n\r\nx\r\n"), nil, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(m.Root(), logName)
	synced, err := os.ReadFile(logPath) // everything so far was fsynced (new UIDs)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		if _, _, err := f.SetFlags([]uint32{s.Messages[i%4].UID}, FlagsAdd, []string{`\Seen`, fmt.Sprintf("k%d", i%3)}, 0); err != nil {
			t.Fatal(err)
		}
		if _, _, err := f.SetFlags([]uint32{s.Messages[i%4].UID}, FlagsRemove, []string{fmt.Sprintf("k%d", i%3)}, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Expunge([]uint32{s.Messages[3].UID}); err != nil {
		t.Fatal(err)
	}
	told := mustSync(t, f)
	if told.HighestModSeq <= s.HighestModSeq {
		t.Fatal("no modseq change")
	}
	// The crash: the log is cut back to what was fsynced, plus half a line.
	if err := os.WriteFile(logPath, append(synced, "0000"...), 0o600); err != nil {
		t.Fatal(err)
	}
	old := bootToken
	bootToken = func() string { return "rebooted" }
	defer func() { bootToken = old }()
	forgetState(f.Dir())
	f = folder(t, m, "INBOX")
	after := mustSync(t, f)
	checkSnapshot(t, after)
	if after.UIDValidity != told.UIDValidity {
		t.Fatal("UIDVALIDITY changed")
	}
	if !reflect.DeepEqual(uidsOf(after), uidsOf(told)) {
		t.Fatalf("UIDs %v after the crash, %v before", uidsOf(after), uidsOf(told))
	}
	if after.HighestModSeq <= told.HighestModSeq {
		t.Fatalf("HIGHESTMODSEQ went back: %d after the crash, %d shown before", after.HighestModSeq, told.HighestModSeq)
	}
	for i, msg := range after.Messages {
		if !reflect.DeepEqual(msg.Flags, told.Messages[i].Flags) {
			t.Errorf("UID %d: flags %v, were %v", msg.UID, msg.Flags, told.Messages[i].Flags)
		}
		if msg.ModSeq != told.Messages[i].ModSeq && msg.ModSeq <= told.HighestModSeq {
			t.Errorf("UID %d: modseq %d re-given at or below %d", msg.UID, msg.ModSeq, told.HighestModSeq)
		}
	}
	if after.Messages[len(after.Messages)-1].UID != uid {
		t.Fatal("appended message lost its UID")
	}
	// The expunge whose log line was lost is redone with a new modseq: a
	// QRESYNC client from before it still learns of it (RFC 7162 3.2.5.2).
	if got, ok := after.VanishedSince(s.HighestModSeq); !ok || !reflect.DeepEqual(got, []uint32{s.Messages[3].UID}) {
		t.Errorf("VanishedSince after the crash: %v, %v", got, ok)
	}
	// The torn log was replaced by a compaction at the first write.
	data, err := os.ReadFile(logPath)
	if err != nil || !strings.HasPrefix(string(data), logMagic) || strings.Contains(string(data), "0000") {
		t.Fatalf("log after recovery: %q %v", data, err)
	}
}

// The log is folded into the index once it grows, and a fresh process reads
// the same state from index and log as the writer holds.
func TestLogCompaction(t *testing.T) {
	m := openTest(t)
	for i := 0; i < 3; i++ {
		deliver(t, m, "INBOX", "Subject: x\r\n\r\nx\r\n")
	}
	f := folder(t, m, "INBOX")
	mustSync(t, f)
	gen := func() uint64 {
		f.st.mu.Lock()
		defer f.st.mu.Unlock()
		return f.st.idx.gen
	}
	g0 := gen()
	for i := 0; gen() == g0; i++ {
		if i > 10000 {
			t.Fatal("log never compacted")
		}
		op := FlagsAdd
		if i%2 == 1 {
			op = FlagsRemove
		}
		if _, _, err := f.SetFlags([]uint32{uint32(i%3 + 1)}, op, []string{`\Seen`}, 0); err != nil {
			t.Fatal(err)
		}
	}
	fi, err := os.Stat(filepath.Join(m.Root(), logName))
	if err != nil || fi.Size() > 200 {
		t.Fatalf("log after compaction: %v, %v", fi, err)
	}
	want := mustSync(t, f)
	forgetState(f.Dir())
	if got := mustSync(t, folder(t, m, "INBOX")); !reflect.DeepEqual(got, want) {
		t.Fatalf("after compaction a fresh read gives\n%+v\nwant\n%+v", got, want)
	}
}

// FuzzChangeLog: log lines from the disk never crash the reader and never
// break the index's invariants.
func FuzzChangeLog(f *testing.F) {
	var b logBatch
	e := entry{uid: 3, modseq: 9, size: 10, mtime: 1, key: "1.M1P1.h,S=10", info: ":2,S", kw: []string{"$Work"}}
	b.entry(&e)
	b.expunge(10, []uint32{1, 3})
	f.Add(b.buf.Bytes())
	f.Add([]byte("00000000 R 5\n"))
	f.Add([]byte("garbage\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		x := &index{uidValidity: 1, uidNext: 3, highestModSeq: 5, entries: []entry{
			{uid: 1, modseq: 1, key: "a"}, {uid: 2, modseq: 5, key: "b", info: ":2,"}}}
		used, _ := applyLog(x, data)
		if used > len(data) {
			t.Fatalf("used %d of %d", used, len(data))
		}
		for i, e := range x.entries {
			if e.uid >= x.uidNext || e.modseq > x.highestModSeq || (i > 0 && e.uid <= x.entries[i-1].uid) {
				t.Fatalf("invariants broken: %+v", x)
			}
		}
	})
}
