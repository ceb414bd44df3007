package main

import (
	"crypto/tls"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

// offlineimap two-way, over STARTTLS and implicit TLS, verifying the
// server's certificate: folders and messages come down, a flag set on
// the server comes down, and a flag set locally and a message written
// locally go up. Once more over STARTTLS with usecompression, where
// imaplib2 turns on COMPRESS=DEFLATE (RFC 4978) with zlib.
func TestOfflineimapTwoWay(t *testing.T) {
	offlineimap, err := exec.LookPath("offlineimap")
	if err != nil {
		t.Skip("offlineimap not installed (Debian package offlineimap3)")
	}
	for _, tc := range []struct {
		name     string
		ssl      bool
		compress bool
	}{{"starttls", false, false}, {"implicit", true, false}, {"starttls-compress", false, true}} {
		t.Run(tc.name, func(t *testing.T) {
			// imaplib2 reads the socket in one thread and writes it in
			// another, through one OpenSSL object, which OpenSSL does
			// not allow. After STARTTLS its new reader thread takes in
			// the TLS 1.3 NewSessionTicket messages (RFC 8446 4.6.1;
			// crypto/tls sends them in the server's first flight) just
			// as its writer thread sends CAPABILITY. Under load the
			// write now and then returns without a byte reaching the
			// socket; the server, which has nothing to read, ends the
			// session at login.timeout, and offlineimap reports "Failed
			// to start TLS connection: command: CAPABILITY =>
			// connection terminated". Without tickets no record follows
			// the handshake until the server's reply. Over implicit TLS
			// the client reads the tickets with the greeting, before it
			// writes anything, so that run keeps them.
			tune := func(c *tls.Config) { c.SessionTicketsDisabled = !tc.ssl }
			e := startServerTLS(t, tune)
			if err := e.mailbox(t).Create("Projects"); err != nil {
				t.Fatal(err)
			}
			for _, s := range []string{"alpha", "bravo", "charlie"} {
				e.deliver(t, "INBOX", testMessage(s, s+" body\r\n"))
			}
			e.deliver(t, "Projects", testMessage("delta", "delta body\r\n"))

			dir := t.TempDir()
			local := filepath.Join(dir, "mail")
			addr := e.addr
			ssl := "no"
			if tc.ssl {
				addr, ssl = e.tlsAddr, "yes"
			}
			_, port, _ := strings.Cut(addr, ":")
			// remotehost is a name the generated certificate covers, so
			// the client's verification against sslcacertfile is real.
			conf := fmt.Sprintf(`[general]
accounts = tern
metadata = %s/meta
maxsyncaccounts = 1

[Account tern]
localrepository = local
remoterepository = remote

[Repository local]
type = Maildir
localfolders = %s

[Repository remote]
type = IMAP
remotehost = localhost
remoteport = %s
remoteuser = demo
remotepass = demo
ssl = %s
starttls = %s
sslcacertfile = %s
folderfilter = lambda f: f in ['INBOX', 'Projects']
createfolders = False
usecompression = %s
`, dir, local, port, ssl, map[bool]string{true: "no", false: "yes"}[tc.ssl], e.cfg.TLS.Cert,
				map[bool]string{true: "yes", false: "no"}[tc.compress])
			rc := filepath.Join(dir, "offlineimaprc")
			if err := os.WriteFile(rc, []byte(conf), 0o600); err != nil {
				t.Fatal(err)
			}
			sync := func() {
				t.Helper()
				cmd := exec.Command(offlineimap, "-c", rc, "-o", "-u", "basic")
				cmd.Env = append(os.Environ(), "HOME="+dir)
				out, err := cmd.CombinedOutput()
				if err != nil || strings.Contains(string(out), "ERROR") {
					t.Fatalf("offlineimap: %v\n%s", err, out)
				}
			}

			sync()
			wantLocal(t, local, "INBOX", map[string]string{"alpha": "", "bravo": "", "charlie": ""})
			wantLocal(t, local, "Projects", map[string]string{"delta": ""})

			// On the server, through IMAP as another client would:
			// bravo is flagged.
			c := e.login(t, nil)
			selectInbox(t, c)
			uids := serverUIDs(t, e, "INBOX")
			storeFlag(t, c, uids["bravo"], imap.FlagFlagged)
			c.Logout().Wait()
			sync()
			wantLocal(t, local, "INBOX", map[string]string{"alpha": "", "bravo": "F", "charlie": ""})

			// Locally: alpha is read and a new message is written.
			files := localFiles(t, local, "INBOX")
			renameFlags(t, files["alpha"], "S")
			newMsg := filepath.Join(local, "Projects", "new", fmt.Sprintf("%d.local.test", time.Now().Unix()))
			if err := os.WriteFile(newMsg, []byte(strings.ReplaceAll(testMessage("echo", "echo body\r\n"), "\r\n", "\n")), 0o600); err != nil {
				t.Fatal(err)
			}
			sync()
			wantServer(t, e, "INBOX", map[string]string{"alpha": `\Seen`, "bravo": `\Flagged`, "charlie": ""})
			wantServer(t, e, "Projects", map[string]string{"delta": "", "echo": ""})
			// offlineimap renames the uploaded message to carry its UID;
			// the local side still has it once.
			wantLocal(t, local, "Projects", map[string]string{"delta": "", "echo": ""})
			if n := e.srv.compressed.Load(); (n > 0) != tc.compress {
				t.Fatalf("%d sessions compressed, usecompression = %v", n, tc.compress)
			}
		})
	}
}
