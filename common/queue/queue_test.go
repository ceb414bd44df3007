package queue

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func testEnvelope() *Envelope {
	return &Envelope{
		From:     "demo@example.test",
		Body:     "8BITMIME",
		Ret:      "HDRS",
		EnvID:    "id with spaces %",
		AuthUser: "demo@example.test",
		Client:   "192.0.2.1",
		Helo:     "client.test",
		Recipients: []Recipient{
			{Addr: "bob@remote.test", State: Pending, Notify: []string{"FAILURE", "DELAY"}, ORcpt: "rfc822;bob@remote.test"},
			{Addr: "\"odd local\"@remote.test", State: Pending},
		},
	}
}

func openQueue(t *testing.T) *Queue {
	t.Helper()
	q, err := Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func TestEnqueueGetRoundTrip(t *testing.T) {
	q := openQueue(t)
	e := testEnvelope()
	id, err := q.Enqueue(e, strings.NewReader("Subject: x\r\n\r\nbody\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := q.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	if got.From != e.From || got.EnvID != e.EnvID || got.Ret != "HDRS" || got.Size != 20 ||
		len(got.Recipients) != 2 || got.Recipients[1].Addr != "\"odd local\"@remote.test" ||
		got.Recipients[0].ORcpt != "rfc822;bob@remote.test" || len(got.Recipients[0].Notify) != 2 {
		t.Fatalf("round trip: %+v", got)
	}
	c, err := q.Claim(id)
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r)
	if string(b) != "Subject: x\r\n\r\nbody\r\n" {
		t.Fatalf("data %q", b)
	}
	// Attempts are kept with their replies across a save.
	c.Env.Recipients[0].AddAttempt(Attempt{Time: time.Now(), Host: "mx:25", Code: 451, Reply: "try\nlater %"})
	c.Env.NextAttempt = time.Now().Add(time.Hour)
	c.Env.Warned = true
	c.Env.RequireTLS = true
	if err := c.Save(); err != nil {
		t.Fatal(err)
	}
	if got, _ := q.Get(id); !got.Warned || !got.RequireTLS {
		t.Fatal("the warned and requiretls records were not kept across a save")
	}
	// A second claim waits for nobody: it fails while the first holds.
	if _, err := q.Claim(id); !errors.Is(err, ErrBusy) {
		t.Fatalf("second claim: %v", err)
	}
	if err := q.Hold(id); !errors.Is(err, ErrBusy) {
		t.Fatalf("hold during delivery: %v", err)
	}
	c.Close()
	got, _ = q.Get(id)
	if a, _ := got.Recipients[0].LastAttempt(); a.Reply != "try\nlater %" || a.Code != 451 {
		t.Fatalf("attempt %+v", a)
	}
	if err := q.Hold(id); err != nil {
		t.Fatal(err)
	}
	if got, _ := q.Get(id); !got.Held {
		t.Fatal("not held")
	}
	if err := q.Release(id); err != nil {
		t.Fatal(err)
	}
	if got, _ := q.Get(id); got.Held || got.NextAttempt.After(time.Now()) {
		t.Fatal("release did not make it due")
	}
	before := q.KickStamp()
	time.Sleep(10 * time.Millisecond)
	if err := q.Flush(""); err != nil {
		t.Fatal(err)
	}
	if !q.KickStamp().After(before) {
		t.Error("flush did not touch the kick file")
	}
	if err := q.Delete(id); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Get(id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
	if _, err := q.Get("../../etc/passwd"); !errors.Is(err, ErrBadID) {
		t.Fatalf("bad id: %v", err)
	}
}

func TestTornEnvelopeNeverUsed(t *testing.T) {
	q := openQueue(t)
	id, err := q.Enqueue(testEnvelope(), strings.NewReader("x\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(q.Dir(), dirEnv, id)
	full, _ := os.ReadFile(p)
	// Every truncation (a crash mid-write on a file system that does not
	// order the rename after the data) is detected.
	for n := 0; n < len(full); n++ {
		if _, err := parseEnvelope(full[:n]); !errors.Is(err, ErrTorn) {
			t.Fatalf("truncated at %d accepted: %v", n, err)
		}
	}
	// A flipped byte is detected too.
	bad := append([]byte(nil), full...)
	bad[len(bad)/2] ^= 1
	if _, err := parseEnvelope(bad); !errors.Is(err, ErrTorn) {
		t.Fatalf("damaged envelope accepted: %v", err)
	}
	os.WriteFile(p, full[:len(full)/2], 0o640)
	if err := q.Recover(); err != nil {
		t.Fatal(err)
	}
	if ids, _ := q.IDs(); len(ids) != 0 {
		t.Fatalf("torn message still queued: %v", ids)
	}
	if _, err := os.Stat(filepath.Join(q.Dir(), dirCorrupt, id+".env")); err != nil {
		t.Fatalf("torn envelope not moved aside: %v", err)
	}
}

func TestDamagedDataNeverDelivered(t *testing.T) {
	q := openQueue(t)
	id, _ := q.Enqueue(testEnvelope(), strings.NewReader("hello\r\n"))
	os.WriteFile(filepath.Join(q.Dir(), dirData, id), []byte("hel"), 0o640)
	c, err := q.Claim(id)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Data(); !errors.Is(err, ErrTorn) {
		t.Fatalf("truncated data: %v", err)
	}
}

// TestCrashBetweenSteps simulates a crash after each step of Commit and
// Remove, and checks what Recover makes of it.
func TestCrashBetweenSteps(t *testing.T) {
	q := openQueue(t)

	// Crash while receiving: an unlocked spool file in tmp/.
	os.WriteFile(filepath.Join(q.Dir(), dirTmp, "0000000000000deadbeef00"), []byte("partial"), 0o640)
	// Crash between the data rename and the envelope: an orphan data file.
	orphan := newID(time.Now())
	os.WriteFile(filepath.Join(q.Dir(), dirData, orphan), []byte("never acknowledged"), 0o640)
	// Crash while rewriting an envelope: its temp file.
	kept, _ := q.Enqueue(testEnvelope(), strings.NewReader("kept\r\n"))
	os.WriteFile(filepath.Join(q.Dir(), dirTmp, kept+".env"), []byte("tern-queue 1\nid"), 0o640)
	// A live writer (another process enqueueing now) must be left alone.
	live, err := q.NewSpool()
	if err != nil {
		t.Fatal(err)
	}
	live.Write([]byte("in progress"))
	// Crash inside Remove, after the envelope went: also an orphan.
	gone, _ := q.Enqueue(testEnvelope(), strings.NewReader("gone\r\n"))
	os.Remove(filepath.Join(q.Dir(), dirEnv, gone))

	if err := q.Recover(); err != nil {
		t.Fatal(err)
	}
	left := func(sub string) []string {
		ents, _ := os.ReadDir(filepath.Join(q.Dir(), sub))
		var n []string
		for _, e := range ents {
			n = append(n, e.Name())
		}
		return n
	}
	if got := left(dirTmp); len(got) != 1 || got[0] != live.ID() {
		t.Errorf("tmp/ after recovery: %v", got)
	}
	if got := left(dirData); len(got) != 1 || got[0] != kept {
		t.Errorf("data/ after recovery: %v", got)
	}
	if got := left(dirEnv); len(got) != 1 || got[0] != kept {
		t.Errorf("env/ after recovery: %v", got)
	}
	if err := live.Commit(testEnvelope()); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Get(live.ID()); err != nil {
		t.Errorf("live spool lost: %v", err)
	}
}

// TestLockIsCrossProcess checks that a claim is an flock another process
// (here: another open file description) sees.
func TestLockIsCrossProcess(t *testing.T) {
	q := openQueue(t)
	id, _ := q.Enqueue(testEnvelope(), strings.NewReader("x\r\n"))
	c, err := q.Claim(id)
	if err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(filepath.Join(q.Dir(), dirData, id))
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err == nil {
		t.Fatal("flock free while claimed")
	}
	c.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Fatalf("flock still held after Close: %v", err)
	}
}

func FuzzParseEnvelope(f *testing.F) {
	f.Add(testEnvelope().marshal())
	e := testEnvelope()
	e.ID = newID(time.Now())
	e.Recipients[0].AddAttempt(Attempt{Time: time.Now(), Host: "h", Code: 250, Reply: "ok"})
	f.Add(e.marshal())
	f.Add([]byte("tern-queue 1\nend 00\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := parseEnvelope(data)
		if err != nil {
			return
		}
		// What parses must survive a round trip unchanged.
		again, err := parseEnvelope(e.marshal())
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		if string(again.marshal()) != string(e.marshal()) {
			t.Fatal("round trip changed the envelope")
		}
	})
}
