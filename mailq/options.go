package main

import (
	"errors"
	"fmt"
	"strings"

	"tern/common/daemon"
)

// sendmailOptions is a sendmail command line.
type sendmailOptions struct {
	config     string
	mode       string // "m" (deliver, default), "s" (SMTP on stdin), "p" (list), "i" (aliases)
	flush      bool   // -q
	flushSite  string // -qR/-qS: only this domain
	extract    bool   // -t
	ignoreDots bool   // -i, -oi
	from       string // -f, -r
	fromSet    bool
	fullName   string // -F
	verbose    bool   // -v
	notify     string // -N
	ret        string // -R
	envID      string // -V
	recipients []string
}

var errUsage = errors.New("usage")

// parseSendmailArgs reads a sendmail command line the way getopt(3) does
// for Postfix's sendmail (options may be clustered, "-ti"; an option's
// argument may be attached, "-fuser@host", or the next word), plus tern's
// -config FILE. The first word that is not an option starts the
// recipients. Options that only tune how the old sendmail queued mail are
// accepted and ignored, as Postfix does, so that scripts written for
// either keep working.
func parseSendmailArgs(args []string) (*sendmailOptions, error) {
	o := &sendmailOptions{config: daemon.DefaultConfig, mode: "m"}
	// Letters that take an argument, attached or in the next word.
	const withArg = "ABCFLNORVXbefhopr"
	// Letters without one.
	const noArg = "GIUcimntvx"
	i := 0
	for ; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			i++
			break
		}
		if len(a) < 2 || a[0] != '-' {
			break
		}
		if a == "-config" || a == "--config" {
			if i+1 >= len(args) {
				return nil, fmt.Errorf("%w: %s needs a file", errUsage, a)
			}
			o.config = args[i+1]
			i++
			continue
		}
		if v, ok := strings.CutPrefix(a, "-config="); ok {
			o.config = v
			continue
		}
		for j := 1; j < len(a); j++ {
			c := a[j]
			if c == 'q' {
				// -q, -q30m (an interval: a daemon's run; here, one flush),
				// -qRsite, -qSsite. Only an attached argument.
				o.flush = true
				rest := a[j+1:]
				if r, ok := strings.CutPrefix(rest, "R"); ok {
					o.flushSite = r
				} else if r, ok := strings.CutPrefix(rest, "S"); ok {
					o.flushSite = r
				}
				break
			}
			if strings.IndexByte(noArg, c) >= 0 {
				switch c {
				case 't':
					o.extract = true
				case 'i':
					o.ignoreDots = true
				case 'v':
					o.verbose = true
				case 'I':
					o.mode = "i"
				}
				continue
			}
			if strings.IndexByte(withArg, c) < 0 {
				return nil, fmt.Errorf("%w: unknown option -%c", errUsage, c)
			}
			val := a[j+1:]
			if val == "" {
				if i+1 >= len(args) {
					return nil, fmt.Errorf("%w: option -%c needs a value", errUsage, c)
				}
				i++
				val = args[i]
			}
			if err := o.set(c, val); err != nil {
				return nil, err
			}
			break
		}
	}
	o.recipients = append(o.recipients, args[i:]...)
	return o, nil
}

// set applies one option that has a value.
func (o *sendmailOptions) set(c byte, val string) error {
	switch c {
	case 'b':
		switch val {
		case "m", "s", "p", "i":
			o.mode = val
		case "d", "D":
			return fmt.Errorf("%w: -b%s: tern-smtpd is the daemon; start it with systemd", errUsage, val)
		default:
			return fmt.Errorf("%w: -b%s is not supported", errUsage, val)
		}
	case 'f', 'r':
		o.from, o.fromSet = strings.TrimSuffix(strings.TrimPrefix(val, "<"), ">"), true
	case 'F':
		o.fullName = val
	case 'o':
		// -oi is -i; -oem, -odi, -oQ…, -oA… and the rest are accepted
		// and ignored.
		if val == "i" {
			o.ignoreDots = true
		}
	case 'N':
		o.notify = val
	case 'R':
		o.ret = val
	case 'V':
		o.envID = val
	case 'C':
		// Postfix's -C names its configuration directory; accept a
		// directory holding tern.toml too.
		o.config = val
	}
	// -B type, -L label, -X log, -h hops, -O opt=val, -A, -e, -p: ignored.
	return nil
}
