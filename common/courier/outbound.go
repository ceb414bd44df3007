package courier

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"tern/common/maillog"
	"tern/common/queue"
	"tern/common/trace"
)

// errPermanent marks a routing failure no retry can fix.
var errPermanent = errors.New("courier: permanent routing failure")

// nextHops lists where mail for domain goes, best first: relay_host when
// set, else the transport map's entry, else the MX hosts (RFC 5321 5.1),
// falling back to the domain's own address records when it has no MX.
func (cr *Courier) nextHops(ctx context.Context, domain string) (hops []string, viaMX bool, err error) {
	cfg := cr.cfg().SMTPD
	if cfg.RelayHost != "" {
		return []string{cfg.RelayHost}, false, nil
	}
	if hop, ok := cfg.Transport[domain]; ok {
		return []string{hop}, false, nil
	}
	if strings.HasPrefix(domain, "[") {
		lit := strings.TrimPrefix(strings.Trim(domain, "[]"), "ipv6:")
		return []string{net.JoinHostPort(lit, strconv.Itoa(cfg.RemotePort))}, false, nil
	}
	// The [dns] resolver, with its timeout, for every lookup here.
	ctx, cancel := context.WithTimeout(ctx, cr.cfg().DNS.Timeout.D())
	defer cancel()
	port := strconv.Itoa(cr.cfg().SMTPD.RemotePort)
	mxs, err := cr.resolver.LookupMX(ctx, domain)
	var dnsErr *net.DNSError
	if err != nil && !(errors.As(err, &dnsErr) && dnsErr.IsNotFound) {
		return nil, false, fmt.Errorf("MX lookup for %s: %w", domain, err)
	}
	if len(mxs) == 0 {
		// RFC 5321 5.1: no MX records, the domain itself is the host.
		if _, err := cr.resolver.LookupHost(ctx, domain); err != nil {
			if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
				return nil, false, fmt.Errorf("%w: domain %s has no MX and no address", errPermanent, domain)
			}
			return nil, false, fmt.Errorf("address lookup for %s: %w", domain, err)
		}
		// RFC 8461 4.1: the implicit MX is checked against a policy too.
		return []string{net.JoinHostPort(domain, port)}, true, nil
	}
	// RFC 7505 3: a single "." MX means the domain takes no mail.
	if len(mxs) == 1 && (mxs[0].Host == "." || mxs[0].Host == "") {
		return nil, false, fmt.Errorf("%w: domain %s accepts no mail (null MX)", errPermanent, domain)
	}
	sort.SliceStable(mxs, func(i, j int) bool { return mxs[i].Pref < mxs[j].Pref })
	for _, mx := range mxs {
		hops = append(hops, net.JoinHostPort(strings.TrimSuffix(mx.Host, "."), port))
	}
	return hops, true, nil
}

// deliverRemote sends the recipients idx of e (all in one domain) to the
// domain's next hop, trying the hops in order until one takes the
// transaction, and records each recipient's result. passedOn reports
// whether the hop that had the transaction speaks DSN (RFC 3461), so that
// the sender's NOTIFY, ORCPT, RET and ENVID went on with the message.
func (cr *Courier) deliverRemote(ctx context.Context, e *queue.Envelope, idx []int, domain string, data io.ReadSeeker) (passedOn bool) {
	log := cr.log
	record := func(i int, host string, code int, reply string) {
		r := &e.Recipients[i]
		r.AddAttempt(queue.Attempt{Time: time.Now(), Host: host, Code: code, Reply: trace.Reply(reply)})
		switch {
		case code >= 200 && code < 300:
			r.State = queue.Delivered
			maillog.Delivered(log, maillog.Msg{ID: e.ID, From: e.From, To: r.Addr, Via: host}, deliveryDuration(e))
		case code >= 500:
			r.State = queue.Failed
			maillog.Bounced(log, maillog.Msg{ID: e.ID, From: e.From, To: r.Addr, Via: host}, reply)
		default:
			maillog.Deferred(log, maillog.Msg{ID: e.ID, From: e.From, To: r.Addr, Via: host}, reply)
		}
	}
	hops, viaMX, err := cr.nextHops(ctx, domain)
	if err != nil {
		code := 451
		if errors.Is(err, errPermanent) {
			code = 550
		}
		for _, i := range idx {
			record(i, "dns", code, err.Error())
		}
		return false
	}
	o := cr.policyFor(ctx, domain, viaMX)
	switch {
	case e.RequireTLS:
		if o == nil {
			o = &outboundTLS{domain: domain}
		}
		o.requireTLS = true
		if !viaMX {
			for _, i := range idx {
				record(i, hops[0], 550, requireTLSStatus+" REQUIRETLS: the next hop "+hops[0]+
					" is set by relay_host or the transport map, which no DANE or MTA-STS policy authenticates")
			}
			return false
		}
	case tlsRequiredNo(rewind(data)):
		// RFC 8689 5: the sender asks that TLS policies be ignored.
		o = nil
	}
	need := needsUTF8(e, idx, rewind(data))
	var lastErr, noUTF8 error
	var noUTF8Hop string
	for _, hop := range hops {
		ho, err := cr.forHost(ctx, o, hop)
		if err != nil {
			lastErr = err
			continue
		}
		if err := ho.allowHost(cr, hop); err != nil {
			lastErr = err
			continue
		}
		data.Seek(0, io.SeekStart)
		done, dsn, err := cr.sendTo(ctx, hop, ho, e, idx, need, data, record)
		if done {
			return dsn
		}
		lastErr = err
		if errors.Is(err, errNoUTF8) {
			noUTF8, noUTF8Hop = err, hop
		}
		log.Debug("next hop failed", "id", e.ID, "hop", hop, "err", err)
	}
	if noUTF8 != nil {
		// RFC 6531 3.2: a hop that answered without SMTPUTF8, and none
		// that took the message: it is returned to the sender now (with
		// a notice, RFC 6533), as waiting cannot make the hop announce it.
		for _, i := range idx {
			record(i, noUTF8Hop, need.code, noUTF8.Error())
		}
		return false
	}
	if errors.Is(lastErr, errRequireTLS) {
		// RFC 8689 5: returned to the sender.
		for _, i := range idx {
			record(i, hops[len(hops)-1], 550, requireTLSStatus+" "+lastErr.Error())
		}
		return false
	}
	for _, i := range idx {
		record(i, hops[len(hops)-1], 0, fmt.Sprintf("all next hops failed: %v", lastErr))
	}
	return false
}

// sendTo runs one SMTP transaction with hop. done is false when the
// connection failed before MAIL was accepted, so another hop may be tried;
// dsn reports whether hop announced the DSN extension (RFC 3461 5.2.1:
// the DSN parameters are then passed on).
func (cr *Courier) sendTo(ctx context.Context, hop string, o *outboundTLS, e *queue.Envelope, idx []int, need utf8Need, data io.Reader,
	record func(i int, host string, code int, reply string)) (done, dsn bool, err error) {
	if err := cr.hosts.inBackoff(hop, time.Now()); err != nil {
		return false, false, err
	}
	// Concurrency is bounded per MX host, so that the domains it serves
	// share its limit, and per address below.
	limit := cr.cfg().SMTPD.DestinationConcurrency
	release := cr.hosts.acquire(ctx, "host "+hostKey(hop), limit)
	if release == nil {
		return false, false, ctx.Err()
	}
	defer release()
	addrs, err := cr.addrsOf(ctx, hop)
	if err != nil {
		return false, false, err
	}
	for _, addr := range addrs {
		rel := cr.hosts.acquire(ctx, "addr "+addr, limit)
		if rel == nil {
			return false, false, ctx.Err()
		}
		done, dsn, err = cr.sendToAddr(ctx, hop, addr, o, e, idx, need, data, record)
		rel()
		if done {
			cr.hosts.succeeded(hop)
			return done, dsn, err
		}
		if errors.Is(err, errNoUTF8) {
			// The host answers: it is not down, and its other
			// addresses announce what this one did.
			return false, false, err
		}
		if ctx.Err() != nil {
			return false, false, err
		}
	}
	if !errors.Is(err, errPolicy) && !errors.Is(err, errRequireTLS) {
		// A host that answers but fails one domain's policy, or one
		// message's REQUIRETLS, is not down for the others.
		cr.hosts.failed(hop, err, cr.cfg().SMTPD.RetryMin.D(), cr.cfg().SMTPD.RetryMax.D())
	}
	return false, false, err
}

// sendToAddr is sendTo on one address of hop.
func (cr *Courier) sendToAddr(ctx context.Context, hop, addr string, o *outboundTLS, e *queue.Envelope, idx []int, need utf8Need, data io.Reader,
	record func(i int, host string, code int, reply string)) (done, dsn bool, err error) {
	c, err := cr.dialSMTP(ctx, hop, addr, o, true)
	if err != nil {
		var se *smtp.SMTPError
		if errors.As(err, &se) && se.Code >= 500 {
			// RFC 5321 3.1: 554 greeting means no service; try the next hop.
			return false, false, err
		}
		// TLS trouble: opportunistic TLS falls back to plaintext. A
		// policy's failure (errPolicy) never does.
		if errors.Is(err, errTLS) {
			c, err = cr.dialSMTP(ctx, hop, addr, o, false)
		}
		if err != nil {
			return false, false, err
		}
	}
	defer c.Close()
	if e.RequireTLS {
		if ok, _ := c.Extension("REQUIRETLS"); !ok {
			// RFC 8689 4.2.1: only to a next hop that announces it.
			return false, false, fmt.Errorf("%w: %s does not announce REQUIRETLS", errRequireTLS, hop)
		}
	}
	smtputf8, _ := c.Extension("SMTPUTF8")
	if need.needed() && !smtputf8 {
		// RFC 6531 3.2, 3.5: not to a server that does not announce it.
		c.Quit()
		return false, false, need.refused(hop)
	}
	dsn, _ = c.Extension("DSN")
	// RFC 6531 3.4: SMTPUTF8 goes on where the next hop takes it; a
	// message that claimed it but needs it not goes on without it.
	done, err = cr.transact(c, hop, e, idx, smtputf8 && (e.UTF8 || need.needed()), data, record)
	return done, dsn, err
}

// transact sends the message on c, whose EHLO is done.
func (cr *Courier) transact(c *smtp.Client, hop string, e *queue.Envelope, idx []int, utf8 bool, data io.Reader,
	record func(i int, host string, code int, reply string)) (done bool, err error) {
	opts := &smtp.MailOptions{Body: smtp.BodyType(e.Body), UTF8: utf8, Size: e.Size,
		Return: smtp.DSNReturn(e.Ret), EnvelopeID: e.EnvID, RequireTLS: e.RequireTLS}
	if err := c.Mail(e.From, opts); err != nil {
		var se *smtp.SMTPError
		if errors.As(err, &se) {
			for _, i := range idx {
				record(i, hop, se.Code, replyText(se))
			}
			return true, nil
		}
		return false, err
	}
	var accepted []int
	for _, i := range idx {
		r := e.Recipients[i]
		ro := &smtp.RcptOptions{}
		for _, n := range r.Notify {
			ro.Notify = append(ro.Notify, smtp.DSNNotify(n))
		}
		if t, a, ok := strings.Cut(r.ORcpt, ";"); ok {
			ro.OriginalRecipientType, ro.OriginalRecipient = smtp.DSNAddressType(strings.ToUpper(t)), a
		}
		if err := c.Rcpt(r.Addr, ro); err != nil {
			var se *smtp.SMTPError
			if errors.As(err, &se) {
				record(i, hop, se.Code, replyText(se))
				continue
			}
			for _, j := range idx {
				if e.Recipients[j].State == queue.Pending {
					record(j, hop, 0, err.Error())
				}
			}
			return true, nil
		}
		accepted = append(accepted, i)
	}
	if len(accepted) == 0 {
		c.Quit()
		return true, nil
	}
	fail := func(code int, text string) (bool, error) {
		for _, i := range accepted {
			record(i, hop, code, text)
		}
		return true, nil
	}
	w, err := c.Data()
	if err != nil {
		var se *smtp.SMTPError
		if errors.As(err, &se) {
			return fail(se.Code, replyText(se))
		}
		return fail(0, err.Error())
	}
	if _, err := io.Copy(w, &crlfReader{r: bufio.NewReader(data)}); err != nil {
		return fail(0, err.Error())
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		var se *smtp.SMTPError
		if errors.As(err, &se) {
			return fail(se.Code, replyText(se))
		}
		return fail(0, err.Error())
	}
	for _, i := range accepted {
		record(i, hop, 250, resp.StatusText)
	}
	c.Quit()
	return true, nil
}

func replyText(se *smtp.SMTPError) string {
	if se.EnhancedCode != smtp.EnhancedCodeNotSet && se.EnhancedCode != smtp.NoEnhancedCode {
		return fmt.Sprintf("%d.%d.%d %s", se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2], se.Message)
	}
	return se.Message
}

var errTLS = errors.New("courier: STARTTLS failed")

// dialSMTP connects to addr, an address of hop, says EHLO, and upgrades
// with STARTTLS when offered and useTLS. Without a policy the upgrade is
// opportunistic (RFC 3207, RFC 7435): the certificate is not verified,
// since an MX name is not authenticated without DANE or MTA-STS; it still
// protects against passive listeners. Under a policy (sts.go) TLS may be
// required and the certificate checked. The library's client always
// greets as "localhost" before STARTTLS, so the pre-TLS exchange is done
// here and the client starts after it.
func (cr *Courier) dialSMTP(ctx context.Context, hop, addr string, o *outboundTLS, useTLS bool) (*smtp.Client, error) {
	timeout := cr.cfg().SMTPD.ConnectTimeout.D()
	d := net.Dialer{Timeout: timeout}
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", hop, err)
	}
	raw.SetDeadline(time.Now().Add(timeout))
	tp := textproto.NewConn(raw)
	fail := func(err error) (*smtp.Client, error) {
		raw.Close()
		var te *textproto.Error
		if errors.As(err, &te) {
			return nil, &smtp.SMTPError{Code: te.Code, Message: te.Msg}
		}
		return nil, err
	}
	if _, _, err := tp.ReadResponse(220); err != nil {
		return fail(fmt.Errorf("greeting from %s: %w", hop, err))
	}
	var conn net.Conn = raw
	if useTLS {
		if err := tp.PrintfLine("EHLO %s", cr.cfg().Hostname); err != nil {
			return fail(err)
		}
		_, msg, err := tp.ReadResponse(250)
		if err != nil {
			return fail(fmt.Errorf("EHLO to %s: %w", hop, err))
		}
		if !hasExtension(msg, "STARTTLS") {
			if err := o.noSTARTTLS(cr, hop, raw); err != nil {
				return fail(err)
			}
		} else {
			if err := tp.PrintfLine("STARTTLS"); err != nil {
				return fail(err)
			}
			if _, _, err := tp.ReadResponse(220); err != nil {
				raw.Close()
				return nil, o.tlsFailed(cr, hop, raw, failStartTLS, err)
			}
			tc, err := cr.handshake(ctx, raw, hop, o)
			if err != nil {
				raw.Close()
				return nil, err
			}
			conn = tc
		}
	}
	raw.SetDeadline(time.Time{})
	// The library's client expects a greeting; the server already gave it,
	// so it is replayed, and the client's EHLO is the one RFC 3207 4.2
	// requires after the TLS handshake.
	c := smtp.NewClient(&prefixConn{Conn: conn, prefix: []byte("220 " + hop + " ready\r\n")})
	c.CommandTimeout = 5 * time.Minute     // RFC 5321 4.5.3.2.2-4
	c.SubmissionTimeout = 10 * time.Minute // RFC 5321 4.5.3.2.6
	if err := c.Hello(cr.cfg().Hostname); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func hasExtension(ehlo, ext string) bool {
	for _, l := range strings.Split(ehlo, "\n") {
		if f := strings.Fields(l); len(f) > 0 && strings.EqualFold(f[0], ext) {
			return true
		}
	}
	return false
}

// prefixConn replays bytes before the connection's own.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (p *prefixConn) Read(b []byte) (int, error) {
	if len(p.prefix) > 0 {
		n := copy(b, p.prefix)
		p.prefix = p.prefix[n:]
		return n, nil
	}
	return p.Conn.Read(b)
}

// crlfReader makes every line end in CRLF, whatever the queue file holds,
// so that the outbound client never emits a bare CR or LF (RFC 5321
// 2.3.8): a bare CR or a bare LF becomes CRLF.
type crlfReader struct {
	r      *bufio.Reader
	out    []byte // converted bytes not yet returned
	prevCR bool
	eof    bool
}

func (c *crlfReader) Read(p []byte) (int, error) {
	for len(c.out) < len(p) && !c.eof {
		b, err := c.r.ReadByte()
		if err != nil {
			if c.prevCR {
				c.out = append(c.out, '\n')
				c.prevCR = false
			}
			c.eof = true
			break
		}
		if c.prevCR {
			c.prevCR = false
			c.out = append(c.out, '\n')
			if b == '\n' {
				continue
			}
		}
		switch b {
		case '\r':
			c.out = append(c.out, '\r')
			c.prevCR = true
		case '\n':
			c.out = append(c.out, '\r', '\n')
		default:
			c.out = append(c.out, b)
		}
	}
	if len(c.out) == 0 && c.eof {
		return 0, io.EOF
	}
	n := copy(p, c.out)
	c.out = c.out[n:]
	return n, nil
}
