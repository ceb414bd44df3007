package e2e

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestSIGTERMLeavesNoSpoolFiles: smtpd is stopped with SIGTERM while
// transactions are in flight: some finished (acknowledged), some with the
// final dot sent and the reply pending, some halfway through a message
// larger than smtpd.memory_buffer (so spooled to queue/tmp as it arrives).
// Every acknowledged message is delivered, and queue/tmp is empty after
// the exit: a clean stop leaves no temporary files.
func TestSIGTERMLeavesNoSpoolFiles(t *testing.T) {
	tn := StartTern(t)
	// 400 KiB: above the 256 KiB memory_buffer, in 4 KiB lines.
	line := strings.Repeat("0123456789abcdef", 255) + "\r\n"
	chunk := strings.Repeat(line, 10) // 40 KiB
	// Within smtpd.max_connections_per_ip (20).
	const n = 18
	type result struct {
		subject string
		reply   string
	}
	results := make([]result, n)
	var acked, midData sync.WaitGroup
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		// 0: done before SIGTERM, 1: dot sent at SIGTERM, 2: mid-DATA
		kind := min(i%6, 2)
		if kind == 0 {
			acked.Add(1)
		} else {
			midData.Add(1)
		}
		// Whatever happens, the client reports once that it is where the
		// SIGTERM should find it, so that the test never hangs.
		ready := sync.OnceFunc(func() {
			if kind == 0 {
				acked.Done()
			} else {
				midData.Done()
			}
		})
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer ready()
			subject := fmt.Sprintf("sigterm %d kind %d", i, kind)
			results[i].subject = subject
			c := Dial(t, tn.MX)
			c.SMTPReply()
			for _, cmd := range []string{"EHLO client.example", "MAIL FROM:<a@remote.test>", "RCPT TO:<demo@example.test>", "DATA"} {
				c.Send(cmd + "\r\n")
				if r := c.SMTPReply(); r[0] != '2' && r[0] != '3' {
					t.Errorf("%s: %s -> %q", subject, cmd, r)
					return
				}
			}
			c.Send("Subject: " + subject + "\r\nFrom: a@remote.test\r\n\r\n")
			for range 10 {
				if _, err := c.c.Write([]byte(chunk)); err != nil {
					t.Errorf("%s: write: %v", subject, err)
					return
				}
			}
			switch kind {
			case 0:
				c.Send(".\r\n")
				results[i].reply = readReply(c.r)
				ready()
			case 1:
				ready()
				<-stop
				c.c.Write([]byte(".\r\n"))
				results[i].reply = readReply(c.r)
			case 2:
				ready()
				<-stop
				// Keep the transaction open until smtpd closes it.
				for {
					c.c.SetWriteDeadline(time.Now().Add(time.Second))
					if _, err := c.c.Write([]byte(line)); err != nil {
						break
					}
					time.Sleep(20 * time.Millisecond)
				}
				results[i].reply = readReply(c.r)
			}
		}()
	}
	acked.Wait()
	midData.Wait()
	tmp := filepath.Join(tn.Dir, "spool", "queue", "tmp")
	if ents, _ := os.ReadDir(tmp); len(ents) == 0 {
		t.Fatalf("no spool file in %s before SIGTERM: the test does not test", tmp)
	}
	close(stop)
	tn.Stop(t, "smtpd")
	wg.Wait()

	ents, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		t.Errorf("left in queue/tmp after SIGTERM: %s", e.Name())
	}
	// Every 250 stands for a delivered (or queued) message.
	delivered := map[string]bool{}
	for _, f := range maildirFiles(t, tn.Maildir("demo")) {
		b, err := os.ReadFile(filepath.Join(tn.Maildir("demo"), f))
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(strings.NewReader(string(b)))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			if s, ok := strings.CutPrefix(sc.Text(), "Subject: "); ok {
				delivered[s] = true
				break
			}
		}
	}
	queued, _ := os.ReadDir(filepath.Join(tn.Dir, "spool", "queue", "env"))
	ackedN := 0
	for _, r := range results {
		t.Logf("%s: %q", r.subject, r.reply)
		if !strings.HasPrefix(r.reply, "250") {
			continue
		}
		ackedN++
		if !delivered[r.subject] && len(queued) == 0 {
			t.Errorf("%s was acknowledged (%q) but is neither delivered nor queued", r.subject, r.reply)
		}
	}
	if ackedN < 3 {
		t.Errorf("%d messages acknowledged, want at least 3", ackedN)
	}
}

// readReply reads an SMTP reply, or returns the error as text.
func readReply(r *bufio.Reader) string {
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			return "error: " + err.Error()
		}
		if len(l) < 4 || l[3] != '-' {
			return strings.TrimRight(l, "\r\n")
		}
	}
}
