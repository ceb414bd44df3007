package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"tern/common/config"
	"tern/common/listen"
)

// sendmailMain is the sendmail command. It exits 0 only once smtpd has
// answered 250 to the message, which smtpd does only when the message is
// durable; 75 (EX_TEMPFAIL) when that could not happen now.
func sendmailMain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	o, err := parseSendmailArgs(args)
	if err != nil {
		fmt.Fprintf(stderr, "sendmail: %v\n", strings.TrimPrefix(err.Error(), "usage: "))
		fmt.Fprintln(stderr, "usage: sendmail [-t] [-i] [-f sender] [-F name] [-v] [-bm | -bs | -bp | -bi | -q] [-config FILE] [recipient ...]")
		return exUsage
	}
	if fi, err := os.Stat(o.config); err == nil && fi.IsDir() {
		o.config = filepath.Join(o.config, "tern.toml")
	}
	switch {
	case o.mode == "p":
		return mailqMain([]string{"-config", o.config}, stdout, stderr)
	case o.mode == "i":
		return checkAliases(o.config, stdout, stderr)
	case o.flush:
		return flushSite(o, stdout, stderr)
	}
	cfg, err := config.Load(o.config)
	if err != nil {
		fmt.Fprintf(stderr, "sendmail: %v\n", err)
		// The mail cannot be taken now; the caller keeps it.
		return exTempFail
	}
	if cfg.SMTPD.LocalSubmit == "" {
		fmt.Fprintf(stderr, "sendmail: local submission is turned off (smtpd.local_submit is empty in %s); nothing was sent\n", o.config)
		return exUnavailable
	}
	if o.mode == "s" {
		return smtpOnStdio(cfg, stdin, stdout, stderr)
	}
	return submitMessage(cfg, o, stdin, stderr)
}

// flushSite is sendmail -q (every message) and -qRdomain (one
// destination): a flush through mailq.
func flushSite(o *sendmailOptions, stdout, stderr io.Writer) int {
	cfg, err := config.Load(o.config)
	if err != nil {
		fmt.Fprintf(stderr, "sendmail: %v\n", err)
		return exConfig
	}
	q, code := openQueue(cfg, stderr)
	if q == nil {
		return code
	}
	t := &tool{q: q, out: stdout, errw: stderr, now: time.Now()}
	if o.flushSite == "" {
		return t.flush("")
	}
	envs, err := q.List()
	if err != nil {
		fmt.Fprintf(stderr, "sendmail: %v\n", err)
		return exIOErr
	}
	code = exOK
	for _, e := range envs {
		if len(matching(e, strings.ToLower(o.flushSite))) > 0 {
			if c := t.flush(e.ID); c != exOK {
				code = c
			}
		}
	}
	return code
}

// defaultSender is the envelope sender of the calling user, by the rule
// smtpd's local submission applies (config.LocalLogin) at tern.toml's
// hostname.
func defaultSender(cfg *config.Config) string {
	return config.LocalLogin(uint32(os.Getuid())) + "@" + cfg.Hostname
}

// submitMessage is sendmail -bm: read the message, then hand it to smtpd
// in one SMTP transaction on the local socket. Every recipient must be
// accepted, or nothing is sent.
func submitMessage(cfg *config.Config, o *sendmailOptions, stdin io.Reader, stderr io.Writer) int {
	limit := int64(cfg.SMTPD.MaxMessageSize)
	in, err := io.ReadAll(io.LimitReader(stdin, limit+1))
	if err != nil {
		fmt.Fprintf(stderr, "sendmail: reading the message: %v; nothing was sent\n", err)
		return exIOErr
	}
	if int64(len(in)) > limit {
		fmt.Fprintf(stderr, "sendmail: %v (%d bytes); nothing was sent\n", errTooLarge, limit)
		return exDataErr
	}
	msg, err := readMessage(in, o.ignoreDots, cfg.SMTPD.MaxLineLength)
	if err != nil {
		fmt.Fprintf(stderr, "sendmail: %v\n", err)
		return exDataErr
	}
	var rcpts []string
	for _, arg := range o.recipients {
		for _, a := range strings.Split(arg, ",") {
			if strings.TrimSpace(a) == "" {
				continue
			}
			q, err := qualify(a, cfg.Domains[0])
			if err != nil {
				fmt.Fprintf(stderr, "sendmail: recipient: %v; nothing was sent\n", err)
				return exUsage
			}
			rcpts = append(rcpts, q)
		}
	}
	if o.extract {
		if err := msg.extract(cfg.Domains[0]); err != nil {
			fmt.Fprintf(stderr, "sendmail: %v; nothing was sent\n", err)
			return exDataErr
		}
		rcpts = append(rcpts, msg.recipients...)
	}
	msg.dropBcc()
	if len(rcpts) == 0 {
		fmt.Fprintf(stderr, "sendmail: %v; nothing was sent\n", errNoRcpt)
		return exUsage
	}
	from := defaultSender(cfg)
	if o.fromSet {
		from = o.from
	}
	if o.fullName != "" && !msg.has("from") {
		msg.header = append([]string{fromField(o.fullName, from)}, msg.header...)
		msg.hasHeader = true
	}
	return deliver(cfg, o, from, dedupe(rcpts), msg.bytes(), stderr)
}

func dedupe(list []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, a := range list {
		k := strings.ToLower(a)
		if !seen[k] {
			seen[k] = true
			out = append(out, a)
		}
	}
	return out
}

// dialSubmit connects to smtpd's local submission socket.
func dialSubmit(cfg *config.Config) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cfg.SMTPD.ConnectTimeout.D())
	defer cancel()
	c, err := listen.Dial(ctx, cfg.SMTPD.LocalSubmit)
	if err != nil {
		return nil, fmt.Errorf("cannot reach tern-smtpd at %s (is it running?): %w", cfg.SMTPD.LocalSubmit, err)
	}
	return c, nil
}

// deliver runs the SMTP transaction and maps its outcome to an exit code.
func deliver(cfg *config.Config, o *sendmailOptions, from string, rcpts []string, data []byte, stderr io.Writer) int {
	conn, err := dialSubmit(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "sendmail: %v; the message was not sent, try again later\n", err)
		return exTempFail
	}
	// The whole exchange is local; bound it so that a hung smtpd makes
	// sendmail fail (75) instead of hanging its caller.
	conn.SetDeadline(time.Now().Add(cfg.SMTPD.ReadTimeout.D()))
	c := smtp.NewClient(conn)
	defer c.Close()
	if o.verbose {
		c.DebugWriter = stderr
	}
	fail := func(step string, err error) int {
		code := exitFor(step, err)
		fmt.Fprintf(stderr, "sendmail: %s: %v\n", step, err)
		if code == exTempFail {
			fmt.Fprintln(stderr, "sendmail: the message was not sent, try again later")
		} else {
			fmt.Fprintln(stderr, "sendmail: the message was not sent")
		}
		return code
	}
	if err := c.Hello("localhost"); err != nil {
		return fail("greeting", err)
	}
	mo := &smtp.MailOptions{EnvelopeID: o.envID}
	switch strings.ToLower(o.ret) {
	case "full":
		mo.Return = smtp.DSNReturnFull
	case "hdrs":
		mo.Return = smtp.DSNReturnHeaders
	}
	if !isASCII(from) || !allASCII(rcpts) {
		mo.UTF8 = true
	}
	if err := c.Mail(from, mo); err != nil {
		return fail("sender <"+from+">", err)
	}
	ro := &smtp.RcptOptions{}
	if o.notify != "" {
		for _, n := range strings.Split(strings.ToUpper(o.notify), ",") {
			ro.Notify = append(ro.Notify, smtp.DSNNotify(strings.TrimSpace(n)))
		}
	}
	// Every recipient is tried, so that all the bad ones are reported at
	// once; then one refusal cancels the whole message.
	var bad []error
	code := exOK
	for _, r := range rcpts {
		if err := c.Rcpt(r, ro); err != nil {
			bad = append(bad, err)
			fmt.Fprintf(stderr, "sendmail: recipient <%s>: %v\n", r, err)
			if c := exitFor("recipient", err); code == exOK || c == exTempFail {
				code = c
			}
		}
	}
	if len(bad) > 0 {
		c.Reset()
		c.Quit()
		fmt.Fprintln(stderr, "sendmail: the message was not sent")
		return code
	}
	w, err := c.Data()
	if err != nil {
		return fail("data", err)
	}
	if _, err := w.Write(data); err != nil {
		return fail("data", err)
	}
	if err := w.Close(); err != nil {
		return fail("message", err)
	}
	c.Quit()
	return exOK
}

// exitFor maps an SMTP failure to sysexits(3): 4xx and broken
// connections are temporary (75); a refused recipient is 67, a policy
// refusal 77, a refused message 65.
func exitFor(step string, err error) int {
	var se *smtp.SMTPError
	if !errors.As(err, &se) {
		return exTempFail
	}
	switch {
	case se.Code < 500:
		return exTempFail
	case se.EnhancedCode[0] == 5 && se.EnhancedCode[1] == 7:
		return exNoPerm
	case step == "recipient":
		return exNoUser
	}
	return exDataErr
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func allASCII(list []string) bool {
	for _, s := range list {
		if !isASCII(s) {
			return false
		}
	}
	return true
}
