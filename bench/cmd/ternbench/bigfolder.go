package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// loadBigFolder: an INBOX of N small messages written straight into the
// Maildir, so that each server meets it without an index. "Cold" is the
// first SELECT + UID FETCH 1:* (FLAGS), which builds the index (the files
// are in the page cache either way); "warm" is a later session on the same
// server process. Times are from sending SELECT to the tagged OK, login
// excluded.
func (b *bench) loadBigFolder(ctx context.Context) {
	n := b.sz.BigFolder
	name := func(s string) string { return fmt.Sprintf("big folder (%d messages): %s", n, s) }
	noSlower := func(t, p float64) bool { return t <= p }
	coldSel := b.addRow(&row{Load: name("cold SELECT"), Unit: "ms", Peer: "Dovecot",
		Target: "≤ 1.0× Dovecot", Met: noSlower})
	coldAll := b.addRow(&row{Load: name("cold SELECT + UID FETCH 1:* (FLAGS)"), Unit: "ms", Peer: "Dovecot"})
	warmSel := b.addRow(&row{Load: name("warm SELECT"), Unit: "ms", Peer: "Dovecot",
		Target: "≤ 100 ms", Met: func(t, _ float64) bool { return t <= 100 }})
	warmAll := b.addRow(&row{Load: name("warm SELECT + UID FETCH 1:* (FLAGS)"), Unit: "ms", Peer: "Dovecot",
		Target: "≤ 1.0× Dovecot", Met: noSlower})
	// RFC 5256: server-side sorting and threading as webmail asks for it.
	sorts := []*row{
		b.addRow(&row{Load: name("warm SORT (DATE)"), Unit: "ms", Peer: "Dovecot",
			Target: "≤ 1.0× Dovecot", Met: func(t, p float64) bool { return t <= p }}),
		b.addRow(&row{Load: name("warm THREAD REFERENCES"), Unit: "ms", Peer: "Dovecot",
			Target: "≤ 1.0× Dovecot", Met: func(t, p float64) bool { return t <= p }}),
	}
	sortCmds := []string{"SORT (DATE) UTF-8 ALL", "THREAD REFERENCES UTF-8 ALL"}
	// RFC 7162 3.2.5: what a phone or desktop client does on reconnect.
	qresync := b.addRow(&row{Load: name("QRESYNC SELECT after 10 flag changes + 10 expunges"), Unit: "ms", Peer: "Dovecot",
		Target: "≤ 1.0× Dovecot", Met: noSlower})
	logf("  writing %d messages into each server's Maildir", n)
	if err := fillMaildir(b.tern.maildir(bigUser), n, 1500, -1, -1); err != nil {
		coldSel.fail("setup", err)
		return
	}
	if err := fillMaildir(b.dov.maildir(bigUser), n, 1500, b.uid, b.gid); err != nil {
		coldSel.fail("setup", err)
		return
	}
	user := bigUser + "@" + benchDomain
	dovAddr := fmt.Sprintf("127.0.0.1:%d", b.dov.imap)

	// One tern imapd serves the cold and the warm sessions, as in real
	// life; the A B alternation is between whole sessions.
	_, err := b.withTern(ctx, "bigfolder", 0, []string{"imapd"}, func(ctx context.Context) (float64, error) {
		ternAddr := b.tern.listenAddr("imapd")
		sel, all, err := selectFetchAll(ctx, ternAddr, user, n)
		if err != nil {
			coldSel.fail("tern", err)
		} else {
			coldSel.Tern, coldAll.Tern = append(coldSel.Tern, sel), append(coldAll.Tern, all)
			logf("  tern cold: SELECT %s ms, with FETCH %s ms", num(sel), num(all))
		}
		sel, all, err = selectFetchAll(ctx, dovAddr, user, n)
		if err != nil {
			coldSel.fail("Dovecot", err)
		} else {
			coldSel.Peers, coldAll.Peers = append(coldSel.Peers, sel), append(coldAll.Peers, all)
			logf("  Dovecot cold: SELECT %s ms, with FETCH %s ms", num(sel), num(all))
		}
		for i := 0; i < b.sz.WarmRounds && ctx.Err() == nil; i++ {
			sel, all, err := selectFetchAll(ctx, ternAddr, user, n)
			if err != nil {
				warmSel.fail("tern", err)
			} else {
				warmSel.Tern, warmAll.Tern = append(warmSel.Tern, sel), append(warmAll.Tern, all)
				logf("  tern warm: SELECT %s ms, with FETCH %s ms", num(sel), num(all))
			}
			sel, all, err = selectFetchAll(ctx, dovAddr, user, n)
			if err != nil {
				warmSel.fail("Dovecot", err)
			} else {
				warmSel.Peers, warmAll.Peers = append(warmSel.Peers, sel), append(warmAll.Peers, all)
				logf("  Dovecot warm: SELECT %s ms, with FETCH %s ms", num(sel), num(all))
			}
		}
		for k, cmd := range sortCmds {
			r := sorts[k]
			for i := 0; i < b.sz.WarmRounds && ctx.Err() == nil; i++ {
				if ms, err := timeWarm(ctx, ternAddr, user, n, cmd); err != nil {
					r.fail("tern", err)
				} else {
					r.Tern = append(r.Tern, ms)
					logf("  tern warm %s: %s ms", cmd, num(ms))
				}
				if ms, err := timeWarm(ctx, dovAddr, user, n, cmd); err != nil {
					r.fail("Dovecot", err)
				} else {
					r.Peers = append(r.Peers, ms)
					logf("  Dovecot warm %s: %s ms", cmd, num(ms))
				}
			}
		}
		// Last: its expunges change the folder the rows above measure.
		for i := 0; i < b.sz.WarmRounds && ctx.Err() == nil; i++ {
			if ms, err := timeQResync(ctx, ternAddr, user, n, i); err != nil {
				qresync.fail("tern", err)
			} else {
				qresync.Tern = append(qresync.Tern, ms)
				logf("  tern QRESYNC SELECT: %s ms", num(ms))
			}
			if ms, err := timeQResync(ctx, dovAddr, user, n, i); err != nil {
				qresync.fail("Dovecot", err)
			} else {
				qresync.Peers = append(qresync.Peers, ms)
				logf("  Dovecot QRESYNC SELECT: %s ms", num(ms))
			}
		}
		return 0, nil
	})
	if err != nil {
		coldSel.fail("tern", err)
	}
	coldSel.Note = "one round"
	coldAll.Note = "one round"
}

// selectFetchAll logs in, then times SELECT INBOX and SELECT plus UID FETCH
// 1:* (FLAGS), checking that n messages come back.
func selectFetchAll(ctx context.Context, addr, user string, n int) (selMS, allMS float64, err error) {
	c, err := dialRawIMAP(ctx, addr, 64<<10)
	if err != nil {
		return 0, 0, err
	}
	defer c.close()
	if err := c.login(user, benchPassword); err != nil {
		return 0, 0, err
	}
	timeout := 5*time.Minute + time.Duration(n)*time.Millisecond
	start := time.Now()
	if _, err := c.cmd("SELECT INBOX", "", timeout); err != nil {
		return 0, 0, err
	}
	sel := time.Since(start)
	got, err := c.cmd("UID FETCH 1:* (FLAGS)", " FETCH ", timeout)
	if err != nil {
		return 0, 0, err
	}
	all := time.Since(start)
	if got != n {
		return 0, 0, fmt.Errorf("UID FETCH 1:* returned %d messages, want %d", got, n)
	}
	_, _ = c.cmd("LOGOUT", "", 10*time.Second)
	return float64(sel.Microseconds()) / 1000, float64(all.Microseconds()) / 1000, nil
}

// timeWarm selects INBOX, runs command once to warm the server's caches
// (Dovecot's index, tern's header cache), and times it a second time,
// from sending it to the tagged OK.
func timeWarm(ctx context.Context, addr, user string, n int, command string) (float64, error) {
	c, err := dialLogin(ctx, addr, user)
	if err != nil {
		return 0, err
	}
	defer c.close()
	timeout := 5*time.Minute + time.Duration(n)*time.Millisecond
	if _, err := c.cmd("SELECT INBOX", "", timeout); err != nil {
		return 0, err
	}
	if _, err := c.cmd(command, "", timeout); err != nil {
		return 0, err
	}
	start := time.Now()
	got, err := c.cmd(command, "", timeout)
	if err != nil {
		return 0, err
	}
	took := time.Since(start)
	if got != 1 {
		return 0, fmt.Errorf("%s: %d untagged responses, want 1", command, got)
	}
	_, _ = c.cmd("LOGOUT", "", 10*time.Second)
	return float64(took.Microseconds()) / 1000, nil
}

// qresyncChanges is how many messages the other session flags, and how many
// it expunges, before each QRESYNC resynchronisation.
const qresyncChanges = 10

// timeQResync is one reconnect of a client that keeps a copy of the folder
// (RFC 7162 3.2.5): a first session records UIDVALIDITY and HIGHESTMODSEQ,
// another session marks 10 messages \Answered (which fillMaildir never
// sets) and expunges 10 others, and a third
// resynchronises with SELECT INBOX (QRESYNC (uidvalidity modseq)), timed
// from sending it to the tagged OK. It must return the 10 flag changes and
// the expunged UIDs (VANISHED (EARLIER)). round picks UIDs no earlier round
// touched, spread over the folder.
func timeQResync(ctx context.Context, addr, user string, n, round int) (float64, error) {
	timeout := 5*time.Minute + time.Duration(n)*time.Millisecond
	step := n / qresyncChanges
	var flagged, expunged []string
	for k := 0; k < qresyncChanges; k++ {
		flagged = append(flagged, strconv.Itoa(k*step+1+2*round))
		expunged = append(expunged, strconv.Itoa(k*step+step/2+1+2*round))
	}
	uidValidity, modSeq, err := qresyncState(ctx, addr, user, timeout)
	if err != nil {
		return 0, err
	}
	other, err := dialLogin(ctx, addr, user)
	if err != nil {
		return 0, err
	}
	defer other.close()
	for _, command := range []string{
		"SELECT INBOX",
		"UID STORE " + strings.Join(flagged, ",") + ` +FLAGS.SILENT (\Answered)`,
		"UID STORE " + strings.Join(expunged, ",") + ` +FLAGS.SILENT (\Deleted)`,
		"UID EXPUNGE " + strings.Join(expunged, ","),
		"LOGOUT",
	} {
		if _, err := other.cmd(command, "", timeout); err != nil {
			return 0, fmt.Errorf("%s: %w", command, err)
		}
	}

	c, err := dialLogin(ctx, addr, user)
	if err != nil {
		return 0, err
	}
	defer c.close()
	if _, err := c.cmd("ENABLE QRESYNC", "", time.Minute); err != nil {
		return 0, err
	}
	start := time.Now()
	lines, err := c.lines(fmt.Sprintf("SELECT INBOX (QRESYNC (%s %s))", uidValidity, modSeq), timeout)
	took := time.Since(start)
	if err != nil {
		return 0, err
	}
	fetches, vanished := 0, 0
	for _, l := range lines {
		switch {
		case strings.Contains(l, " FETCH ("):
			fetches++
		case strings.HasPrefix(l, "* VANISHED (EARLIER) "):
			vanished++
		}
	}
	if fetches != qresyncChanges || vanished == 0 {
		return 0, fmt.Errorf("QRESYNC SELECT: %d FETCH and %d VANISHED (EARLIER), want %d and at least 1 (answer: %q)", fetches, vanished, qresyncChanges, lines)
	}
	_, _ = c.cmd("LOGOUT", "", 10*time.Second)
	return float64(took.Microseconds()) / 1000, nil
}

// qresyncState is what a QRESYNC client records of INBOX: its UIDVALIDITY
// and HIGHESTMODSEQ.
func qresyncState(ctx context.Context, addr, user string, timeout time.Duration) (uidValidity, modSeq string, err error) {
	c, err := dialLogin(ctx, addr, user)
	if err != nil {
		return "", "", err
	}
	defer c.close()
	if _, err := c.cmd("ENABLE QRESYNC", "", time.Minute); err != nil {
		return "", "", err
	}
	lines, err := c.lines("SELECT INBOX", timeout)
	if err != nil {
		return "", "", err
	}
	for _, l := range lines {
		if v, ok := codeArg(l, "UIDVALIDITY"); ok {
			uidValidity = v
		}
		if v, ok := codeArg(l, "HIGHESTMODSEQ"); ok {
			modSeq = v
		}
	}
	if uidValidity == "" || modSeq == "" {
		return "", "", fmt.Errorf("SELECT INBOX after ENABLE QRESYNC: no UIDVALIDITY or HIGHESTMODSEQ")
	}
	_, _ = c.cmd("LOGOUT", "", 10*time.Second)
	return uidValidity, modSeq, nil
}

// codeArg returns the argument of response code name in an untagged OK
// line ("* OK [NAME arg] text").
func codeArg(line, name string) (string, bool) {
	rest, ok := strings.CutPrefix(line, "* OK ["+name+" ")
	if !ok {
		return "", false
	}
	arg, _, ok := strings.Cut(rest, "]")
	return arg, ok
}

// dialLogin connects and logs in as user.
func dialLogin(ctx context.Context, addr, user string) (*rawIMAP, error) {
	c, err := dialRawIMAP(ctx, addr, 64<<10)
	if err != nil {
		return nil, err
	}
	if err := c.login(user, benchPassword); err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}
