package powercut

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-smtp"
)

var passwords = map[string]string{"demo": "demo", "alice": "alice"}

// load is the set of clients running during one round.
type load struct {
	stop atomic.Bool
	wg   sync.WaitGroup
	mu   sync.Mutex
	errs []string // protocol errors that are not the cut
}

func (l *load) run(f func()) {
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		for !l.stop.Load() {
			f()
		}
	}()
}

func (l *load) halt() {
	l.stop.Store(true)
	l.wg.Wait()
}

func (l *load) note(format string, args ...any) {
	if l.stop.Load() {
		return // the cut: every failure from now on is expected
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.errs) < 10 {
		l.errs = append(l.errs, fmt.Sprintf(format, args...))
	}
}

func dial(network, addr string) (net.Conn, error) {
	c, err := net.DialTimeout(network, addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	return c, nil
}

var queueIDRE = regexp.MustCompile(`\b[0-9a-f]{21}\b`)

// smtpSession sends messages over one SMTP session to tern's MX port
// until it breaks.
func smtpSession(l *load, rec *record, rng *rand.Rand, addr string) {
	conn, err := dial("tcp", addr)
	if err != nil {
		time.Sleep(5 * time.Millisecond)
		return
	}
	c := smtp.NewClient(conn)
	defer c.Close()
	if err := c.Hello("client.example.test"); err != nil {
		return
	}
	for !l.stop.Load() {
		user := []string{"demo", "alice"}[rng.IntN(2)]
		m := rec.newMsg(rng, user, "smtp")
		if err := c.Mail("alice@example.test", nil); err != nil {
			return
		}
		if err := c.Rcpt(user+"@example.test", nil); err != nil {
			return
		}
		w, err := c.Data()
		if err != nil {
			return
		}
		if _, err := w.Write(m.body); err != nil {
			return
		}
		resp, err := w.CloseWithResponse()
		if err != nil {
			var se *smtp.SMTPError
			if errors.As(err, &se) {
				l.note("SMTP DATA for %s: %v", m.id, err)
			}
			return
		}
		rec.ack(m, queueIDRE.FindString(resp.StatusText), strings.Contains(resp.StatusText, "queued"))
	}
}

// lmtpSession delivers messages over one LMTP session to lmtpd.
func lmtpSession(l *load, rec *record, rng *rand.Rand, sock string) {
	conn, err := dial("unix", sock)
	if err != nil {
		time.Sleep(5 * time.Millisecond)
		return
	}
	c := smtp.NewClientLMTP(conn)
	defer c.Close()
	if err := c.Hello("client.example.test"); err != nil {
		return
	}
	for !l.stop.Load() {
		m := rec.newMsg(rng, "demo", "lmtp")
		if err := c.Mail("alice@example.test", nil); err != nil {
			return
		}
		if err := c.Rcpt("demo@example.test", nil); err != nil {
			return
		}
		w, err := c.Data()
		if err != nil {
			return
		}
		if _, err := w.Write(m.body); err != nil {
			return
		}
		resps, err := w.CloseWithLMTPResponse()
		if err != nil {
			var le smtp.LMTPDataError
			if errors.As(err, &le) {
				l.note("LMTP DATA for %s: %v", m.id, err)
			}
			return
		}
		if len(resps) == 1 {
			rec.ack(m, "", false)
		}
	}
}

// imapLogin opens an IMAP session as user with INBOX selected.
func imapLogin(addr, user string) (*imapclient.Client, *imap.SelectData, error) {
	conn, err := dial("tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	c := imapclient.New(conn, nil)
	if err := c.Login(user+"@example.test", passwords[user]).Wait(); err != nil {
		c.Close()
		return nil, nil, err
	}
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	return c, sel, nil
}

// appendSession appends messages to alice's INBOX over one session.
func appendSession(l *load, rec *record, rng *rand.Rand, addr string) {
	c, _, err := imapLogin(addr, "alice")
	if err != nil {
		time.Sleep(5 * time.Millisecond)
		return
	}
	defer c.Close()
	for !l.stop.Load() {
		m := rec.newMsg(rng, "alice", "append")
		cmd := c.Append("INBOX", int64(len(m.body)), nil)
		if _, err := cmd.Write(m.body); err != nil {
			return
		}
		if err := cmd.Close(); err != nil {
			return
		}
		data, err := cmd.Wait()
		if err != nil {
			var ie *imap.Error
			if errors.As(err, &ie) {
				l.note("APPEND %s: %v", m.id, err)
			}
			return
		}
		if data.UID == 0 || data.UIDValidity == 0 {
			l.note("APPEND %s: OK without APPENDUID", m.id)
			return
		}
		rec.ack(m, "", false)
		rec.mu.Lock()
		rec.where = "APPENDUID"
		rec.mu.Unlock()
		rec.sawUID("alice", data.UIDValidity, uint32(data.UID), m.id, true)
	}
}

// rawIMAP is a minimal IMAP client for the sessions a power cut may
// break in the middle of a literal. imapclient (go-imap v2 beta.8) lets
// its reader goroutine go on while a literal cut short is still being
// read by the caller (a data race the race detector reports), so the
// load's FETCH of whole messages reads the stream itself.
type rawIMAP struct {
	c   net.Conn
	r   *bufio.Reader
	tag int
}

// rawResponse is one untagged response: its text with each literal
// replaced by "{}", and the literals in order.
type rawResponse struct {
	text string
	lits [][]byte
}

var (
	uidValidityRE = regexp.MustCompile(`\[UIDVALIDITY (\d+)\]`)
	existsRE      = regexp.MustCompile(`^\* (\d+) EXISTS`)
	fetchUIDRE    = regexp.MustCompile(`\bUID (\d+)`)
	fetchSizeRE   = regexp.MustCompile(`\bRFC822\.SIZE (\d+)`)
	literalRE     = regexp.MustCompile(`\{(\d+)\}$`)
)

// rawLogin logs user in and selects INBOX, returning its UIDVALIDITY and
// message count.
func rawLogin(addr, user string) (x *rawIMAP, uv uint32, exists int, err error) {
	conn, err := dial("tcp", addr)
	if err != nil {
		return nil, 0, 0, err
	}
	x = &rawIMAP{c: conn, r: bufio.NewReader(conn)}
	if _, err := x.r.ReadString('\n'); err != nil { // greeting
		conn.Close()
		return nil, 0, 0, err
	}
	if _, err := x.cmd("LOGIN " + user + "@example.test " + passwords[user]); err != nil {
		conn.Close()
		return nil, 0, 0, err
	}
	resps, err := x.cmd("SELECT INBOX")
	if err != nil {
		conn.Close()
		return nil, 0, 0, err
	}
	for _, r := range resps {
		if m := uidValidityRE.FindStringSubmatch(r.text); m != nil {
			n, _ := strconv.ParseUint(m[1], 10, 32)
			uv = uint32(n)
		}
		if m := existsRE.FindStringSubmatch(r.text); m != nil {
			exists, _ = strconv.Atoi(m[1])
		}
	}
	return x, uv, exists, nil
}

// cmd sends one command and reads until its tagged reply, which must be OK.
func (x *rawIMAP) cmd(command string) ([]rawResponse, error) {
	x.tag++
	tag := fmt.Sprintf("r%d", x.tag)
	if _, err := fmt.Fprintf(x.c, "%s %s\r\n", tag, command); err != nil {
		return nil, err
	}
	var out []rawResponse
	for {
		var r rawResponse
		for {
			line, err := x.r.ReadString('\n')
			if err != nil {
				return nil, err
			}
			line = strings.TrimRight(line, "\r\n")
			m := literalRE.FindStringSubmatch(line)
			if m == nil {
				r.text += line
				break
			}
			n, _ := strconv.Atoi(m[1])
			lit := make([]byte, n)
			if _, err := io.ReadFull(x.r, lit); err != nil {
				return nil, err
			}
			r.text += line[:len(line)-len(m[0])] + "{}"
			r.lits = append(r.lits, lit)
		}
		if rest, ok := strings.CutPrefix(r.text, tag+" "); ok {
			if !strings.HasPrefix(rest, "OK") {
				return out, fmt.Errorf("%s: %s", command, rest)
			}
			return out, nil
		}
		out = append(out, r)
	}
}

// fetchAll fetches every message of the selected INBOX whole.
func (x *rawIMAP) fetchAll(uv uint32) ([]servedMsg, error) {
	resps, err := x.cmd("UID FETCH 1:* (UID RFC822.SIZE BODY.PEEK[])")
	if err != nil {
		return nil, err
	}
	var out []servedMsg
	for _, r := range resps {
		um, sm := fetchUIDRE.FindStringSubmatch(r.text), fetchSizeRE.FindStringSubmatch(r.text)
		if !strings.Contains(r.text, " FETCH (") || um == nil || sm == nil || len(r.lits) != 1 {
			continue
		}
		uid, _ := strconv.ParseUint(um[1], 10, 32)
		size, _ := strconv.ParseInt(sm[1], 10, 64)
		out = append(out, servedMsg{uv: uv, uid: uint32(uid), size: size, data: r.lits[0]})
	}
	return out, nil
}

// expungeSession removes a few of alice's messages with UID STORE
// \Deleted and UID EXPUNGE of just those UIDs (RFC 4315), once per
// session.
func expungeSession(l *load, rec *record, rng *rand.Rand, addr string) {
	c, uv, exists, err := rawLogin(addr, "alice")
	if err != nil {
		time.Sleep(5 * time.Millisecond)
		return
	}
	defer c.c.Close()
	if exists == 0 {
		time.Sleep(20 * time.Millisecond)
		return
	}
	msgs, err := c.fetchAll(uv)
	if err != nil {
		return
	}
	var pick []*msg
	var uids imap.UIDSet
	for _, i := range rng.Perm(len(msgs))[:min(len(msgs), 1+rng.IntN(20))] {
		s := msgs[i]
		m, whole := rec.identify(s.data)
		if m == nil || !whole {
			l.note("FETCH during the load served a torn message: %.80q", s.data)
			continue
		}
		rec.mu.Lock()
		rec.where = "EXPUNGE client"
		rec.mu.Unlock()
		rec.sawUID("alice", s.uv, s.uid, m.id, false)
		pick = append(pick, m)
		uids.AddNum(imap.UID(s.uid))
	}
	if len(pick) == 0 {
		return
	}
	rec.mu.Lock()
	for _, m := range pick {
		m.removeTried = true
	}
	rec.mu.Unlock()
	if _, err := c.cmd("UID STORE " + uids.String() + ` +FLAGS.SILENT (\Deleted)`); err != nil {
		return
	}
	// RFC 4315 2.1: UID EXPUNGE removes only these UIDs.
	if _, err := c.cmd("UID EXPUNGE " + uids.String()); err != nil {
		return
	}
	rec.mu.Lock()
	for _, m := range pick {
		m.removeAcked = true
		rec.removedAcked++
	}
	rec.mu.Unlock()
}

// pop3 is a minimal POP3 client (RFC 1939).
type pop3 struct {
	c net.Conn
	r *bufio.Reader
}

func pop3Login(addr, user string) (*pop3, error) {
	conn, err := dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	p := &pop3{c: conn, r: bufio.NewReader(conn)}
	if _, err := p.status(); err != nil {
		conn.Close()
		return nil, err
	}
	for _, cmd := range []string{"USER " + user + "@example.test", "PASS " + passwords[user]} {
		if _, err := p.cmd(cmd); err != nil {
			conn.Close()
			return nil, err
		}
	}
	return p, nil
}

func (p *pop3) status() (string, error) {
	line, err := p.r.ReadString('\n')
	if err != nil {
		return "", err
	}
	if !strings.HasPrefix(line, "+OK") {
		return "", fmt.Errorf("pop3: %s", strings.TrimSpace(line))
	}
	return strings.TrimSpace(line), nil
}

func (p *pop3) cmd(s string) (string, error) {
	if _, err := p.c.Write([]byte(s + "\r\n")); err != nil {
		return "", err
	}
	return p.status()
}

// multi reads a multi-line response body, undoing dot-stuffing.
func (p *pop3) multi() ([]byte, error) {
	var out []byte
	for {
		line, err := p.r.ReadBytes('\n')
		if err != nil {
			return nil, err
		}
		if string(line) == ".\r\n" {
			return out, nil
		}
		if len(line) > 1 && line[0] == '.' {
			line = line[1:]
		}
		out = append(out, line...)
	}
}

// list returns the octet count of every message.
func (p *pop3) list() ([]int64, error) {
	if _, err := p.cmd("LIST"); err != nil {
		return nil, err
	}
	body, err := p.multi()
	if err != nil {
		return nil, err
	}
	var sizes []int64
	for _, line := range strings.Split(strings.TrimSpace(string(body)), "\r\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		n, _ := strconv.ParseInt(f[1], 10, 64)
		sizes = append(sizes, n)
	}
	return sizes, nil
}

func (p *pop3) retr(i int) ([]byte, error) {
	if _, err := p.cmd("RETR " + strconv.Itoa(i)); err != nil {
		return nil, err
	}
	return p.multi()
}

// pop3Session retrieves a few of demo's messages, checks them, marks
// them with DELE and ends with QUIT: the UPDATE state (RFC 1939 6)
// removes them, and +OK acknowledges the removal.
func pop3Session(l *load, rec *record, rng *rand.Rand, addr string) {
	p, err := pop3Login(addr, "demo")
	if err != nil {
		time.Sleep(10 * time.Millisecond)
		return
	}
	defer p.c.Close()
	sizes, err := p.list()
	if err != nil || len(sizes) == 0 {
		time.Sleep(10 * time.Millisecond)
		return
	}
	var pick []*msg
	for _, i := range rng.Perm(len(sizes))[:min(len(sizes), 1+rng.IntN(20))] {
		data, err := p.retr(i + 1)
		if err != nil {
			return
		}
		m, whole := rec.identify(data)
		if m == nil || !whole || int64(len(data)) != sizes[i] {
			l.note("RETR served a torn message (%d bytes, LIST says %d): %.80q", len(data), sizes[i], data)
			continue
		}
		if _, err := p.cmd("DELE " + strconv.Itoa(i+1)); err != nil {
			return
		}
		pick = append(pick, m)
	}
	rec.mu.Lock()
	for _, m := range pick {
		m.removeTried = true
	}
	rec.mu.Unlock()
	if _, err := p.cmd("QUIT"); err != nil {
		return
	}
	rec.mu.Lock()
	for _, m := range pick {
		m.removeAcked = true
		rec.removedAcked++
	}
	rec.mu.Unlock()
}

// verifyIMAP checks the whole INBOX of user. A message file is never
// rewritten, so a message already served whole under a UID is checked by
// its Message-ID and size; every other one is fetched whole.
func verifyIMAP(rec *record, addr, user string, queued func() map[string]bool, where string) error {
	c, sel, err := imapLogin(addr, user)
	if err != nil {
		return fmt.Errorf("IMAP login %s: %w", user, err)
	}
	defer c.Close()
	var msgs []servedMsg
	if sel.NumMessages > 0 {
		hdr := &imap.FetchItemBodySection{Peek: true, Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Message-ID"}}
		bufs, err := c.Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, &imap.FetchOptions{
			UID: true, RFC822Size: true, BodySection: []*imap.FetchItemBodySection{hdr},
		}).Collect()
		if err != nil {
			return fmt.Errorf("IMAP FETCH %s: %w", user, err)
		}
		var whole imap.UIDSet
		for _, b := range bufs {
			if m := rec.wholeAt(user, sel.UIDValidity, uint32(b.UID), b.FindBodySection(hdr)); m != nil && int64(m.servedSize) == b.RFC822Size {
				msgs = append(msgs, servedMsg{uv: sel.UIDValidity, uid: uint32(b.UID), size: b.RFC822Size, known: m})
				continue
			}
			whole.AddNum(b.UID)
		}
		if len(whole) > 0 {
			body := &imap.FetchItemBodySection{Peek: true}
			bufs, err := c.Fetch(whole, &imap.FetchOptions{
				UID: true, RFC822Size: true, BodySection: []*imap.FetchItemBodySection{body},
			}).Collect()
			if err != nil {
				return fmt.Errorf("IMAP UID FETCH %s: %w", user, err)
			}
			for _, b := range bufs {
				msgs = append(msgs, servedMsg{uv: sel.UIDValidity, uid: uint32(b.UID), size: b.RFC822Size, data: b.FindBodySection(body)})
			}
		}
	}
	rec.check(user, msgs, queued, where+" IMAP")
	return nil
}

// verifyPOP3 retrieves every message of user's maildrop and checks it.
func verifyPOP3(rec *record, addr, user string, queued func() map[string]bool, where string) error {
	p, err := pop3Login(addr, user)
	if err != nil {
		return fmt.Errorf("POP3 login %s: %w", user, err)
	}
	defer p.c.Close()
	sizes, err := p.list()
	if err != nil {
		return err
	}
	var msgs []servedMsg
	for i, size := range sizes {
		data, err := p.retr(i + 1)
		if err != nil {
			return err
		}
		msgs = append(msgs, servedMsg{size: size, data: data})
	}
	p.cmd("QUIT")
	rec.check(user, msgs, queued, where+" POP3")
	return nil
}
