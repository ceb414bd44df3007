package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"tern/common/mailaddr"
	"tern/common/queue"
)

// flush makes one message (or all) due now and kicks smtpd's queue
// runner, which looks within a second.
func (t *tool) flush(id string) int {
	if err := t.q.Flush(id); err != nil {
		if id == "" {
			fmt.Fprintf(t.errw, "mailq: flush: %v\n", err)
			return exIOErr
		}
		return t.fail(id, err)
	}
	if id == "" {
		fmt.Fprintln(t.out, "mailq: queue flushed; tern-smtpd retries every message now")
	} else {
		fmt.Fprintf(t.out, "mailq: %s: flushed; tern-smtpd retries it now\n", id)
	}
	return exOK
}

// act runs one locked change (hold, release) on one message.
func (t *tool) act(done, id string, fn func(string) error) int {
	if err := fn(id); err != nil {
		return t.fail(id, err)
	}
	fmt.Fprintf(t.out, "mailq: %s: %s\n", id, done)
	return exOK
}

// delete removes one message, or every message with "ALL". Deleted mail
// is neither delivered nor bounced. A message being delivered is left
// alone and reported busy; with ALL the others are still deleted.
func (t *tool) delete(id string) int {
	if id != "ALL" {
		if err := t.q.Delete(id); err != nil {
			return t.fail(id, err)
		}
		fmt.Fprintf(t.out, "mailq: %s: deleted\n", id)
		return exOK
	}
	ids, err := t.q.IDs()
	if err != nil {
		fmt.Fprintf(t.errw, "mailq: %v\n", err)
		return exIOErr
	}
	code, n := exOK, 0
	for _, one := range ids {
		err := t.q.Delete(one)
		switch {
		case err == nil:
			n++
		case errors.Is(err, queue.ErrNotFound):
			// Delivered meanwhile.
		default:
			if c := t.fail(one, err); code == exOK {
				code = c
			}
		}
	}
	fmt.Fprintf(t.out, "mailq: deleted %d %s\n", n, plural(n, "message", "messages"))
	return code
}

// deleteDomain drops every undelivered recipient in domain: it is marked
// bounced with the reason "deleted by the administrator" (so no DSN is
// sent for it), and a message left with nothing to do is deleted.
func (t *tool) deleteDomain(domain string) int {
	domain = strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(domain, "@"), "."))
	if domain == "" {
		fmt.Fprintln(t.errw, "mailq: -delete-domain needs a domain")
		return exUsage
	}
	envs, err := t.q.List()
	if err != nil {
		fmt.Fprintf(t.errw, "mailq: %v\n", err)
		return exIOErr
	}
	code, dropped, deleted := exOK, 0, 0
	for _, e := range envs {
		if len(matching(e, domain)) == 0 {
			continue
		}
		n, gone, err := t.dropRecipients(e.ID, domain)
		if err != nil && !errors.Is(err, queue.ErrNotFound) {
			if c := t.fail(e.ID, err); code == exOK {
				code = c
			}
			continue
		}
		dropped += n
		if gone {
			deleted++
		}
	}
	fmt.Fprintf(t.out, "mailq: dropped %d %s in %s; deleted %d %s\n", dropped,
		plural(dropped, "recipient", "recipients"), domain, deleted, plural(deleted, "message", "messages"))
	return code
}

// dropRecipients does deleteDomain's change on one message under its lock.
func (t *tool) dropRecipients(id, domain string) (n int, gone bool, err error) {
	c, err := t.q.Claim(id)
	if err != nil {
		return 0, false, err
	}
	defer c.Close()
	for _, i := range matching(c.Env, domain) {
		r := &c.Env.Recipients[i]
		r.State = queue.Bounced
		r.AddAttempt(queue.Attempt{Time: time.Now(), Host: "mailq", Reply: "deleted by the administrator"})
		n++
	}
	if n == 0 {
		return 0, false, nil
	}
	if c.Env.Done() {
		return n, true, c.Remove()
	}
	return n, false, c.Save()
}

// matching lists the undelivered recipients of e in domain.
func matching(e *queue.Envelope, domain string) []int {
	var idx []int
	for i, r := range e.Recipients {
		if r.State != queue.Pending && r.State != queue.Failed {
			continue
		}
		if strings.EqualFold(mailaddr.Domain(r.Addr), domain) {
			idx = append(idx, i)
		}
	}
	return idx
}
