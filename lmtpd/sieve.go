package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"

	"github.com/migadu/go-sieve"
	"github.com/migadu/go-sieve/interp"
	"github.com/migadu/go-sieve/lexer"
	"github.com/migadu/go-sieve/parser"

	"tern/common/config"
	"tern/common/maildir"
)

// sieveExtensions are the extensions a user's script may require. "reject"
// and "ereject" (RFC 5429) are handled by lmtpd itself, see rewriteScript;
// editheader is left out because lmtpd never rewrites a message.
var sieveExtensions = []string{
	"fileinto", "envelope", "encoded-character",
	"comparator-i;octet", "comparator-i;ascii-casemap",
	"comparator-i;ascii-numeric", "comparator-i;unicode-casemap",
	"imap4flags", "variables", "relational", "vacation", "copy", "regex",
	"date", "index", "mailbox", "subaddress", "body",
}

// rejectMarker starts the address of the redirect that stands in for a
// reject (see rewriteScript). A NUL can never occur in a real address.
const rejectMarker = "\x00reject\x00"

// plan is what to do with one user's copy.
type plan struct {
	deliveries []delivery
	reject     string
	redirects  []string
	vacations  []vacationReply
}

// delivery is one copy into a folder.
type delivery struct {
	folder string
	flags  []string
}

// add appends a delivery unless that folder already gets one.
func (p *plan) add(folder string, flags []string) {
	for _, d := range p.deliveries {
		if d.folder == folder {
			return
		}
	}
	p.deliveries = append(p.deliveries, delivery{folder: folder, flags: flags})
}

// filter runs the user's Sieve script, if any, and returns the plan. keep
// is the folder of the implicit keep. A script that cannot be read, does
// not compile or fails at run time never loses mail: the plan is then a
// copy into INBOX, and the problem is logged.
func (a *agent) filter(env envelope, rcptAddr, user, keep string, mb *maildir.Mailbox, sp *spooled, log *slog.Logger) plan {
	fallback := func(err error) plan {
		log.Error("sieve script failed, delivering to INBOX", "err", err)
		var p plan
		p.add(inbox, nil)
		return p
	}
	src, path, err := a.readScript(user)
	if err != nil {
		return fallback(err)
	}
	if src == nil {
		var p plan
		p.add(keep, nil)
		return p
	}
	script, err := loadScript(src, env.from == "")
	if err != nil {
		return fallback(fmt.Errorf("load %s: %w", path, err))
	}
	pol := &sievePolicy{mb: mb}
	msg := &sieveMessage{sp: sp, maxBody: int64(a.cfg().LMTPD.MaxMessageSize)}
	data := sieve.NewRuntimeData(script, pol,
		interp.EnvelopeStatic{From: env.from, To: rcptAddr}, msg)
	if err := script.Execute(context.Background(), data); err != nil {
		return fallback(fmt.Errorf("run %s: %w", path, err))
	}
	var p plan
	if pol.rejected {
		// RFC 5429 2.1: reject cancels the implicit keep; lmtpd lets it
		// win over any other action of the script too.
		p.reject = pol.reason
		return p
	}
	created := map[string]bool{}
	for _, m := range data.MailboxesCreate {
		created[m] = true
	}
	for _, m := range data.Mailboxes {
		folder, err := sieveFolder(mb, m, created[m])
		if err != nil {
			// RFC 5228 4.1: a fileinto that cannot be done must not lose
			// the message; it is kept instead.
			log.Warn("sieve fileinto failed, keeping in INBOX", "folder", m, "err", err)
			folder = inbox
		}
		p.add(folder, data.Flags)
	}
	// RFC 5228 2.10.2: an explicit keep cancels the implicit keep (go-sieve
	// leaves ImplicitKeep set), and files into INBOX, not Junk or +tag.
	if data.Keep {
		p.add(inbox, data.Flags)
	} else if data.ImplicitKeep {
		p.add(keep, data.Flags)
	}
	p.redirects = data.RedirectAddr
	for sender, r := range data.VacationResponses {
		p.vacations = append(p.vacations, vacationReply{to: sender, resp: r, rcpt: rcptAddr})
	}
	return p
}

// readScript reads the user's active script; nil when there is none.
func (a *agent) readScript(user string) ([]byte, string, error) {
	if a.cfg().LMTPD.Sieve == "" {
		return nil, "", nil
	}
	path, err := config.Expand(a.cfg().LMTPD.Sieve, user)
	if err != nil {
		return nil, "", err
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, path, nil
	}
	if err != nil {
		return nil, path, fmt.Errorf("open sieve script: %w", err)
	}
	defer f.Close()
	max := int64(a.cfg().LMTPD.SieveMaxSize)
	src, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, path, fmt.Errorf("read sieve script %q: %w", path, err)
	}
	if int64(len(src)) > max {
		return nil, path, fmt.Errorf("sieve script %q is larger than lmtpd.sieve_max_size (%d bytes)", path, max)
	}
	return src, path, nil
}

// loadScript compiles a script. noVacation drops vacation actions (RFC
// 5230 4.5: never reply to the null sender; go-sieve treats an empty
// sender as an error that would abort the script).
func loadScript(src []byte, noVacation bool) (*interp.Script, error) {
	opts := sieve.DefaultOptions()
	opts.EnabledExtensions = sieveExtensions
	toks, err := lexer.Lex(bytes.NewReader(src), &opts.Lexer)
	if err != nil {
		return nil, err
	}
	cmds, err := parser.Parse(lexer.NewStream(toks), &opts.Parser)
	if err != nil {
		return nil, err
	}
	rw := &rewriter{noVacation: noVacation}
	if cmds, err = rw.block(cmds); err != nil {
		return nil, err
	}
	return interp.LoadScript(cmds, &opts.Interp, opts.EnabledExtensions)
}

// rewriter adapts a parsed script to go-sieve, which has no reject: the
// "reject"/"ereject" capabilities are taken out of require, and each
// reject becomes a redirect to rejectMarker+reason, which sievePolicy
// catches and refuses, recording the reject instead.
type rewriter struct {
	noVacation bool
	reject     bool // "reject" or "ereject" was required
}

func (rw *rewriter) block(cmds []parser.Cmd) ([]parser.Cmd, error) {
	out := make([]parser.Cmd, 0, len(cmds))
	for _, c := range cmds {
		switch strings.ToLower(c.Id) {
		case "require":
			c.Args = rw.require(c.Args)
			if len(c.Args) == 0 {
				continue
			}
		case "reject", "ereject":
			if !rw.reject {
				return nil, fmt.Errorf("%d:%d: missing require %q", c.Line, c.Col, strings.ToLower(c.Id))
			}
			if len(c.Args) != 1 || len(c.Tests) != 0 || len(c.Block) != 0 {
				return nil, fmt.Errorf("%d:%d: reject takes one string", c.Line, c.Col)
			}
			reason, ok := c.Args[0].(parser.StringArg)
			if !ok {
				return nil, fmt.Errorf("%d:%d: reject takes one string", c.Line, c.Col)
			}
			reason.Value = rejectMarker + reason.Value
			c = parser.Cmd{Position: c.Position, Id: "redirect", Args: []parser.Arg{reason}}
		case "vacation":
			if rw.noVacation {
				continue
			}
		}
		if len(c.Block) > 0 {
			b, err := rw.block(c.Block)
			if err != nil {
				return nil, err
			}
			c.Block = b
		}
		out = append(out, c)
	}
	return out, nil
}

func (rw *rewriter) require(args []parser.Arg) []parser.Arg {
	keep := func(ext string) bool {
		if ext == "reject" || ext == "ereject" {
			rw.reject = true
			return false
		}
		return true
	}
	var out []parser.Arg
	for _, a := range args {
		switch v := a.(type) {
		case parser.StringArg:
			if keep(v.Value) {
				out = append(out, v)
			}
		case parser.StringListArg:
			var exts []string
			for _, e := range v.Value {
				if keep(e) {
					exts = append(exts, e)
				}
			}
			if len(exts) > 0 {
				v.Value = exts
				out = append(out, v)
			}
		default:
			out = append(out, a)
		}
	}
	return out
}

// sievePolicy answers go-sieve's questions about the user's mailbox and
// catches rejects.
type sievePolicy struct {
	mb       *maildir.Mailbox
	rejected bool
	reason   string
}

// RedirectAllowed implements interp.PolicyReader.
func (p *sievePolicy) RedirectAllowed(_ context.Context, _ *interp.RuntimeData, addr string) (bool, error) {
	if reason, ok := strings.CutPrefix(addr, rejectMarker); ok {
		p.rejected, p.reason = true, reason
		return false, nil
	}
	return true, nil
}

// MailboxExists implements interp.MailboxChecker (RFC 5490 3.1).
func (p *sievePolicy) MailboxExists(_ context.Context, name string) (bool, error) {
	_, ok := findFolder(p.mb, normFolder(name))
	return ok, nil
}

// normFolder maps a Sieve folder name to the store's: "INBOX.x" and "x"
// are the same Maildir++ folder.
func normFolder(name string) string {
	if strings.EqualFold(name, inbox) {
		return inbox
	}
	if rest, ok := cutPrefixFold(name, inbox+"."); ok && rest != "" {
		return rest
	}
	return name
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return s, false
}

// sieveFolder returns the folder for a fileinto, creating it when the
// script asked for that (RFC 5490 3.2 ":create").
func sieveFolder(mb *maildir.Mailbox, name string, create bool) (string, error) {
	name = normFolder(name)
	if name == inbox {
		return inbox, nil
	}
	if f, ok := findFolder(mb, name); ok {
		return f, nil
	}
	if !create {
		return "", fmt.Errorf("folder %q does not exist", name)
	}
	if err := mb.Create(name); err != nil && !errors.Is(err, maildir.ErrExists) {
		return "", fmt.Errorf("create folder %q: %w", name, err)
	}
	return name, nil
}

// sieveMessage gives go-sieve the message: the parsed header, and the body
// read from the spool only if a body test asks for it.
type sieveMessage struct {
	sp      *spooled
	maxBody int64

	once sync.Once
	body []byte
	err  error
}

func (m *sieveMessage) HeaderGet(key string) ([]string, error) {
	return m.sp.header.Values(key), nil
}

func (m *sieveMessage) MessageSize() int { return int(m.sp.size) }

func (m *sieveMessage) BodyRaw() ([]byte, bool, error) {
	m.once.Do(func() {
		r, err := m.sp.body()
		if err != nil {
			m.err = err
			return
		}
		m.body, m.err = io.ReadAll(io.LimitReader(r, m.maxBody))
	})
	return m.body, m.err == nil, m.err
}
