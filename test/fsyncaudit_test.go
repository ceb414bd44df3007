package e2e

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestFsyncAudit traces lmtpd with strace(1) while smtpd hands it messages
// from concurrent SMTP sessions, and checks the order of system calls for
// every message: the message file is written and fsynced, linked into
// new/, then an fsync of new/ that began after the link has ended, and
// only then is the LMTP 250 for it written (on which smtpd's own 250
// waits). The fsync of new/ may be another delivery's: deliveries that end
// together share one (group commit), which the test reports.
func TestFsyncAudit(t *testing.T) {
	strace := needTool(t, "strace")
	tn := StartTern(t)
	tn.Stop(t, "lmtpd")
	trace := filepath.Join(tn.Dir, "lmtpd.strace")
	cmd := exec.Command(strace, "-f", "-qq", "-y", "-s", "4096",
		"-e", "trace=read,write,fsync,fdatasync,linkat,link,rename,renameat2",
		"-o", trace, filepath.Join(binDir, "lmtpd"), "-config", tn.Config)
	cmd.Dir = tn.Dir
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		// SIGTERM to lmtpd itself (strace's child), then strace ends.
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", cmd.Process.Pid, cmd.Process.Pid)); err == nil {
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil {
					syscall.Kill(pid, syscall.SIGTERM)
				}
			}
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}
	t.Cleanup(stop)
	waitListening(t, tn.LMTP, cmd)

	const sessions, perSession = 8, 5
	var wg sync.WaitGroup
	replies := make([]string, sessions*perSession)
	for s := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := Dial(t, tn.MX)
			c.SMTPReply()
			c.Send("EHLO client.example\r\n")
			c.SMTPReply()
			for m := range perSession {
				id := s*perSession + m
				c.Send("MAIL FROM:<a@remote.test>\r\n")
				c.SMTPReply()
				c.Send("RCPT TO:<demo@example.test>\r\n")
				c.SMTPReply()
				c.Send("DATA\r\n")
				c.SMTPReply()
				c.Send(fmt.Sprintf("Subject: audit %d\r\nMessage-ID: <audit-%d@client.example>\r\n\r\nbody %d\r\n.\r\n", id, id, id))
				replies[id] = c.SMTPReply()
			}
			c.Send("QUIT\r\n")
		}()
	}
	wg.Wait()
	stop()
	for id, r := range replies {
		if !strings.HasPrefix(r, "250 ") {
			t.Fatalf("message %d: %q", id, r)
		}
	}
	if os.Getenv("TERN_KEEP_TRACE") != "" {
		b, _ := os.ReadFile(trace)
		os.WriteFile(os.Getenv("TERN_KEEP_TRACE"), b, 0o600)
	}
	calls := parseStrace(t, trace)
	newDir := filepath.Join(tn.Maildir("demo"), "new")
	dirSyncs := 0
	for _, c := range calls {
		if c.name == "fsync" && c.fdPath == newDir {
			dirSyncs++
		}
	}
	for id := range sessions * perSession {
		if err := auditMessage(calls, fmt.Sprintf("Message-ID: <audit-%d@client.example>", id), newDir); err != nil {
			t.Errorf("message %d: %v", id, err)
		}
	}
	t.Logf("%d messages, %d fsyncs of new/", sessions*perSession, dirSyncs)
}

// straceCall is one system call of a trace: its entry and exit are lines
// start and end of the (time-ordered) trace.
type straceCall struct {
	pid        string
	name, args string
	start, end int
	fd         string // the first argument's descriptor number
	fdPath     string // and what it names (strace -y)
}

var (
	straceLine    = regexp.MustCompile(`^(\d+) +(\w+)\((.*)$`)
	straceResumed = regexp.MustCompile(`^(\d+) +<\.\.\. (\w+) resumed>(.*)$`)
	straceFD      = regexp.MustCompile(`^(\d+)<([^>]*)>`)
)

func parseStrace(t *testing.T, path string) []*straceCall {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var calls []*straceCall
	pending := map[string]*straceCall{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for i := 0; sc.Scan(); i++ {
		l := sc.Text()
		if m := straceResumed.FindStringSubmatch(l); m != nil {
			if c := pending[m[1]]; c != nil && c.name == m[2] {
				c.args += m[3]
				c.end = i
				delete(pending, m[1])
			}
			continue
		}
		m := straceLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		c := &straceCall{pid: m[1], name: m[2], args: m[3], start: i, end: i}
		if fm := straceFD.FindStringSubmatch(c.args); fm != nil {
			c.fd, c.fdPath = fm[1], fm[2]
		}
		if strings.HasSuffix(l, "<unfinished ...>") {
			c.end = -1
			pending[c.pid] = c
		}
		calls = append(calls, c)
	}
	return calls
}

// auditMessage checks the calls for the message whose text holds marker.
func auditMessage(calls []*straceCall, marker, newDir string) error {
	// The DATA read on the LMTP connection, and the message file written.
	var data, write *straceCall
	for _, c := range calls {
		if data == nil && c.name == "read" && strings.HasPrefix(c.fdPath, "socket:") && strings.Contains(c.args, marker) {
			data = c
		}
		if write == nil && c.name == "write" && strings.Contains(c.fdPath, "/tmp/") && strings.Contains(c.args, marker) {
			write = c
		}
	}
	if data == nil || write == nil {
		return fmt.Errorf("no DATA read (%v) or file write (%v) in the trace", data != nil, write != nil)
	}
	// Then that file's fsync and its link into new/ (the descriptor is
	// the file's until it is closed, after the link).
	var fsync, link *straceCall
	for _, c := range calls {
		if c.start <= write.end {
			continue
		}
		if fsync == nil && c.name == "fsync" && c.fd == write.fd {
			fsync = c
		}
		if fsync != nil && c.start > fsync.end && c.name == "linkat" && strings.Contains(c.args, `"/proc/self/fd/`+write.fd+`"`) {
			link = c
			break
		}
	}
	if fsync == nil || link == nil || !strings.Contains(link.args, newDir+"/") || !strings.HasSuffix(link.args, "= 0") {
		return fmt.Errorf("file fsync %v, link into new/ %v", fsync, link)
	}
	// The reply: the next 250 written on the LMTP connection.
	var reply *straceCall
	for _, c := range calls {
		if c.start > data.end && c.name == "write" && c.fd == data.fd && c.fdPath == data.fdPath && strings.Contains(c.args, `"250 `) {
			reply = c
			break
		}
	}
	if reply == nil || reply.start < link.end {
		return fmt.Errorf("no 250 after the link (reply %v)", reply)
	}
	// An fsync of new/ that began after the link and ended before the 250.
	for _, c := range calls {
		if c.name == "fsync" && c.fdPath == newDir && c.start > link.end && c.end >= 0 && c.end < reply.start && strings.HasSuffix(c.args, "= 0") {
			return nil
		}
	}
	return fmt.Errorf("no fsync of %s between the link (line %d) and the 250 (line %d)", newDir, link.end+1, reply.start+1)
}
