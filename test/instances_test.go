package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestTwoInstancesSideBySide: two complete sets of daemons on one machine,
// told apart only by their directories (state_dir, runtime_dir) and ports.
// Each one's sendmail reaches its own smtpd through the submit socket in
// its runtime_dir, and the mail lands in its own Maildir only.
func TestTwoInstancesSideBySide(t *testing.T) {
	a, b := StartTern(t), StartTern(t)
	if a.Submit == b.Submit || a.LMTP == b.LMTP {
		t.Fatalf("instances share sockets: %s %s", a.Submit, a.LMTP)
	}
	sendmail := filepath.Join(t.TempDir(), "sendmail")
	if err := os.Symlink(filepath.Join(binDir, "mailq"), sendmail); err != nil {
		t.Fatal(err)
	}
	for i, tn := range []*Tern{a, b} {
		cmd := exec.Command(sendmail, "-C", tn.Config, "-t")
		cmd.Stdin = strings.NewReader("To: demo@example.test\nSubject: instance " + string(rune('A'+i)) + "\n\nbody\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("sendmail to instance %d: %v\n%s", i, err, out)
		}
	}
	for i, tn := range []*Tern{a, b} {
		want := "Subject: instance " + string(rune('A'+i))
		deadline := time.Now().Add(10 * time.Second)
		for {
			files := maildirFiles(t, tn.Maildir("demo"))
			if len(files) == 1 {
				got, err := os.ReadFile(filepath.Join(tn.Maildir("demo"), files[0]))
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(string(got), want) {
					t.Errorf("instance %d got the other's message:\n%s", i, got)
				}
				break
			}
			if len(files) > 1 || time.Now().After(deadline) {
				t.Fatalf("instance %d: %d messages in its Maildir, want 1", i, len(files))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}
