package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/smtp"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// sendSMTP sends one message to the MX port with Go's net/smtp client.
func sendSMTP(t testing.TB, tn *Tern, to, subject string) {
	t.Helper()
	msg := fmt.Sprintf("From: alice@example.test\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%d@example.test>\r\n\r\nhello\r\n",
		to, subject, time.Now().UnixNano())
	// Plain SMTP, as another MTA without a trusted certificate for us
	// would send; smtp.SendMail would insist on verifying STARTTLS.
	c, err := smtp.Dial(tn.MX)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	step := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("send %q: %v", subject, err)
		}
	}
	step(c.Hello("client.example.test"))
	step(c.Mail("alice@example.test"))
	step(c.Rcpt(to))
	w, err := c.Data()
	step(err)
	_, err = w.Write([]byte(msg))
	step(err)
	step(w.Close())
	step(c.Quit())
}

// imapEvents is an IMAP client whose unilateral EXISTS/EXPUNGE/FETCH
// updates are delivered on channels.
type imapEvents struct {
	*imapclient.Client
	exists  chan uint32
	expunge chan uint32
	flags   chan uint32
}

func dialIMAP(t testing.TB, tn *Tern) *imapEvents {
	t.Helper()
	ev := &imapEvents{exists: make(chan uint32, 16), expunge: make(chan uint32, 16), flags: make(chan uint32, 16)}
	c, err := imapclient.DialInsecure(tn.IMAP, &imapclient.Options{
		UnilateralDataHandler: &imapclient.UnilateralDataHandler{
			Mailbox: func(d *imapclient.UnilateralDataMailbox) {
				if d.NumMessages != nil {
					ev.exists <- *d.NumMessages
				}
			},
			Expunge: func(seq uint32) { ev.expunge <- seq },
			Fetch: func(m *imapclient.FetchMessageData) {
				ev.flags <- m.SeqNum
				for m.Next() != nil {
				}
			},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login("demo", "demo").Wait(); err != nil {
		t.Fatal(err)
	}
	ev.Client = c
	return ev
}

func waitFor(t testing.TB, what string, ch chan uint32, within time.Duration) uint32 {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(within):
		t.Fatalf("no %s within %v", what, within)
		return 0
	}
}

// TestIdleSeesDeliveryThroughSMTPD: a session idling on INBOX learns of a
// message delivered through smtpd and lmtpd within 2 s (issue 6).
func TestIdleSeesDeliveryThroughSMTPD(t *testing.T) {
	tn := StartTern(t)
	c := dialIMAP(t, tn)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	idle, err := c.Idle()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	sendSMTP(t, tn, "demo@example.test", "idle")
	if n := waitFor(t, "EXISTS", c.exists, 2*time.Second); n != 1 {
		t.Errorf("EXISTS %d, want 1", n)
	}
	t.Logf("EXISTS %v after the SMTP transaction began", time.Since(start))
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatal(err)
	}
}

// TestPOP3AndIMAPTogether: POP3 deletes reach an IDLE-ing IMAP session as
// EXPUNGE, and UIDL values survive IMAP flag changes and a pop3d restart
// (issue 7).
func TestPOP3AndIMAPTogether(t *testing.T) {
	tn := StartTern(t)
	for i := 0; i < 3; i++ {
		sendSMTP(t, tn, "demo@example.test", fmt.Sprintf("m%d", i))
	}
	uidl := func() string {
		return python(t, `
import poplib, sys
host, port = sys.argv[1].rsplit(":", 1)
p = poplib.POP3(host, int(port), timeout=30)
p.user("demo"); p.pass_("demo")
print(b"\n".join(p.uidl()[1]).decode())
p.quit()
`, tn.POP3)
	}
	before := uidl()
	if strings.Count(before, "\n") != 3 {
		t.Fatalf("UIDL before: %q", before)
	}

	c := dialIMAP(t, tn)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	store := c.Store(imap.SeqSetNum(1, 2, 3), &imap.StoreFlags{
		Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagSeen, imap.FlagFlagged, "$Label1"},
	}, nil)
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	if after := uidl(); after != before {
		t.Errorf("UIDL changed after IMAP flag changes:\nbefore %q\nafter  %q", before, after)
	}
	tn.Stop(t, "pop3d")
	tn.Start(t, "pop3d")
	if after := uidl(); after != before {
		t.Errorf("UIDL changed after a pop3d restart:\nbefore %q\nafter  %q", before, after)
	}

	idle, err := c.Idle()
	if err != nil {
		t.Fatal(err)
	}
	python(t, `
import poplib, sys
host, port = sys.argv[1].rsplit(":", 1)
p = poplib.POP3(host, int(port), timeout=30)
p.user("demo"); p.pass_("demo")
p.dele(2)
p.quit()
`, tn.POP3)
	if seq := waitFor(t, "EXPUNGE", c.expunge, 2*time.Second); seq != 2 {
		t.Errorf("EXPUNGE %d, want 2", seq)
	}
	idle.Close()
	idle.Wait()
	// Retrieving by POP3 left IMAP's \Seen alone on the unread message.
	sendSMTP(t, tn, "demo@example.test", "unread")
	python(t, `
import poplib, sys
host, port = sys.argv[1].rsplit(":", 1)
p = poplib.POP3(host, int(port), timeout=30)
p.user("demo"); p.pass_("demo")
n, _ = p.stat()
p.retr(n)
p.quit()
`, tn.POP3)
	// NOOP lets the session learn of the new message (RFC 9051 6.1.2).
	if err := c.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	msgs, err := c.Fetch(imap.SeqSetNum(3), &imap.FetchOptions{Flags: true}).Collect()
	if err != nil || len(msgs) != 1 {
		t.Fatalf("fetch: %v %v", msgs, err)
	}
	for _, f := range msgs[0].Flags {
		if f == imap.FlagSeen {
			t.Error("RETR over POP3 set \\Seen")
		}
	}
}

// TestSendmailDelivers: the Unix submission command delivers a message
// written the way cron and scripts write them (issue 8).
func TestSendmailDelivers(t *testing.T) {
	tn := StartTern(t)
	sendmail := filepath.Join(t.TempDir(), "sendmail")
	if err := os.Symlink(filepath.Join(binDir, "mailq"), sendmail); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(sendmail, "-C", tn.Config, "-t")
	cmd.Stdin = strings.NewReader("To: demo@example.test\nSubject: hi\n\nbody\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sendmail -t: %v\n%s", err, out)
	}
	// sendmail exits once the message is durable; smtpd hands it to
	// lmtpd at once, so it is in the Maildir or about to be.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if files := maildirFiles(t, tn.Maildir("demo")); len(files) == 1 {
			data, err := os.ReadFile(filepath.Join(tn.Maildir("demo"), files[0]))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(data), "Subject: hi") || !strings.Contains(string(data), "body") {
				t.Errorf("delivered message: %q", data)
			}
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("message not delivered; smtpd log:\n%s", tn.Log("smtpd"))
}

// TestSIGHUPCertificate: after the certificate files are replaced and
// imapd gets SIGHUP, new connections get the new certificate while an open
// session goes on (issue 9).
func TestSIGHUPCertificate(t *testing.T) {
	tn := StartTern(t)
	old := peerCert(t, tn.IMAPS)

	c := dialIMAP(t, tn)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	writeCert(t, filepath.Join(tn.Dir, "tls", "cert.pem"), filepath.Join(tn.Dir, "tls", "key.pem"))
	tn.procs["imapd"].Process.Signal(syscall.SIGHUP)
	deadline := time.Now().Add(5 * time.Second)
	for peerCert(t, tn.IMAPS) == old {
		if time.Now().After(deadline) {
			t.Fatal("imapd still presents the old certificate after SIGHUP")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := c.Noop().Wait(); err != nil {
		t.Errorf("open session broken by the reload: %v", err)
	}
	if !strings.Contains(tn.Log("imapd"), "SIGHUP") {
		t.Error("reload not logged")
	}
}

// peerCert returns the certificate a TLS listener presents.
func peerCert(t testing.TB, addr string) string {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return string(c.ConnectionState().PeerCertificates[0].Raw)
}

var certMu sync.Mutex

// writeCert replaces a certificate and key with a new self-signed pair,
// each file renamed into place as certificate tools do.
func writeCert(t testing.TB, certFile, keyFile string) {
	t.Helper()
	certMu.Lock()
	defer certMu.Unlock()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "renewed.example.test"},
		DNSNames:     []string{"mail.example.test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	for _, f := range []struct {
		path string
		blk  *pem.Block
	}{{keyFile, &pem.Block{Type: "PRIVATE KEY", Bytes: kder}}, {certFile, &pem.Block{Type: "CERTIFICATE", Bytes: der}}} {
		if err := os.WriteFile(f.path+".new", pem.EncodeToMemory(f.blk), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(f.path+".new", f.path); err != nil {
			t.Fatal(err)
		}
	}
}
