package maildir

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// helperCmd re-executes the test binary in a helper role.
func helperCmd(t testing.TB, role string, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append([]string{helperEnv + "=" + role}, env...)...)
	cmd.Stderr = os.Stderr
	return cmd
}

// helperDeliver delivers N messages into INBOX and prints each key.
func helperDeliver() error {
	m, err := Open(os.Getenv("ROOT"))
	if err != nil {
		return err
	}
	n, _ := strconv.Atoi(os.Getenv("N"))
	w := bufio.NewWriter(os.Stdout)
	defer w.Flush()
	for i := 0; i < n; i++ {
		body := fmt.Sprintf("From: p%d@example.test\r\nSubject: %d\r\n\r\nmessage %d of process %d\r\n", os.Getpid(), i, i, os.Getpid())
		var flags []string
		if i%7 == 0 {
			flags = []string{`\Flagged`, "$Important"}
		}
		key, _, err := m.Deliver("INBOX", strings.NewReader(body), flags)
		if err != nil {
			return err
		}
		fmt.Fprintln(w, key)
	}
	return nil
}

// helperSyncer syncs INBOX in a loop, changes flags, and logs every
// (UIDVALIDITY, UID, key) it sees, until the STOP file exists.
func helperSyncer() error {
	m, err := Open(os.Getenv("ROOT"))
	if err != nil {
		return err
	}
	f, err := m.Folder("INBOX")
	if err != nil {
		return err
	}
	w := bufio.NewWriter(os.Stdout)
	defer w.Flush()
	stop := os.Getenv("STOP")
	logged := map[uint32]bool{}
	for last := false; ; {
		if _, err := os.Stat(stop); err == nil {
			last = true
		}
		s, err := f.Sync()
		if err != nil {
			return err
		}
		for _, msg := range s.Messages {
			if !logged[msg.UID] {
				logged[msg.UID] = true
				fmt.Fprintf(w, "%d %d %s\n", s.UIDValidity, msg.UID, msg.Key)
			}
		}
		if len(s.Messages) > 0 {
			var uids []uint32
			for i := 0; i < 5; i++ {
				uids = append(uids, s.Messages[rand.IntN(len(s.Messages))].UID)
			}
			op := FlagsAdd
			if rand.IntN(2) == 0 {
				op = FlagsRemove
			}
			if _, _, err := f.SetFlags(uids, op, []string{`\Seen`, "syncer"}, 0); err != nil {
				return err
			}
		}
		if last {
			return nil
		}
		time.Sleep(time.Millisecond)
	}
}

// Acceptance: 4 processes deliver 2,000 messages while an outside writer
// drops 500 files into new/ (and renames files as a mail reader would) and
// another process syncs and changes flags: afterwards 2,500 messages, one UID
// each, strictly ascending, none reused, UIDVALIDITY unchanged.
func TestConcurrentProcesses(t *testing.T) {
	const (
		deliverers = 4
		perProcess = 500
		outside    = 500
	)
	m := openTest(t)
	root := m.Root()
	stop := filepath.Join(t.TempDir(), "stop")

	syncer := helperCmd(t, "syncer", "ROOT="+root, "STOP="+stop)
	syncOut, err := syncer.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := syncer.Start(); err != nil {
		t.Fatal(err)
	}
	var syncLog []string
	var syncWG sync.WaitGroup
	syncWG.Add(1)
	go func() {
		defer syncWG.Done()
		sc := bufio.NewScanner(syncOut)
		for sc.Scan() {
			syncLog = append(syncLog, sc.Text())
		}
	}()

	var mu sync.Mutex
	delivered := map[string]bool{}
	var wg sync.WaitGroup
	errs := make(chan error, deliverers+1)
	for i := 0; i < deliverers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := helperCmd(t, "deliver", "ROOT="+root, "N="+strconv.Itoa(perProcess)).Output()
			if err != nil {
				errs <- fmt.Errorf("deliverer: %v", err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			for _, k := range strings.Fields(string(out)) {
				delivered[k] = true
			}
		}()
	}
	// The outside writer: procmail-style delivery (tmp/ then rename into
	// new/), and mutt-style flag renames of files it finds in cur/.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < outside; i++ {
			name := fmt.Sprintf("%d.outside%d.example", time.Now().Unix(), i)
			tmp := filepath.Join(root, "tmp", name)
			if err := os.WriteFile(tmp, []byte(fmt.Sprintf("Subject: outside %d\r\n\r\nx\r\n", i)), 0o600); err != nil {
				errs <- err
				return
			}
			if err := os.Rename(tmp, filepath.Join(root, "new", name)); err != nil {
				errs <- err
				return
			}
			mu.Lock()
			delivered[name] = true
			mu.Unlock()
			if i%10 == 0 {
				outsideFlagRename(root)
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := os.WriteFile(stop, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	syncWG.Wait()
	if err := syncer.Wait(); err != nil {
		t.Fatalf("syncer: %v", err)
	}

	f := folder(t, m, "INBOX")
	s := mustSync(t, f)
	checkSnapshot(t, s)
	if len(s.Messages) != deliverers*perProcess+outside || len(delivered) != len(s.Messages) {
		t.Fatalf("%d messages in the folder, %d delivered; want %d", len(s.Messages), len(delivered), deliverers*perProcess+outside)
	}
	uidOf := map[string]uint32{}
	for _, msg := range s.Messages {
		if !delivered[msg.Key] {
			t.Fatalf("unknown key %q", msg.Key)
		}
		uidOf[msg.Key] = msg.UID
	}
	// Every (UID, key) the syncer ever saw still holds, under one UIDVALIDITY.
	seenKey := map[uint32]string{}
	for _, line := range syncLog {
		var v, uid uint32
		var key string
		if _, err := fmt.Sscanf(line, "%d %d %s", &v, &uid, &key); err != nil {
			t.Fatalf("syncer line %q: %v", line, err)
		}
		if v != s.UIDValidity {
			t.Fatalf("UIDVALIDITY changed: %d then %d", v, s.UIDValidity)
		}
		if k, ok := seenKey[uid]; ok && k != key {
			t.Fatalf("UID %d reused: %q and %q", uid, k, key)
		}
		seenKey[uid] = key
		if uidOf[key] != uid {
			t.Fatalf("key %q had UID %d, now %d", key, uid, uidOf[key])
		}
	}
	if len(seenKey) != len(s.Messages) {
		t.Fatalf("syncer saw %d UIDs, folder has %d", len(seenKey), len(s.Messages))
	}
	t.Logf("%d messages, UIDs 1..%d, highest modseq %d", len(s.Messages), s.UIDNext-1, s.HighestModSeq)
}

// outsideFlagRename renames one file of cur/ to mark it \Answered, as a mail
// reader working directly on the Maildir would.
func outsideFlagRename(root string) {
	ents, err := os.ReadDir(filepath.Join(root, "cur"))
	if err != nil || len(ents) == 0 {
		return
	}
	name := ents[rand.IntN(len(ents))].Name()
	key, info := splitName(name)
	if strings.Contains(info, "R") {
		return
	}
	if info == "" {
		info = ":2,"
	}
	os.Rename(filepath.Join(root, "cur", name), filepath.Join(root, "cur", key+info+"R"))
}
