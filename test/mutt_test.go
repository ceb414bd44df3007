package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMuttIdleOverStartTLS drives mutt in tmux against imapd over STARTTLS
// (issue 15): mutt logs in, selects INBOX and IDLEs for longer than
// login.timeout, and a message delivered through smtpd then appears in
// its index without mutt reconnecting.
func TestMuttIdleOverStartTLS(t *testing.T) {
	for _, bin := range []string{"mutt", "tmux"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not installed (.ci/run installs it)", bin)
		}
	}
	tn := StartTern(t)
	// A short pre-login timeout and IDLE re-check, so that the test
	// shows a logged-in session outliving the first.
	tn.Stop(t, "imapd")
	cfg, err := os.ReadFile(tn.Config)
	if err != nil {
		t.Fatal(err)
	}
	conf := strings.Replace(string(cfg), "[imapd]\n", "[imapd]\nidle_recheck = \"1s\"\n", 1) +
		"[login]\ntimeout = \"2s\"\n"
	writeFile(t, tn.Config, conf)
	tn.Start(t, "imapd")

	dir := t.TempDir()
	cert, err := os.ReadFile(filepath.Join(tn.Dir, "tls", "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "certs"), string(cert))
	port := tn.IMAP[strings.LastIndexByte(tn.IMAP, ':')+1:]
	writeFile(t, filepath.Join(dir, "muttrc"), fmt.Sprintf(`set folder="imap://demo@127.0.0.1:%s/"
set spoolfile="+INBOX"
set imap_user="demo"
set imap_pass="demo"
set ssl_starttls=yes
set ssl_force_tls=yes
set ssl_verify_host=no
set certificate_file="%s/certs"
set imap_idle=yes
set imap_keepalive=300
set mail_check=1
set timeout=1
set header_cache=""
set message_cachedir=""
set sort=date
set index_format="%%4C %%s"
`, port, dir))

	session := fmt.Sprintf("tern-mutt-%d", os.Getpid())
	tmux := func(args ...string) string {
		out, err := exec.Command("tmux", append([]string{"-L", session}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("tmux %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	tmux("new-session", "-d", "-s", session, "-x", "160", "-y", "40",
		"env", "HOME="+dir, "TERM=xterm", "mutt", "-n", "-F", filepath.Join(dir, "muttrc"))
	t.Cleanup(func() { exec.Command("tmux", "-L", session, "kill-server").Run() })
	screen := func() string { return tmux("capture-pane", "-p", "-t", session) }
	waitScreen := func(what string, within time.Duration) {
		t.Helper()
		deadline := time.Now().Add(within)
		for time.Now().Before(deadline) {
			if strings.Contains(screen(), what) {
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
		t.Fatalf("mutt screen has no %q after %v:\n%s\nimapd log:\n%s", what, within, screen(), tn.Log("imapd"))
	}
	sendSMTP(t, tn, "demo@example.test", "before idle")
	waitScreen("before idle", 15*time.Second)

	// Longer than login.timeout: the session must stay up (issue 15:
	// IDLE after STARTTLS got SERVERBUG at 60 s, the session was cut).
	time.Sleep(5 * time.Second)
	sendSMTP(t, tn, "demo@example.test", "after idle")
	waitScreen("after idle", 15*time.Second)

	log := tn.Log("imapd")
	if n := strings.Count(log, "event=login"); n != 1 {
		t.Errorf("mutt logged in %d times, want 1 (a reconnect means the session was dropped)", n)
	}
	if !strings.Contains(log, "name=STARTTLS") {
		t.Errorf("mutt did not use STARTTLS")
	}
	if !strings.Contains(log, "name=IDLE") {
		t.Errorf("mutt never sent IDLE")
	}
	if strings.Contains(log, "SERVERBUG") || strings.Contains(log, "Autologout") {
		t.Errorf("imapd log:\n%s", log)
	}
	tmux("send-keys", "-t", session, "q")
}
