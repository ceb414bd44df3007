package main

import (
	"bufio"
	"net"
	"regexp"
	"testing"
	"time"

	"tern/common/config"
)

// imapLine is what every line imapd writes must look like outside
// literals: untagged "*", continuation "+" or a tag (RFC 9051 7).
var imapLine = regexp.MustCompile(`^(\*|\+|[A-Za-z0-9.\-_]+) `)

// FuzzIMAPSession feeds whole sessions of arbitrary bytes (commands,
// arguments, literals, sequence sets, mailbox names in modified UTF-7,
// search keys) to a real imapd, through its connection loop and store over
// a temporary Maildir. The input is sent after a LOGIN and SELECT so that
// every state is reached. imapd must answer and keep accepting connections.
func FuzzIMAPSession(f *testing.F) {
	for _, s := range []string{
		"a FETCH 1:* (FLAGS BODY.PEEK[HEADER] BODYSTRUCTURE)\r\nb STORE 1,3:5 +FLAGS (\\Seen $Junk)\r\n",
		"a UID SEARCH OR (FROM x) NOT (SUBJECT {3}\r\nabc) LARGER 10\r\n",
		"a APPEND INBOX (\\Flagged) {10+}\r\n0123456789\r\nb COPY 1:* &AOQ-rger\r\n",
		"a CREATE \"x/y\"\r\nb RENAME x z\r\nc LIST \"\" *\r\nd STATUS INBOX (MESSAGES UIDNEXT SIZE)\r\n",
		"a UID EXPUNGE 4294967295:1\r\nb MOVE *:1 Trash\r\nc IDLE\r\nDONE\r\n",
		"a SEARCH " + "((((((((((ALL))))))))))" + "\r\nb FETCH 0 ALL\r\n",
		"\x00\xff\r\n\r\n\n\r",
		"a NOTIFY SET STATUS (selected (MessageNew (UID BODY.PEEK[HEADER]) MessageExpunge)) (subtree (INBOX \"x\") (MessageNew MessageExpunge FlagChange MailboxName))\r\nb NOTIFY NONE\r\n",
		"a APPEND INBOX {3+}\r\nabc (\\Seen) {2+}\r\nde CATENATE (URL \"/INBOX/;UID=1/;SECTION=HEADER;PARTIAL=0.10\" TEXT {2+}\r\nfg URL \";UID=2\")\r\n",
		"a SETMETADATA INBOX (/private/comment {5+}\r\nhello /shared/vendor/x NIL)\r\nb GETMETADATA (DEPTH infinity MAXSIZE 3) \"\" (/private /shared)\r\nc NOTIFY SET (personal (MailboxMetadataChange ServerMetadataChange))\r\n",
		"a GETQUOTAROOT INBOX\r\nb GETQUOTA \"\"\r\nc FETCH 1:* (EMAILID THREADID SAVEDATE PREVIEW (LAZY))\r\nd SEARCH SAVEDBEFORE 1-Jan-2030 EMAILID M1\r\ne STATUS INBOX (MAILBOXID SIZE)\r\n",
	} {
		f.Add([]byte(s))
	}
	e := startServer(f, func(c *config.Config) {
		c.Login.Delay = 0
		c.Storage.MinFreeSpace = 0
	})
	e.deliver(f, "INBOX", testMessage("one", "hello"))
	e.deliver(f, "INBOX", testMessage("two", "world"))

	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) > 64<<10 {
			return
		}
		c, err := net.DialTimeout("tcp", e.addr, 5*time.Second)
		if err != nil {
			t.Fatalf("imapd no longer accepts connections: %v", err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		r := bufio.NewReader(c)
		if l, err := r.ReadString('\n'); err != nil || !imapLine.MatchString(l) {
			t.Fatalf("greeting %q: %v", l, err)
		}
		go func() {
			c.Write([]byte("L LOGIN demo demo\r\nS SELECT INBOX\r\n"))
			c.Write(in)
			c.Write([]byte("\r\nZ LOGOUT\r\n"))
			c.(*net.TCPConn).CloseWrite()
		}()
		for {
			if _, err := r.ReadString('\n'); err != nil {
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					t.Fatalf("imapd did not end the session after the input")
				}
				return
			}
		}
	})
}
