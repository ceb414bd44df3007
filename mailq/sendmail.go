package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"tern/common/config"
	"tern/common/submit"
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

// deliver runs the SMTP transaction (common/submit) and maps its outcome
// to an exit code.
func deliver(cfg *config.Config, o *sendmailOptions, from string, rcpts []string, data []byte, stderr io.Writer) int {
	m := &submit.Message{From: from, To: rcpts, Data: bytes.NewReader(data)}
	m.Mail.EnvelopeID = o.envID
	switch strings.ToLower(o.ret) {
	case "full":
		m.Mail.Return = smtp.DSNReturnFull
	case "hdrs":
		m.Mail.Return = smtp.DSNReturnHeaders
	}
	if o.notify != "" {
		m.Rcpt = &smtp.RcptOptions{}
		for _, n := range strings.Split(strings.ToUpper(o.notify), ",") {
			m.Rcpt.Notify = append(m.Rcpt.Notify, smtp.DSNNotify(strings.TrimSpace(n)))
		}
	}
	// The whole exchange is local; bound it so that a hung smtpd makes
	// sendmail fail (75) instead of hanging its caller.
	c := &submit.Client{Addr: cfg.SMTPD.LocalSubmit, Hello: "localhost", Timeout: cfg.SMTPD.ConnectTimeout.D() + cfg.SMTPD.ReadTimeout.D()}
	if o.verbose {
		c.Debug = stderr
	}
	err := c.Send(context.Background(), m)
	if err == nil {
		return exOK
	}
	var bad submit.RecipientsError
	if errors.As(err, &bad) {
		code := exOK
		for _, r := range bad {
			fmt.Fprintf(stderr, "sendmail: %v\n", r)
			if c := exitFor(r.Step, r.Err); code == exOK || c == exTempFail {
				code = c
			}
		}
		fmt.Fprintln(stderr, "sendmail: the message was not sent")
		return code
	}
	var se *submit.StepError
	errors.As(err, &se)
	if se.Step == "connect" {
		fmt.Fprintf(stderr, "sendmail: %v; the message was not sent, try again later\n", se.Err)
		return exTempFail
	}
	code := exitFor(se.Step, se.Err)
	fmt.Fprintf(stderr, "sendmail: %v\n", se)
	if code == exTempFail {
		fmt.Fprintln(stderr, "sendmail: the message was not sent, try again later")
	} else {
		fmt.Fprintln(stderr, "sendmail: the message was not sent")
	}
	return code
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
