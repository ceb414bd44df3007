package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"tern/common/auth"
	"tern/common/config"
	"tern/common/daemon"
	"tern/common/maildir"
	"tern/common/maillog"
	"tern/common/recipient"
	"tern/common/trace"
)

// inbox is the name of the root folder of a Maildir.
const inbox = "INBOX"

// junk is the folder for messages an upstream filter marked as spam.
const junk = "Junk"

// agent delivers messages: it resolves recipients, runs filters and writes
// into Maildirs. It is shared by every session.
type agent struct {
	// live is the configuration in force, which SIGHUP may replace: a
	// delivery reads it through cfg when it needs a key.
	live     *config.Live
	users    *auth.DB
	rcpts    *recipient.Resolver
	log      *slog.Logger
	spoolDir string
	vacation *vacationStore
	out      *mailer

	mu        sync.Mutex
	mailboxes map[string]*maildir.Mailbox // by user address
}

// cfg is the configuration in force.
func (a *agent) cfg() *config.Config { return a.live.Load() }

func newAgent(cfg *config.Config, users *auth.DB, rcpts *recipient.Resolver, log *slog.Logger) (*agent, error) {
	a := &agent{
		live:      daemon.Live(cfg),
		users:     users,
		rcpts:     rcpts,
		log:       log,
		spoolDir:  filepath.Join(cfg.StateDir, "lmtpd", "spool"),
		mailboxes: map[string]*maildir.Mailbox{},
	}
	if err := os.MkdirAll(a.spoolDir, 0o700); err != nil {
		return nil, fmt.Errorf("create spool directory: %w", err)
	}
	a.vacation = &vacationStore{dir: filepath.Join(cfg.StateDir, "lmtpd", "vacation")}
	if err := os.MkdirAll(a.vacation.dir, 0o700); err != nil {
		return nil, fmt.Errorf("create vacation directory: %w", err)
	}
	a.out = &mailer{a: a}
	return a, nil
}

func (a *agent) close() {}

// envelope is what a delivery knows about the transaction.
type envelope struct {
	from   string
	utf8   bool
	client string
	log    *slog.Logger
}

// resolve resolves an RCPT address. Remote targets of an alias go to
// smtpd's queue (see mailer); without a local submission socket such a
// recipient is deferred (451) rather than half delivered.
func (a *agent) resolve(addr string) (recipient.Result, error) {
	res, err := a.rcpts.Resolve(addr)
	if err != nil {
		return res, replyFor(err)
	}
	if len(res.Remote) > 0 && !a.out.canRelay() {
		a.log.Warn("alias has remote targets and no relay is available", "rcpt", addr, "remote", res.Remote)
		return res, replyFor(errNoRelay)
	}
	return res, nil
}

// deliverRcpt delivers one recipient's copies and returns its reply. done
// remembers the outcome per user within the transaction, so that a user
// reached through several recipients gets one copy.
func (a *agent) deliverRcpt(env envelope, rc rcpt, sp *spooled, done map[string]error) error {
	var temp, perm error
	for _, t := range rc.res.Local {
		err, seen := done[t.User]
		if !seen {
			err = a.deliverUser(env, rc.addr, t, sp)
			done[t.User] = err
		}
		if err == nil {
			continue
		}
		r := replyFor(err)
		if isTemporary(r) && temp == nil {
			temp = r
		} else if perm == nil {
			perm = r
		}
	}
	if len(rc.res.Remote) > 0 {
		if err := a.out.submit(env.from, rc.res.Remote, sp.reader); err != nil {
			m := maillog.Msg{From: env.from, To: strings.Join(rc.res.Remote, ","), Via: "submit"}
			if isTemporary(replyFor(err)) {
				maillog.Deferred(env.log, m, "alias "+rc.addr+": "+err.Error())
			} else {
				maillog.Bounced(env.log, m, "alias "+rc.addr+": "+err.Error())
			}
			if r := replyFor(err); isTemporary(r) && temp == nil {
				temp = r
			} else if perm == nil {
				perm = r
			}
		}
	}
	// A temporary failure wins: the sender retries, and the users who got
	// their copy may get a second, which is better than a lost message.
	if temp != nil {
		return temp
	}
	return perm
}

// deliverUser delivers one copy to one user, after quota and filters.
func (a *agent) deliverUser(env envelope, rcptAddr string, t recipient.Target, sp *spooled) error {
	log := env.log.With("user", t.User)
	msg := func(folder string) maillog.Msg {
		return maillog.Msg{From: env.from, To: rcptAddr, Via: "maildir", Folder: folder}
	}
	reject := func(err error) {
		maillog.Rejected(log, maillog.Rejection{Stage: "deliver", From: env.from, To: rcptAddr, Code: codeOf(err), Reason: err.Error()})
	}
	mb, err := a.mailbox(t.User)
	if err != nil {
		maillog.Deferred(log, msg(""), "cannot open mailbox: "+err.Error())
		return err
	}
	if err := a.checkSpace(t.User); err != nil {
		maillog.Deferred(log, msg(""), err.Error())
		return err
	}
	if err := a.checkQuota(t.User, mb, sp.size); err != nil {
		reject(err)
		return err
	}
	if env.from != "" && a.looped(t.User, sp) {
		reject(errLoop)
		return errLoop
	}
	// The implicit keep goes to INBOX, or to the +tag folder when it
	// exists, or to Junk when an upstream filter marked the message.
	keep := inbox
	if t.Folder != "" {
		if f, ok := findFolder(mb, t.Folder); ok {
			keep = f
		}
	}
	if a.isSpam(sp) {
		keep = junk
	}
	plan := a.filter(env, rcptAddr, t.User, keep, mb, sp, log)
	if plan.reject != "" {
		err := &rejectError{reason: plan.reject}
		reject(err)
		return err
	}
	// A redirect that cannot be done now is a keep: the message is never
	// lost to a missing relay.
	for _, to := range plan.redirects {
		if err := a.out.forward(env.from, to, sp); err != nil {
			log.Warn("sieve redirect failed, keeping in INBOX", "to", to, "err", err)
			plan.add(inbox, nil)
			continue
		}
		maillog.Redirected(log, env.from, to)
	}
	for _, d := range plan.deliveries {
		// The duration is that of the durable write alone, the part of a
		// delivery that depends on the disk: the delivery latency metric.
		start := time.Now()
		key, err := a.store(mb, d.folder, d.flags, env.from, t.User, sp.reader)
		if err != nil {
			maillog.Deferred(log, msg(d.folder), err.Error())
			return err
		}
		maillog.Delivered(log, msg(d.folder), time.Since(start))
		log.Debug("stored", "folder", d.folder, "key", key, "size", sp.size)
	}
	if len(plan.deliveries) == 0 {
		// RFC 5228 4.5: discard is no delivery, and is not counted as one.
		maillog.Discarded(log, "", env.from, rcptAddr, "sieve")
	}
	a.sendVacation(env, t.User, plan.vacations, sp, log)
	return nil
}

// store writes one copy into folder, with Return-Path and Delivered-To
// prepended (RFC 5321 4.4: the delivering system adds Return-Path). The
// folder is created when missing only if the plan said so; a flag the
// store refuses is dropped rather than losing the message.
func (a *agent) store(mb *maildir.Mailbox, folder string, flags []string, from, user string, msg func() io.Reader) (string, error) {
	prefix := trace.Delivery(from, user)
	deliver := func(flags []string) (string, error) {
		key, _, err := mb.Deliver(folder, io.MultiReader(strings.NewReader(prefix), msg()), flags)
		return key, err
	}
	key, err := deliver(flags)
	if errors.Is(err, maildir.ErrInvalidFlag) && len(flags) > 0 {
		a.log.Warn("flags refused, delivering without them", "user", user, "flags", flags, "err", err)
		key, err = deliver(nil)
	}
	if err != nil {
		return "", fmt.Errorf("deliver to %s folder %q: %w", user, folder, err)
	}
	return key, nil
}

// mailbox opens (and creates) a user's Maildir. Opened mailboxes are kept,
// since Open creates the special folders and that needs doing once.
func (a *agent) mailbox(user string) (*maildir.Mailbox, error) {
	a.mu.Lock()
	mb, ok := a.mailboxes[user]
	a.mu.Unlock()
	if ok {
		if _, err := os.Stat(mb.Root()); err == nil {
			return mb, nil
		}
	}
	root, err := config.Expand(a.cfg().Maildir, user)
	if err != nil {
		return nil, err
	}
	mb, err = maildir.Open(root)
	if err != nil {
		return nil, fmt.Errorf("open maildir of %s: %w", user, err)
	}
	a.mu.Lock()
	a.mailboxes[user] = mb
	a.mu.Unlock()
	return mb, nil
}

// findFolder finds a folder by name without regard to case (the +tag comes
// lower-cased from the address).
func findFolder(mb *maildir.Mailbox, name string) (string, bool) {
	if _, err := mb.Folder(name); err == nil {
		return name, true
	}
	list, err := mb.List()
	if err != nil {
		return "", false
	}
	for _, f := range list {
		if strings.EqualFold(f.Name, name) {
			return f.Name, true
		}
	}
	return "", false
}

// isSpam reports whether the configured spam header carries the spam value.
func (a *agent) isSpam(sp *spooled) bool {
	h := a.cfg().LMTPD.SpamHeader
	if h == "" {
		return false
	}
	for _, v := range sp.header.Values(h) {
		if strings.EqualFold(strings.TrimSpace(v), strings.TrimSpace(a.cfg().LMTPD.SpamValue)) {
			return true
		}
	}
	return false
}

// looped reports whether the message already carries a Delivered-To for
// this user: it went around and came back (the rule of Postfix's local(8)).
func (a *agent) looped(user string, sp *spooled) bool {
	for _, v := range sp.header.Values("Delivered-To") {
		if strings.EqualFold(strings.TrimSpace(v), user) {
			return true
		}
	}
	return false
}

// isTemporary reports whether a reply is a 4xx one.
func isTemporary(err error) bool {
	code, ok := replyCode(err)
	return ok && code >= 400 && code < 500
}
