package maildir

import (
	"bufio"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// helperCrash works on INBOX without pause (deliver, drop outside files,
// sync, flag changes, expunges) until it is killed. It prints "ready" once
// it has opened the folder.
func helperCrash() error {
	root := os.Getenv("ROOT")
	m, err := Open(root)
	if err != nil {
		return err
	}
	f, err := m.Folder("INBOX")
	if err != nil {
		return err
	}
	fmt.Println("ready")
	for i := 0; ; i++ {
		if _, _, err := m.Deliver("INBOX", strings.NewReader("Subject: crash\r\n\r\nx\r\n"), nil); err != nil {
			return err
		}
		// An outside file straight into cur/.
		name := fmt.Sprintf("%d.crash%dP%d.example:2,S", time.Now().Unix(), i, os.Getpid())
		if err := os.WriteFile(filepath.Join(root, "cur", name), []byte("outside"), 0o600); err != nil {
			return err
		}
		s, err := f.Sync()
		if err != nil {
			return err
		}
		if n := len(s.Messages); n > 0 {
			uid := s.Messages[rand.IntN(n)].UID
			if _, _, err := f.SetFlags([]uint32{uid}, FlagsAdd, []string{`\Flagged`, fmt.Sprintf("k%d", rand.IntN(30))}, 0); err != nil {
				return err
			}
			if n > 20 {
				if err := f.Expunge([]uint32{s.Messages[rand.IntN(n)].UID}); err != nil {
					return err
				}
			}
		}
		if _, err := f.Append(strings.NewReader("appended"), []string{`\Seen`}, time.Time{}); err != nil {
			return err
		}
		// The messages of one MULTIAPPEND, published together.
		var staged []*Staged
		for j := 0; j < 3; j++ {
			st, err := f.Stage(strings.NewReader(fmt.Sprintf("staged %d", j)), []string{"$Work"}, time.Time{})
			if err != nil {
				return err
			}
			staged = append(staged, st)
		}
		if _, err := f.Publish(staged); err != nil {
			return err
		}
	}
}

// Acceptance: a process SIGKILLed at random points while assigning UIDs,
// 100 times: the index always parses and no UID ever maps to two files.
func TestCrashAtRandomPoints(t *testing.T) {
	runs := 100
	if testing.Short() {
		runs = 20
	}
	m := openTest(t)
	root := m.Root()
	idxPath := filepath.Join(root, indexName)
	keyOf := map[uint32]string{}
	uidOf := map[string]uint32{}
	var validity uint32
	check := func(run int) {
		t.Helper()
		data, err := os.ReadFile(idxPath)
		if errors.Is(err, os.ErrNotExist) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		x, err := parseIndex(data)
		if err != nil {
			t.Fatalf("run %d: index does not parse after SIGKILL: %v", run, err)
		}
		// The change log extends the index: a SIGKILL loses no line
		// written, so a whole log must apply (the last line may be torn
		// only if the kill hit inside a write).
		if logData, err := os.ReadFile(filepath.Join(root, logName)); err == nil {
			if nl := strings.IndexByte(string(logData), '\n'); nl > 0 {
				if _, _, herr := parseLogHeader(string(logData[:nl]), x); herr == nil {
					if used, aerr := applyLog(x, logData[nl+1:]); aerr != nil && nl+1+used+200 < len(logData) {
						t.Fatalf("run %d: log does not apply at byte %d of %d: %v", run, nl+1+used, len(logData), aerr)
					}
				}
			}
		}
		if validity == 0 {
			validity = x.uidValidity
		} else if x.uidValidity != validity {
			t.Fatalf("run %d: UIDVALIDITY changed %d -> %d", run, validity, x.uidValidity)
		}
		for _, e := range x.entries {
			if k, ok := keyOf[e.uid]; ok && k != e.key {
				t.Fatalf("run %d: UID %d maps to %q and %q", run, e.uid, k, e.key)
			}
			if u, ok := uidOf[e.key]; ok && u != e.uid {
				t.Fatalf("run %d: key %q had UID %d, now %d", run, e.key, u, e.uid)
			}
			keyOf[e.uid], uidOf[e.key] = e.key, e.uid
		}
	}
	for run := 0; run < runs; run++ {
		cmd := helperCmd(t, "crash", "ROOT="+root)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "ready\n" {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("run %d: helper did not start: %q %v", run, line, err)
		}
		time.Sleep(time.Duration(rand.IntN(20000)) * time.Microsecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		err = cmd.Wait()
		var ee interface{ ExitCode() int }
		if !errors.As(err, &ee) || ee.ExitCode() != -1 {
			t.Fatalf("run %d: helper exited by itself (%v), not by SIGKILL", run, err)
		}
		check(run)
	}
	// A surviving process picks up whatever the last victim left behind.
	s := mustSync(t, folder(t, m, "INBOX"))
	checkSnapshot(t, s)
	check(runs)
	if s.UIDValidity != validity {
		t.Fatalf("UIDVALIDITY changed after recovery")
	}
	names, err := listMessages(filepath.Join(root, "cur"))
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != len(s.Messages) {
		t.Fatalf("%d files in cur/, %d messages in the snapshot", len(names), len(s.Messages))
	}
	t.Logf("%d kills, %d messages, %d UIDs ever assigned", runs, len(s.Messages), s.UIDNext-1)
}
