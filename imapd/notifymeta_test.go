package main

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"tern/common/config"
	"tern/common/maildir"
)

// NOTIFY's metadata events (RFC 5465 5.6, 5.7) on every transport: a
// SETMETADATA by another session, or a change of the files by another
// process, reaches the session as METADATA with entry names only (RFC
// 5464 4.4.2); events not asked for are not sent, nor the session's own.
func TestNotifyMetadata(t *testing.T) {
	e := startServer(t, noDelay, func(c *config.Config) {
		// Other processes' changes are found at this interval.
		c.IMAPD.IdleRecheck = config.Duration(200 * time.Millisecond)
	})
	n := 0
	eachTransport(t, e, func(t *testing.T, w *wireConn) {
		n++
		box, other := "Meta"+strings.Repeat("x", n), "Plain"+strings.Repeat("x", n)
		w.login()
		w.ok("A", "CREATE "+box)
		w.ok("B", "CREATE "+other)
		w.ok("N", "NOTIFY SET (mailboxes "+box+" (MailboxMetadataChange)) (personal (ServerMetadataChange))")
		mailboxMeta := `^\* METADATA "?` + box + `"? `

		o := transports[0].dial(t, e)
		o.login()
		o.ok("a", "SETMETADATA "+box+` (/private/comment "secret value")`)
		l := w.await(mailboxMeta)
		if l != "* METADATA "+box+" /private/comment\r\n" && l != `* METADATA "`+box+`" /private/comment`+"\r\n" {
			t.Fatalf("METADATA for the mailbox: %q", l)
		}
		o.ok("b", `SETMETADATA "" (/shared/motd "hello `+box+`")`)
		if l := w.await(`^\* METADATA "" `); l != "* METADATA \"\" /shared/motd\r\n" {
			t.Fatalf("METADATA for the server: %q", l)
		}
		// A removal (NIL) and a new entry in one command, in one response.
		o.ok("c", "SETMETADATA "+box+` (/private/comment NIL /shared/a "1")`)
		if l := w.await(mailboxMeta); !strings.HasSuffix(l, " /private/comment /shared/a\r\n") {
			t.Fatalf("METADATA after a removal: %q", l)
		}
		// A value changed under the same name is a change too.
		o.ok("d", "SETMETADATA "+box+` (/shared/a "2")`)
		if l := w.await(mailboxMeta); !strings.HasSuffix(l, " /shared/a\r\n") {
			t.Fatalf("METADATA after a new value: %q", l)
		}

		// A mailbox no filter asks MailboxMetadataChange of: nothing.
		o.ok("e", "SETMETADATA "+other+` (/private/x "1")`)
		w.quiet(500 * time.Millisecond)

		// Another process writes the files: seen at imapd.idle_recheck.
		lim := maildir.MetadataLimits{MaxSize: 1 << 10, MaxEntries: 10, MaxTotal: 1 << 20}
		if err := e.mailbox(t).SetMetadata(box, map[string][]byte{"/private/byhand": []byte("x")}, lim); err != nil {
			t.Fatal(err)
		}
		if l := w.await(mailboxMeta); !strings.HasSuffix(l, " /private/byhand\r\n") {
			t.Fatalf("METADATA after another process's change: %q", l)
		}
		if err := e.mailbox(t).SetMetadata("", map[string][]byte{"/private/byhand": []byte(box)}, lim); err != nil {
			t.Fatal(err)
		}
		if l := w.await(`^\* METADATA "" `); l != "* METADATA \"\" /private/byhand\r\n" {
			t.Fatalf("server METADATA after another process's change: %q", l)
		}

		// The session's own changes are not told back (RFC 5465 5).
		for _, l := range w.ok("O", "SETMETADATA "+box+` (/private/own "1")`) {
			if strings.Contains(l, "METADATA "+box) {
				t.Fatalf("own change told: %q", l)
			}
		}
		w.quiet(500 * time.Millisecond)

		// Without ServerMetadataChange, server entries are not told; the
		// mailbox's still are.
		w.ok("M", "NOTIFY SET (mailboxes "+box+" (MailboxMetadataChange))")
		o.ok("f", `SETMETADATA "" (/shared/motd "`+box+`")`)
		w.quiet(500 * time.Millisecond)
		o.ok("g", "SETMETADATA "+box+` (/private/last "1")`)
		w.await(mailboxMeta + `/private/last\r\n$`)

		// Only ServerMetadataChange: mailbox entries are not told.
		w.ok("P", `NOTIFY SET (personal (ServerMetadataChange))`)
		o.ok("h", "SETMETADATA "+box+` (/private/last "2")`)
		w.quiet(500 * time.Millisecond)

		// RFC 5465 3.1: AnnotationChange stays unsupported.
		w.send("Q NOTIFY SET (personal (MailboxMetadataChange AnnotationChange))")
		out := w.until("Q")
		if !regexp.MustCompile(`^Q NO \[BADEVENT \(.*MailboxMetadataChange ServerMetadataChange\)\]`).MatchString(out[len(out)-1]) {
			t.Fatalf("AnnotationChange: %q", out)
		}
		w.ok("Z", "LOGOUT")
	})
}

// Mailboxes watched for metadata count against imapd.notify_max_mailboxes
// with those watched for messages, each mailbox once.
func TestNotifyMetadataLimit(t *testing.T) {
	e := startServer(t, noDelay, func(c *config.Config) { c.IMAPD.NotifyMaxMailboxes = 2 })
	w := transports[0].dial(t, e)
	w.login()
	w.ok("A", "CREATE Lim1")
	w.ok("B", "CREATE Lim2")
	w.ok("C", "LOGOUT")
	eachTransport(t, e, func(t *testing.T, w *wireConn) {
		w.login()
		w.send("N NOTIFY SET (mailboxes (Lim1 Lim2) (MessageNew MessageExpunge)) (mailboxes INBOX (MailboxMetadataChange))")
		if out := w.until("N"); !strings.HasPrefix(out[len(out)-1], "N NO [NOTIFICATIONOVERFLOW]") {
			t.Fatalf("NOTIFY over the limit: %q", out)
		}
		w.ok("M", "NOTIFY SET (mailboxes (Lim1 Lim2) (MessageNew MessageExpunge MailboxMetadataChange)) (personal (ServerMetadataChange))")
	})
}
