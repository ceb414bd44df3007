package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"tern/common/config"
	"tern/common/daemon"
	"tern/common/queue"
)

// mailqMain is the mailq command: list the queue, or act on it.
func mailqMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mailq", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", daemon.DefaultConfig, "configuration `file`")
	asJSON := fs.Bool("json", false, "list the queue as JSON, one object per line")
	show := fs.String("show", "", "show one message's envelope, header and delivery history")
	flush := fs.Bool("flush", false, "retry now: every message, or the message ID given after the flags")
	hold := fs.String("hold", "", "stop delivery attempts for message `ID`")
	release := fs.String("release", "", "undo -hold for message `ID` and retry it now")
	del := fs.String("delete", "", "delete message `ID` (or ALL) without delivery or bounce")
	delDomain := fs.String("delete-domain", "", "drop every undelivered recipient in `DOMAIN`, deleting messages left with none")
	shape := fs.Bool("shape", false, "count messages per destination domain and age, like qshape")
	keygen := fs.String("dkim-keygen", "", "make a DKIM key for local `DOMAIN` and print its DNS record")
	keyAlg := fs.String("dkim-alg", "rsa", "the key type made by -dkim-keygen: rsa or ed25519")
	tlsRep := fs.String("tls-report", "", "print the TLS reports (RFC 8460) of recipient `DOMAIN`, one JSON object per day")
	dnsDomain := fs.String("dns", "", "print every DNS record local `DOMAIN` needs (MX, SPF, DKIM, DMARC, MTA-STS, TLS-RPT, SRV)")
	version := fs.Bool("version", false, "print the version and exit")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: mailq [-config FILE] [-json | -shape | -show ID | -flush [ID] | -hold ID | -release ID | -delete ID|ALL | -delete-domain DOMAIN | -dkim-keygen DOMAIN [-dkim-alg rsa|ed25519] | -tls-report DOMAIN | -dns DOMAIN]\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return exUsage
	}
	if *version {
		fmt.Fprintf(stdout, "tern mailq %s\n", daemon.Version)
		return exOK
	}
	actions := 0
	for _, set := range []bool{*asJSON, *show != "", *flush, *hold != "", *release != "", *del != "", *delDomain != "", *shape, *keygen != "", *tlsRep != "", *dnsDomain != ""} {
		if set {
			actions++
		}
	}
	if actions > 1 || (fs.NArg() > 0 && !*flush) || fs.NArg() > 1 {
		fs.Usage()
		return exUsage
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		fmt.Fprintf(stderr, "mailq: %v\n", err)
		return exConfig
	}
	if *keygen != "" {
		return dkimKeygen(cfg, *keygen, *keyAlg, stdout, stderr)
	}
	if *tlsRep != "" {
		return tlsReport(cfg, *tlsRep, stdout, stderr)
	}
	if *dnsDomain != "" {
		return dnsRecords(cfg, *dnsDomain, stdout, stderr)
	}
	q, code := openQueue(cfg, stderr)
	if q == nil {
		return code
	}
	out := &tool{q: q, out: stdout, errw: stderr, now: time.Now()}
	switch {
	case *asJSON:
		return out.listJSON()
	case *shape:
		return out.shape()
	case *show != "":
		return out.show(*show)
	case *flush:
		return out.flush(fs.Arg(0))
	case *hold != "":
		return out.act("held", *hold, q.Hold)
	case *release != "":
		return out.act("released", *release, q.Release)
	case *del != "":
		return out.delete(*del)
	case *delDomain != "":
		return out.deleteDomain(*delDomain)
	default:
		return out.list()
	}
}

// tool is one run of mailq on an open queue.
type tool struct {
	q    *queue.Queue
	out  io.Writer
	errw io.Writer
	now  time.Time
}

// fail reports an error about message id and picks the exit code: a
// message in delivery is "busy, retry" (75), a missing one 67-like usage.
func (t *tool) fail(id string, err error) int {
	switch {
	case errors.Is(err, queue.ErrBusy):
		fmt.Fprintf(t.errw, "mailq: %s: busy (a delivery is in progress), retry in a moment\n", id)
		return exTempFail
	case errors.Is(err, queue.ErrNotFound):
		fmt.Fprintf(t.errw, "mailq: %s: no such message in the queue\n", id)
		return exDataErr
	case errors.Is(err, queue.ErrBadID):
		fmt.Fprintf(t.errw, "mailq: %q is not a queue id (21 hex digits, as mailq lists them)\n", id)
		return exUsage
	}
	fmt.Fprintf(t.errw, "mailq: %s: %v\n", id, err)
	return exIOErr
}
