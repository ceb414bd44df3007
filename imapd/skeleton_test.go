package main

import (
	"bytes"
	"net"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-sasl"
)

func TestSkeletonWalk(t *testing.T) {
	e := startServer(t)
	e.deliver(t, "INBOX", testMessage("first", "hello\r\n"))
	e.deliver(t, "INBOX", testMessage("second", "world\r\n"))

	c := e.dial(t, nil)
	caps, err := c.Capability().Wait()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []imap.Cap{imap.CapIMAP4rev1, imap.CapIMAP4rev2, imap.CapStartTLS, "AUTH=PLAIN", "AUTH=LOGIN"} {
		if !caps.Has(want) {
			t.Errorf("capability %s missing: %v", want, caps)
		}
	}
	if caps.Has(imap.CapLoginDisabled) {
		t.Errorf("LOGINDISABLED advertised on loopback")
	}
	err = c.Login("demo", "wrong").Wait()
	wantIMAPError(t, err, imap.StatusResponseTypeNo, "bad password")
	if err := c.Login("demo", "demo").Wait(); err != nil {
		t.Fatal(err)
	}
	// Out-of-state: LOGIN again.
	wantIMAPError(t, c.Login("demo", "demo").Wait(), imap.StatusResponseTypeBad, "second login")

	list, err := c.List("", "*", nil).Collect()
	if err != nil {
		t.Fatal(err)
	}
	if len(list) < 6 || list[0].Mailbox != "INBOX" {
		t.Fatalf("list: %+v", list)
	}

	sel := selectInbox(t, c)
	if sel.NumMessages != 2 {
		t.Fatalf("EXISTS %d, want 2", sel.NumMessages)
	}
	msgs, err := c.Fetch(imap.SeqSetNum(1, 2), &imap.FetchOptions{
		Flags: true, UID: true, RFC822Size: true, InternalDate: true, Envelope: true,
		BodyStructure: &imap.FetchItemBodyStructure{Extended: true},
		BodySection:   []*imap.FetchItemBodySection{{Peek: true}},
	}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 {
		t.Fatalf("fetched %d", len(msgs))
	}
	m := msgs[0]
	body := m.FindBodySection(&imap.FetchItemBodySection{Peek: true})
	if string(body) != testMessage("first", "hello\r\n") {
		t.Errorf("BODY[] = %q", body)
	}
	if m.RFC822Size != int64(len(body)) {
		t.Errorf("RFC822.SIZE %d, body %d", m.RFC822Size, len(body))
	}
	if m.Envelope == nil || m.Envelope.Subject != "first" || m.Envelope.From[0].Host != "example.test" {
		t.Errorf("envelope %+v", m.Envelope)
	}
	if bs, ok := m.BodyStructure.(*imap.BodyStructureSinglePart); !ok || bs.Type != "text" || bs.Size != 7 {
		t.Errorf("bodystructure %#v", m.BodyStructure)
	}
	if m.InternalDate.IsZero() || m.UID == 0 {
		t.Errorf("internaldate %v uid %d", m.InternalDate, m.UID)
	}
	// The first session to select INBOX sees the message as \Recent
	// (RFC 3501 2.3.2); PEEK sets nothing else.
	if len(m.Flags) != 1 || m.Flags[0] != "\\Recent" {
		t.Errorf("PEEK set flags: %v", m.Flags)
	}
	// BODY[] (not PEEK) sets \Seen and returns the flags.
	msgs, err = c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{
		BodySection: []*imap.FetchItemBodySection{{Specifier: imap.PartSpecifierText}},
	}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 || !hasIMAPFlag(msgs[0].Flags, imap.FlagSeen) {
		t.Fatalf("BODY[TEXT] did not set \\Seen: %+v", msgs)
	}
	if got := msgs[0].FindBodySection(&imap.FetchItemBodySection{Specifier: imap.PartSpecifierText}); string(got) != "hello\r\n" {
		t.Errorf("BODY[TEXT] = %q", got)
	}

	if _, err := c.Store(imap.SeqSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Collect(); err != nil {
		t.Fatal(err)
	}
	exp, err := c.Expunge().Collect()
	if err != nil {
		t.Fatal(err)
	}
	if len(exp) != 1 || exp[0] != 2 {
		t.Fatalf("expunged %v, want [2]", exp)
	}
	if err := c.Logout().Wait(); err != nil {
		t.Fatal(err)
	}
}

func hasIMAPFlag(flags []imap.Flag, f imap.Flag) bool {
	for _, x := range flags {
		if x == f {
			return true
		}
	}
	return false
}

func TestAuthenticatePlainAndLogin(t *testing.T) {
	e := startServer(t)
	c := e.dial(t, nil)
	if err := c.Authenticate(sasl.NewPlainClient("", "demo@example.test", "nope")); err == nil {
		t.Fatal("PLAIN with a wrong password succeeded")
	}
	if err := c.Authenticate(sasl.NewPlainClient("", "demo@example.test", "demo")); err != nil {
		t.Fatalf("PLAIN: %v", err)
	}
	c2 := e.dial(t, nil)
	if err := c2.Authenticate(sasl.NewLoginClient("alice", "alice")); err != nil {
		t.Fatalf("LOGIN: %v", err)
	}
}

// A client that is not on loopback must not send a password before TLS:
// the greeting says LOGINDISABLED and LOGIN is refused (RFC 3501 6.2.3).
func TestLoginDisabledOffLoopback(t *testing.T) {
	e := startServer(t)
	client, srvSide := net.Pipe()
	defer client.Close()
	go e.srv.conns.ServeConn("imap", srvSide)
	buf := make([]byte, 4096)
	n, err := client.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	greeting := string(buf[:n])
	if !strings.Contains(greeting, "LOGINDISABLED") || strings.Contains(greeting, "AUTH=PLAIN") ||
		!strings.Contains(greeting, "STARTTLS") {
		t.Fatalf("greeting %q", greeting)
	}
	if _, err := client.Write([]byte("a LOGIN demo demo\r\n")); err != nil {
		t.Fatal(err)
	}
	n, err = client.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(buf[:n], []byte("a NO [PRIVACYREQUIRED]")) {
		t.Fatalf("LOGIN before TLS: %q", buf[:n])
	}
}
