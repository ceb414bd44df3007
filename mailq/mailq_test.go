package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// submitRemote sends a message to a remote.test recipient and waits until
// smtpd has tried the (down) remote once, so that the recipient carries
// its error. It returns the queue id.
func (e *env) submitRemote(t *testing.T, subject string) string {
	t.Helper()
	before := map[string]bool{}
	for _, id := range e.queueIDs() {
		before[id] = true
	}
	if r := e.sendmail("Subject: "+subject+"\n\nbody\n", "user@remote.test"); r.code != 0 {
		t.Fatalf("sendmail to remote: exit %d: %s", r.code, r.stderr)
	}
	var id string
	waitFor(t, 10*time.Second, "a deferred message", func() bool {
		for _, m := range e.jsonQueue(t) {
			if !before[m.QueueID] && m.Tries > 0 {
				id = m.QueueID
				return true
			}
		}
		return false
	})
	return id
}

func (e *env) jsonQueue(t *testing.T) []jsonMessage {
	t.Helper()
	r := e.mailq("-json")
	if r.code != 0 {
		t.Fatalf("mailq -json: exit %d: %s", r.code, r.stderr)
	}
	var out []jsonMessage
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		if line == "" {
			continue
		}
		var m jsonMessage
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("mailq -json line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// The queue acceptance points: with the remote down, mailq and
// mailq -json show the message with its error; mailq -flush after the
// remote is back delivers it; mailq -delete removes a deferred message,
// which is never delivered afterwards. Hold and release on the way.
func TestQueueRemoteDownFlushDelete(t *testing.T) {
	e := newEnv(t)
	if r := e.mailq(); r.code != 0 || !strings.Contains(r.stdout, "Mail queue is empty") {
		t.Fatalf("empty mailq: %d %q %q", r.code, r.stdout, r.stderr)
	}
	keep := e.submitRemote(t, "keep")
	drop := e.submitRemote(t, "drop")

	r := e.mailq()
	for _, want := range []string{keep, drop, "root@mail.example.test", "user@remote.test", e.remote, "-- 1 Kbytes in 2 requests."} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("mailq lacks %q:\n%s", want, r.stdout)
		}
	}
	js := e.jsonQueue(t)
	if len(js) != 2 || js[0].QueueID != keep || js[0].Sender != "root@mail.example.test" ||
		js[0].QueueName != "deferred" || len(js[0].Recipients) != 1 ||
		js[0].Recipients[0].Address != "user@remote.test" || js[0].Recipients[0].State != "pending" ||
		!strings.Contains(js[0].Recipients[0].DelayReason, e.remote) || js[0].MessageSize <= 0 {
		t.Fatalf("mailq -json: %+v", js)
	}
	show := e.mailq("-show", keep)
	for _, want := range []string{"Queue ID:      " + keep, "Sender:        <root@mail.example.test>", "<user@remote.test> pending", e.remote, "Subject: keep", "Received: by mail.example.test"} {
		if !strings.Contains(show.stdout, want) {
			t.Errorf("mailq -show lacks %q:\n%s", want, show.stdout)
		}
	}
	shape := e.mailq("-shape")
	if !strings.Contains(shape.stdout, "remote.test") || !strings.Contains(shape.stdout, "TOTAL     2     2") {
		t.Errorf("mailq -shape:\n%s", shape.stdout)
	}

	// Delete one while the remote is still down, hold the other.
	if r := e.mailq("-delete", drop); r.code != 0 {
		t.Fatalf("mailq -delete: exit %d: %s", r.code, r.stderr)
	}
	if r := e.mailq("-hold", keep); r.code != 0 {
		t.Fatalf("mailq -hold: exit %d: %s", r.code, r.stderr)
	}
	if r := e.mailq(); !strings.Contains(r.stdout, keep+"!") || strings.Contains(r.stdout, drop) {
		t.Fatalf("after delete and hold:\n%s", r.stdout)
	}

	e.startRemote()
	// A flush does not move a held message.
	if r := e.mailq("-flush"); r.code != 0 {
		t.Fatalf("mailq -flush: exit %d: %s", r.code, r.stderr)
	}
	time.Sleep(1500 * time.Millisecond)
	if n := len(e.mx.Messages()); n != 0 {
		t.Fatalf("held or deleted message delivered (%d)", n)
	}
	// Release makes it due now; smtpd sees the kick within a second.
	if r := e.mailq("-release", keep); r.code != 0 {
		t.Fatalf("mailq -release: exit %d: %s", r.code, r.stderr)
	}
	waitFor(t, 5*time.Second, "delivery after release", func() bool { return len(e.mx.Messages()) == 1 })
	if m := e.mx.Messages()[0]; !strings.Contains(m.Data, "Subject: keep") {
		t.Fatalf("delivered the wrong message:\n%s", m.Data)
	}
	waitFor(t, 5*time.Second, "empty queue", func() bool { return len(e.queueIDs()) == 0 })
	time.Sleep(1500 * time.Millisecond)
	if n := len(e.mx.Messages()); n != 1 {
		t.Fatalf("the deleted message was delivered after all (%d messages)", n)
	}

	// Errors: unknown and malformed ids.
	if r := e.mailq("-delete", keep); r.code != exDataErr || !strings.Contains(r.stderr, "no such message") {
		t.Errorf("deleting a gone message: %d %q", r.code, r.stderr)
	}
	if r := e.mailq("-hold", "../../etc/passwd"); r.code != exUsage || !strings.Contains(r.stderr, "not a queue id") {
		t.Errorf("bad id: %d %q", r.code, r.stderr)
	}
}

// -flush ID after the remote comes back delivers within seconds (the
// retry would otherwise wait retry_min = 1h); -delete-domain and
// -delete ALL clear the rest.
func TestQueueFlushOneAndDeleteDomain(t *testing.T) {
	e := newEnv(t)
	a := e.submitRemote(t, "a")
	b := e.submitRemote(t, "b")
	e.startRemote()
	if r := e.mailq("-flush", a); r.code != 0 {
		t.Fatalf("mailq -flush ID: exit %d: %s", r.code, r.stderr)
	}
	waitFor(t, 5*time.Second, "delivery of the flushed message", func() bool { return len(e.mx.Messages()) == 1 })
	if ids := e.queueIDs(); len(ids) != 1 || ids[0] != b {
		t.Fatalf("queue after flushing %s: %v", a, ids)
	}
	r := e.mailq("-delete-domain", "Remote.Test")
	if r.code != 0 || !strings.Contains(r.stdout, "deleted 1 message") {
		t.Fatalf("mailq -delete-domain: %d %q %q", r.code, r.stdout, r.stderr)
	}
	if ids := e.queueIDs(); len(ids) != 0 {
		t.Fatalf("queue after -delete-domain: %v", ids)
	}
	e.mx.Close()
	e.submitRemote(t, "c")
	e.submitRemote(t, "d")
	if r := e.mailq("-delete", "ALL"); r.code != 0 || !strings.Contains(r.stdout, "deleted 2 messages") {
		t.Fatalf("mailq -delete ALL: %d %q %q", r.code, r.stdout, r.stderr)
	}
	if r := e.mailq("-json"); r.stdout != "" {
		t.Fatalf("json of an empty queue: %q", r.stdout)
	}
}

// mailq refuses contradictory or unknown flags with a usage message.
func TestMailqUsage(t *testing.T) {
	e := newEnv(t)
	for _, args := range [][]string{{"-json", "-shape"}, {"-bogus"}, {"extra"}} {
		if r := e.mailq(args...); r.code != exUsage || !strings.Contains(r.stderr, "usage") {
			t.Errorf("mailq %v: exit %d, %q", args, r.code, r.stderr)
		}
	}
	// sendmail -bp is mailq.
	if r := e.sendmail("", "-bp"); r.code != 0 || !strings.Contains(r.stdout, "Mail queue is empty") {
		t.Errorf("sendmail -bp: %d %q %q", r.code, r.stdout, r.stderr)
	}
}
