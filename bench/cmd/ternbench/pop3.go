package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// loadPOP3: one client downloads a whole mailbox, the way a POP3 client
// does: STAT, UIDL, then RETR of every message, and QUIT without DELE.
// Both servers index the Maildir in an untimed session first.
func (b *bench) loadPOP3(ctx context.Context) {
	n := b.sz.POP3Messages
	r := b.addRow(&row{Load: fmt.Sprintf("POP3: STAT + UIDL + RETR of all %d messages", n), Unit: "ms",
		Peer: "Dovecot", Target: "≤ 1.0× Dovecot", Met: func(t, p float64) bool { return t <= p }})
	if err := fillMaildir(b.tern.maildir(pop3User), n, b.sz.MessageSize, -1, -1); err != nil {
		r.fail("setup", err)
		return
	}
	if err := fillMaildir(b.dov.maildir(pop3User), n, b.sz.MessageSize, b.uid, b.gid); err != nil {
		r.fail("setup", err)
		return
	}
	user := pop3User + "@" + benchDomain
	warm := map[string]bool{}
	measure := func(addr string) (float64, error) {
		if !warm[addr] {
			if _, err := pop3Download(ctx, addr, user, benchPassword, n, false); err != nil {
				return 0, fmt.Errorf("first session: %w", err)
			}
			warm[addr] = true
		}
		d, err := pop3Download(ctx, addr, user, benchPassword, n, true)
		return float64(d.Microseconds()) / 1000, err
	}
	b.alternate(ctx, []*row{r}, func(ctx context.Context, round int) (float64, error) {
		// tern's daemons start afresh each round; its index on disk stays.
		warm[b.tern.listenAddr("pop3d")] = false
		return b.withTern(ctx, "pop3", round, []string{"pop3d"}, func(context.Context) (float64, error) {
			return measure(b.tern.listenAddr("pop3d"))
		})
	}, []peerRun{{r, func(ctx context.Context, _ int) (float64, error) {
		return measure(fmt.Sprintf("127.0.0.1:%d", b.dov.pop3))
	}}})
}

// pop3Download logs in, checks the message count, and with retr downloads
// everything. It returns the time from connecting to the answer to QUIT.
func pop3Download(ctx context.Context, addr, user, pass string, want int, retr bool) (time.Duration, error) {
	start := time.Now()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return 0, fmt.Errorf("pop3 dial: %w", err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	} else {
		conn.SetDeadline(time.Now().Add(10 * time.Minute))
	}
	r := bufio.NewReaderSize(conn, 64<<10)
	w := bufio.NewWriter(conn)
	status := func() (string, error) {
		l, err := r.ReadString('\n')
		if err != nil {
			return "", fmt.Errorf("pop3 read: %w", err)
		}
		if !strings.HasPrefix(l, "+OK") {
			return "", fmt.Errorf("pop3: %s", strings.TrimSpace(l))
		}
		return strings.TrimSpace(l), nil
	}
	// multi reads a dot-terminated body and returns its line count.
	multi := func() (int, int64, error) {
		lines, size := 0, int64(0)
		for {
			l, err := r.ReadSlice('\n')
			if err == bufio.ErrBufferFull {
				for err == bufio.ErrBufferFull {
					size += int64(len(l))
					l, err = r.ReadSlice('\n')
				}
			}
			if err != nil {
				return 0, 0, fmt.Errorf("pop3 read: %w", err)
			}
			if bytes.Equal(l, []byte(".\r\n")) {
				return lines, size, nil
			}
			lines++
			size += int64(len(l))
		}
	}
	cmd := func(c string) (string, error) {
		if _, err := w.WriteString(c + "\r\n"); err != nil {
			return "", err
		}
		if err := w.Flush(); err != nil {
			return "", fmt.Errorf("pop3 write: %w", err)
		}
		return status()
	}
	if _, err := status(); err != nil {
		return 0, err
	}
	if _, err := cmd("USER " + user); err != nil {
		return 0, err
	}
	if _, err := cmd("PASS " + pass); err != nil {
		return 0, err
	}
	st, err := cmd("STAT")
	if err != nil {
		return 0, err
	}
	f := strings.Fields(st)
	if len(f) < 2 {
		return 0, fmt.Errorf("pop3 STAT: %q", st)
	}
	if got, _ := strconv.Atoi(f[1]); got != want {
		return 0, fmt.Errorf("pop3 STAT: %d messages, want %d", got, want)
	}
	if retr {
		if _, err := cmd("UIDL"); err != nil {
			return 0, err
		}
		if n, _, err := multi(); err != nil {
			return 0, err
		} else if n != want {
			return 0, fmt.Errorf("pop3 UIDL: %d lines, want %d", n, want)
		}
		for i := 1; i <= want; i++ {
			if _, err := cmd("RETR " + strconv.Itoa(i)); err != nil {
				return 0, err
			}
			if _, size, err := multi(); err != nil {
				return 0, err
			} else if size == 0 {
				return 0, fmt.Errorf("pop3 RETR %d: empty", i)
			}
		}
	}
	if _, err := cmd("QUIT"); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}
