package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// message builds message number i of about size bytes: real headers (so
// that SEARCH and FETCH have something to chew on) and a text body.
func message(i, size int) []byte {
	var b bytes.Buffer
	date := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Minute)
	fmt.Fprintf(&b, "Return-Path: <sender%d@example.org>\n", i%97)
	fmt.Fprintf(&b, "From: Sender %d <sender%d@example.org>\n", i%97, i%97)
	fmt.Fprintf(&b, "To: <someone@%s>\n", benchDomain)
	fmt.Fprintf(&b, "Subject: Bench message %d about topic%d\n", i, i%13)
	fmt.Fprintf(&b, "Date: %s\n", date.Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: <%d.%d@bench.example.org>\n", i, date.Unix())
	b.WriteString("MIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\n\n")
	line := "The quick brown fox jumps over the lazy dog while the mail server keeps every byte.\n"
	for n := 0; b.Len() < size; n++ {
		if n%7 == 0 {
			fmt.Fprintf(&b, "paragraph %d of message %d\n", n, i)
		}
		b.WriteString(line)
	}
	return b.Bytes()
}

// fillMaildir writes n messages straight into dir's cur/, as another
// program (a migration, procmail, rsync) would: no index, no fsync, the size
// in the name. A third are \Seen, a tenth \Flagged. uid < 0 leaves the files
// to root.
func fillMaildir(dir string, n, size, uid, gid int) error {
	for _, sub := range []string{"", "cur", "new", "tmp"} {
		p := filepath.Join(dir, sub)
		if err := os.MkdirAll(p, 0o700); err != nil {
			return fmt.Errorf("make maildir %q: %w", p, err)
		}
		if uid >= 0 {
			if err := os.Chown(p, uid, gid); err != nil {
				return fmt.Errorf("chown %q: %w", p, err)
			}
		}
	}
	// Home directories above the Maildir belong to the user too.
	if uid >= 0 {
		_ = os.Chown(filepath.Dir(dir), uid, gid)
	}
	base := time.Now().Unix() - int64(n)
	for i := 0; i < n; i++ {
		body := message(i, size)
		var flags []string
		if i%10 == 0 {
			flags = append(flags, "F")
		}
		if i%3 == 0 {
			flags = append(flags, "S")
		}
		name := fmt.Sprintf("%d.M%dP%d.ternbench,S=%d:2,%s", base+int64(i), i, os.Getpid(), len(body), strings.Join(flags, ""))
		p := filepath.Join(dir, "cur", name)
		if err := os.WriteFile(p, body, 0o600); err != nil {
			return fmt.Errorf("fill maildir: %w", err)
		}
		if uid >= 0 {
			if err := os.Chown(p, uid, gid); err != nil {
				return fmt.Errorf("chown %q: %w", p, err)
			}
		}
		mt := time.Unix(base+int64(i), 0)
		_ = os.Chtimes(p, mt, mt)
	}
	return nil
}

// countMaildir counts the messages in new/ and cur/.
func countMaildir(dir string) int {
	n := 0
	for _, sub := range []string{"new", "cur"} {
		f, err := os.Open(filepath.Join(dir, sub))
		if err != nil {
			continue
		}
		names, _ := f.Readdirnames(-1)
		f.Close()
		for _, name := range names {
			if !strings.HasPrefix(name, ".") {
				n++
			}
		}
	}
	return n
}
