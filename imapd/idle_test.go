package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"tern/common/config"
)

// events collects the unilateral responses a client receives.
type events struct {
	mu       sync.Mutex
	exists   []uint32
	expunges []uint32
	flags    []uint32
	ch       chan struct{}
}

func newEvents() *events { return &events{ch: make(chan struct{}, 100)} }

func (ev *events) handler() *imapclient.UnilateralDataHandler {
	poke := func() {
		select {
		case ev.ch <- struct{}{}:
		default:
		}
	}
	return &imapclient.UnilateralDataHandler{
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				ev.mu.Lock()
				ev.exists = append(ev.exists, *d.NumMessages)
				ev.mu.Unlock()
				poke()
			}
		},
		Expunge: func(seq uint32) {
			ev.mu.Lock()
			ev.expunges = append(ev.expunges, seq)
			ev.mu.Unlock()
			poke()
		},
		Fetch: func(m *imapclient.FetchMessageData) {
			ev.mu.Lock()
			ev.flags = append(ev.flags, m.SeqNum)
			ev.mu.Unlock()
			for m.Next() != nil {
			}
			poke()
		},
	}
}

// waitFor waits up to 2 s (the promise of DESIGN.md) for cond.
func (ev *events) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(2 * time.Second)
	for {
		ev.mu.Lock()
		ok := cond()
		ev.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ev.ch:
		case <-deadline:
			t.Fatalf("%s not seen within 2s (exists %v expunges %v flags %v)", what, ev.exists, ev.expunges, ev.flags)
		}
	}
}

func TestIdleSeesOtherWriters(t *testing.T) {
	e := startServer(t)
	e.deliver(t, "INBOX", testMessage("one", "1\r\n"))
	ev := newEvents()
	c := e.login(t, ev.handler())
	selectInbox(t, c)
	idle, err := c.Idle()
	if err != nil {
		t.Fatal(err)
	}

	// A delivery through the store (as lmtpd does).
	e.deliver(t, "INBOX", testMessage("two", "2\r\n"))
	ev.waitFor(t, "EXISTS 2", func() bool { return len(ev.exists) > 0 && ev.exists[len(ev.exists)-1] == 2 })

	// An outside program dropping a file into new/ (procmail, a script),
	// from another process.
	dir := filepath.Join(e.mailbox(t).Root())
	script := fmt.Sprintf("printf 'Subject: three\\n\\n3\\n' > %s/tmp/x.$$ && mv %s/tmp/x.$$ %s/new/%d.ext.host",
		dir, dir, dir, time.Now().Unix())
	if out, err := exec.Command("sh", "-c", script).CombinedOutput(); err != nil {
		t.Fatalf("outside writer: %v %s", err, out)
	}
	ev.waitFor(t, "EXISTS 3", func() bool { return len(ev.exists) > 0 && ev.exists[len(ev.exists)-1] == 3 })

	// A flag change and an expunge by another imapd (another server
	// instance over the same tree).
	e2 := startServerOn(t, e)
	other := e2.login(t, nil)
	selectInbox(t, other)
	if _, err := other.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Collect(); err != nil {
		t.Fatal(err)
	}
	ev.waitFor(t, "FETCH FLAGS 1", func() bool { return len(ev.flags) > 0 })
	if _, err := other.Store(imap.SeqSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Collect(); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Expunge().Collect(); err != nil {
		t.Fatal(err)
	}
	ev.waitFor(t, "EXPUNGE 2", func() bool { return len(ev.expunges) == 1 && ev.expunges[0] == 2 })
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatal(err)
	}
}

// startServerOn starts a second imapd over the same users and Maildirs.
func startServerOn(t *testing.T, e *testEnv) *testEnv {
	t.Helper()
	return startServer(t, func(c *config.Config) {
		c.Users = e.cfg.Users
		c.Maildir = e.cfg.Maildir
	})
}

// A session that still holds old sequence numbers keeps them until it may
// be told of the expunge: FETCH by old number gets the right message, and
// the EXPUNGE comes with the next command that allows it (RFC 3501 7.4.1).
func TestExpungeWithOldSequenceNumbers(t *testing.T) {
	e := startServer(t)
	for _, s := range []string{"a", "b", "c"} {
		e.deliver(t, "INBOX", testMessage(s, s+"\r\n"))
	}
	ev := newEvents()
	c := e.login(t, ev.handler())
	selectInbox(t, c)
	other := e.login(t, nil)
	selectInbox(t, other)
	if _, err := other.Store(imap.SeqSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Collect(); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Expunge().Collect(); err != nil {
		t.Fatal(err)
	}
	msgs, err := c.Fetch(imap.SeqSetNum(3), &imap.FetchOptions{Envelope: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 || msgs[0].SeqNum != 3 || msgs[0].Envelope.Subject != "c" {
		t.Fatalf("FETCH 3 by old number: %+v", msgs)
	}
	ev.mu.Lock()
	early := len(ev.expunges)
	ev.mu.Unlock()
	if early != 0 {
		t.Fatal("EXPUNGE sent during FETCH")
	}
	if err := c.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	ev.waitFor(t, "EXPUNGE 2", func() bool { return len(ev.expunges) == 1 && ev.expunges[0] == 2 })
	msgs, err = c.Fetch(imap.SeqSetNum(2), &imap.FetchOptions{Envelope: true}).Collect()
	if err != nil || msgs[0].Envelope.Subject != "c" {
		t.Fatalf("after EXPUNGE, 2 is c: %+v %v", msgs, err)
	}
	_ = os.Getpid
}
