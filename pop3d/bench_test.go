package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// benchMessages is the size of the mailbox of BenchmarkRetrAll.
const benchMessages = 5000

// BenchmarkRetrAll measures what a downloading client costs: one session
// over a real socket that logs in, runs STAT and UIDL, RETRs every one of
// 5,000 messages (1 to 20 kB, LF line ends) one command at a time, as
// fetchmail does, and quits without deleting. The figure is seconds per
// session ("s/session"), and MB/s of message data.
func BenchmarkRetrAll(b *testing.B) {
	env := newEnv(b)
	root := env.root(b, "demo@example.test")
	// Files dropped straight into new/, as any Maildir tool may: the store
	// picks them up at the first login, which is part of the first
	// session but not of the others.
	var total int64
	for _, d := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o700); err != nil {
			b.Fatal(err)
		}
	}
	for i := 0; i < benchMessages; i++ {
		msg := benchMessage(i)
		total += int64(len(msg))
		name := fmt.Sprintf("1700000000.M%dP1Q%d.bench,S=%d", i, i, len(msg))
		if err := os.WriteFile(filepath.Join(root, "new", name), msg, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	ts := env.start(b)
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		retrAll(b, ts.addr)
	}
	elapsed := time.Since(start)
	b.ReportMetric(elapsed.Seconds()/float64(b.N), "s/session")
	b.ReportMetric(float64(total)*float64(b.N)/elapsed.Seconds()/1e6, "MB/s")
}

func retrAll(b *testing.B, addr string) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReaderSize(c, 64<<10)
	w := bufio.NewWriter(c)
	status := func(cmd string) string {
		if cmd != "" {
			w.WriteString(cmd + "\r\n")
			w.Flush()
		}
		l, err := r.ReadString('\n')
		if err != nil || !strings.HasPrefix(l, "+OK") {
			b.Fatalf("%s: %q %v", cmd, l, err)
		}
		return l
	}
	skipBody := func() int {
		n := 0
		for {
			l, err := r.ReadSlice('\n')
			if err == bufio.ErrBufferFull {
				n += len(l)
				continue
			}
			if err != nil {
				b.Fatal(err)
			}
			if len(l) == 3 && l[0] == '.' {
				return n
			}
			n += len(l)
		}
	}
	status("")
	status("USER demo")
	status("PASS demo")
	st := strings.Fields(status("STAT"))
	n, _ := strconv.Atoi(st[1])
	if n != benchMessages {
		b.Fatalf("STAT: %q", st)
	}
	status("UIDL")
	skipBody()
	for i := 1; i <= n; i++ {
		status("RETR " + strconv.Itoa(i))
		skipBody()
	}
	status("QUIT")
	io.Copy(io.Discard, r)
}

// benchMessage is a plain-text message of 1 to 20 kB.
func benchMessage(i int) []byte {
	var sb strings.Builder
	fmt.Fprintf(&sb, "Return-Path: <s%d@example.org>\nFrom: s%d@example.org\nTo: demo@example.test\nSubject: bench %d\nMessage-ID: <%d@bench>\n\n", i, i, i, i)
	size := 1000 + (i*7919)%19000
	line := strings.Repeat("lorem ipsum dolor sit amet ", 3) + "\n"
	for sb.Len() < size {
		sb.WriteString(line)
	}
	return []byte(sb.String())
}
