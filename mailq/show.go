package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"tern/common/trace"
)

// maxShownHeader bounds how much of a message's header -show prints, so
// that a hostile message cannot flood the admin's terminal.
const maxShownHeader = 64 << 10

// show prints one message: its envelope, every recipient with its whole
// delivery history (each attempt with the next hop's reply), and the
// message header.
func (t *tool) show(id string) int {
	e, err := t.q.Get(id)
	if err != nil {
		return t.fail(id, err)
	}
	w := t.out
	fmt.Fprintf(w, "Queue ID:      %s\n", e.ID)
	fmt.Fprintf(w, "Queue:         %s\n", queueName(e))
	fmt.Fprintf(w, "Arrival:       %s (%s ago)\n", e.Arrival.Local().Format(time.RFC1123Z), t.now.Sub(e.Arrival).Round(time.Second))
	fmt.Fprintf(w, "Size:          %d bytes, sha256 %s\n", e.Size, e.SHA256)
	fmt.Fprintf(w, "Sender:        <%s>\n", e.From)
	if e.AuthUser != "" {
		fmt.Fprintf(w, "Submitted by:  %s\n", trace.Printable(e.AuthUser))
	}
	if e.Client != "" || e.Helo != "" {
		fmt.Fprintf(w, "Client:        %s (EHLO %s)\n", trace.Printable(e.Client), trace.Printable(e.Helo))
	}
	var flags []string
	for _, f := range []struct {
		on   bool
		name string
	}{{e.Held, "held"}, {e.IsDSN, "bounce message"}, {e.UTF8, "SMTPUTF8"}} {
		if f.on {
			flags = append(flags, f.name)
		}
	}
	if e.Body != "" {
		flags = append(flags, "BODY="+e.Body)
	}
	if e.Ret != "" {
		flags = append(flags, "RET="+e.Ret)
	}
	if e.EnvID != "" {
		flags = append(flags, "ENVID="+trace.Printable(e.EnvID))
	}
	if len(flags) > 0 {
		fmt.Fprintf(w, "Flags:         %s\n", strings.Join(flags, ", "))
	}
	fmt.Fprintf(w, "Tries:         %d\n", e.Tries)
	if !e.NextAttempt.IsZero() && !e.Held {
		fmt.Fprintf(w, "Next attempt:  %s\n", e.NextAttempt.Local().Format(time.RFC1123Z))
	}
	fmt.Fprintf(w, "Recipients:\n")
	for _, r := range e.Recipients {
		fmt.Fprintf(w, "  <%s> %s", r.Addr, r.State)
		if len(r.Notify) > 0 {
			fmt.Fprintf(w, " NOTIFY=%s", strings.Join(r.Notify, ","))
		}
		fmt.Fprintln(w)
		for _, a := range r.Attempts {
			fmt.Fprintf(w, "    %s  %s\n", a.Time.Local().Format("2006-01-02 15:04:05"), trace.Printable(attemptText(a)))
		}
	}
	fmt.Fprintf(w, "Header:\n")
	f, err := t.q.Data(id)
	if err != nil {
		return t.fail(id, err)
	}
	defer f.Close()
	br := bufio.NewReader(io.LimitReader(f, maxShownHeader))
	for {
		line, err := br.ReadString('\n')
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			break
		}
		fmt.Fprintf(w, "  %s\n", trace.Printable(line))
		if err != nil {
			if !errors.Is(err, io.EOF) {
				fmt.Fprintf(t.errw, "mailq: %s: %v\n", id, err)
				return exIOErr
			}
			break
		}
	}
	return exOK
}
