package queue

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// State is where one recipient of a queued message stands.
type State string

const (
	// Pending recipients are still to be delivered.
	Pending State = "pending"
	// Delivered recipients were accepted by the next hop.
	Delivered State = "delivered"
	// Failed recipients failed permanently (or the message expired); a DSN
	// is still owed to the sender.
	Failed State = "failed"
	// Bounced recipients failed and their DSN was queued, or none was
	// wanted (NOTIFY=NEVER, null sender).
	Bounced State = "bounced"
)

func (s State) valid() bool {
	switch s {
	case Pending, Delivered, Failed, Bounced:
		return true
	}
	return false
}

// Attempt is one delivery attempt for one recipient, with what the next hop
// answered (or why it could not be reached).
type Attempt struct {
	Time  time.Time
	Host  string // the next hop tried: "lmtp", "mx.example.org:25", …
	Code  int    // the SMTP reply code; 0 when no reply was had
	Reply string // the reply text or the local error
}

// Recipient is one envelope recipient and its delivery state.
type Recipient struct {
	Addr  string
	State State
	// Notify is the RFC 3461 NOTIFY parameter ("NEVER", or some of
	// "SUCCESS", "FAILURE", "DELAY"); empty means the default (FAILURE,
	// and DELAY at the MTA's discretion).
	Notify []string
	// ORcpt is the RFC 3461 ORCPT parameter as "type;address", or "".
	ORcpt string
	// Attempts is the delivery history, oldest first, bounded by
	// MaxAttemptHistory.
	Attempts []Attempt
}

// LastAttempt returns the latest attempt, if any.
func (r *Recipient) LastAttempt() (Attempt, bool) {
	if len(r.Attempts) == 0 {
		return Attempt{}, false
	}
	return r.Attempts[len(r.Attempts)-1], true
}

// AddAttempt records an attempt, keeping at most MaxAttemptHistory.
func (r *Recipient) AddAttempt(a Attempt) {
	r.Attempts = append(r.Attempts, a)
	if n := len(r.Attempts) - MaxAttemptHistory; n > 0 {
		r.Attempts = append(r.Attempts[:0], r.Attempts[n:]...)
	}
}

// WantsNotify reports whether the sender asked for (or, with no NOTIFY,
// defaults to) a DSN of this kind: "FAILURE", "DELAY" or "SUCCESS".
// RFC 3461 4.1: without NOTIFY, a failure DSN is sent.
func (r *Recipient) WantsNotify(kind string) bool {
	if len(r.Notify) == 0 {
		return kind == "FAILURE"
	}
	for _, n := range r.Notify {
		if n == kind {
			return true
		}
	}
	return false
}

// MaxAttemptHistory bounds the attempts kept per recipient, so that a
// message retried for days keeps a small envelope.
const MaxAttemptHistory = 20

// Envelope is everything about a queued message except its content.
type Envelope struct {
	ID      string
	Arrival time.Time
	// From is the reverse path; "" is the null sender <>.
	From       string
	Recipients []Recipient

	Size   int64  // bytes of the data file
	SHA256 string // hex digest of the data file

	Body     string // "7BIT", "8BITMIME" or "" (RFC 6152)
	UTF8     bool   // SMTPUTF8 (RFC 6531)
	Ret      string // RFC 3461 RET: "FULL", "HDRS" or ""
	EnvID    string // RFC 3461 ENVID, decoded
	AuthUser string // the authenticated submitter, if any
	Client   string // the client's IP address
	Helo     string // the client's EHLO name
	// IsDSN marks a delivery status notification made by tern, so that
	// its own failure never produces another one.
	IsDSN bool
	// RequireTLS is the REQUIRETLS parameter of MAIL (RFC 8689): the
	// message goes only over TLS validated by DANE or MTA-STS to a next
	// hop that takes REQUIRETLS too.
	RequireTLS bool

	// Warned records that the delay warning (RFC 3461 4.1 NOTIFY=DELAY,
	// RFC 3464 2.3.3 action "delayed") was sent or was due: it goes out
	// once per message.
	Warned bool

	Held        bool
	NextAttempt time.Time
	Tries       int // delivery rounds so far
}

// Pending returns the indexes of the recipients still to be delivered.
func (e *Envelope) Pending() []int {
	var idx []int
	for i := range e.Recipients {
		if e.Recipients[i].State == Pending {
			idx = append(idx, i)
		}
	}
	return idx
}

// Done reports whether nothing more is owed for the message: every
// recipient is delivered or bounced.
func (e *Envelope) Done() bool {
	for _, r := range e.Recipients {
		if r.State == Pending || r.State == Failed {
			return false
		}
	}
	return true
}

// formatVersion is the first record of every envelope file.
const formatVersion = "tern-queue 1"

// ErrTorn is returned for an envelope file that is incomplete or damaged:
// it lacks the final end record, or the checksum in it does not match.
var ErrTorn = errors.New("queue: torn or damaged envelope file")

// marshal encodes the envelope in the record format of tern-queue(5).
func (e *Envelope) marshal() []byte {
	var b bytes.Buffer
	rec := func(name string, fields ...string) {
		b.WriteString(name)
		for _, f := range fields {
			b.WriteByte(' ')
			b.WriteString(escape(f))
		}
		b.WriteByte('\n')
	}
	b.WriteString(formatVersion + "\n")
	rec("id", e.ID)
	rec("arrival", e.Arrival.UTC().Format(time.RFC3339Nano))
	rec("from", "<"+e.From+">")
	rec("size", strconv.FormatInt(e.Size, 10))
	rec("sha256", e.SHA256)
	if e.Body != "" {
		rec("body", e.Body)
	}
	if e.UTF8 {
		rec("utf8")
	}
	if e.Ret != "" {
		rec("ret", e.Ret)
	}
	if e.EnvID != "" {
		rec("envid", e.EnvID)
	}
	if e.RequireTLS {
		rec("requiretls")
	}
	if e.AuthUser != "" {
		rec("auth", e.AuthUser)
	}
	if e.Client != "" {
		rec("client", e.Client)
	}
	if e.Helo != "" {
		rec("helo", e.Helo)
	}
	if e.IsDSN {
		rec("dsn")
	}
	if e.Warned {
		rec("warned")
	}
	if e.Held {
		rec("held")
	}
	if !e.NextAttempt.IsZero() {
		rec("next", e.NextAttempt.UTC().Format(time.RFC3339Nano))
	}
	rec("tries", strconv.Itoa(e.Tries))
	for i, r := range e.Recipients {
		notify := strings.Join(r.Notify, ",")
		rec("rcpt", "<"+r.Addr+">", string(r.State), orDash(notify), orDash(r.ORcpt))
		for _, a := range r.Attempts {
			rec("try", strconv.Itoa(i), a.Time.UTC().Format(time.RFC3339Nano),
				orDash(a.Host), strconv.Itoa(a.Code), a.Reply)
		}
	}
	sum := sha256.Sum256(b.Bytes())
	b.WriteString("end " + hex.EncodeToString(sum[:]) + "\n")
	return b.Bytes()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func fromDash(s string) string {
	if s == "-" {
		return ""
	}
	return s
}

// parseEnvelope decodes an envelope file. Anything but a complete,
// well-formed file with a matching end record is an error wrapping ErrTorn.
func parseEnvelope(data []byte) (*Envelope, error) {
	end := bytes.LastIndex(data, []byte("\nend "))
	if end < 0 || !bytes.HasSuffix(data, []byte("\n")) {
		return nil, fmt.Errorf("%w: no end record", ErrTorn)
	}
	body, trailer := data[:end+1], data[end+1:]
	sum := sha256.Sum256(body)
	if string(trailer) != "end "+hex.EncodeToString(sum[:])+"\n" {
		return nil, fmt.Errorf("%w: checksum mismatch", ErrTorn)
	}
	e := &Envelope{}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 0, 4096), len(body)+1)
	line := 0
	seen := map[string]bool{}
	for sc.Scan() {
		line++
		text := sc.Text()
		if line == 1 {
			if text != formatVersion {
				return nil, fmt.Errorf("%w: line 1: unknown format %q", ErrTorn, text)
			}
			continue
		}
		raw := strings.Split(text, " ")
		name, fields := raw[0], raw[1:]
		for i, f := range fields {
			v, err := unescape(f)
			if err != nil {
				return nil, fmt.Errorf("%w: line %d: %v", ErrTorn, line, err)
			}
			fields[i] = v
		}
		if err := e.setRecord(name, fields, seen); err != nil {
			return nil, fmt.Errorf("%w: line %d: %s: %v", ErrTorn, line, name, err)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrTorn, err)
	}
	for _, need := range []string{"id", "arrival", "from", "size", "sha256"} {
		if !seen[need] {
			return nil, fmt.Errorf("%w: missing %s record", ErrTorn, need)
		}
	}
	if len(e.Recipients) == 0 {
		return nil, fmt.Errorf("%w: no recipients", ErrTorn)
	}
	return e, nil
}

func (e *Envelope) setRecord(name string, f []string, seen map[string]bool) error {
	want := func(n int) error {
		if len(f) != n {
			return fmt.Errorf("want %d fields, got %d", n, len(f))
		}
		return nil
	}
	if name != "rcpt" && name != "try" {
		if seen[name] {
			return errors.New("duplicate record")
		}
		seen[name] = true
	}
	var err error
	switch name {
	case "id":
		if err = want(1); err == nil && !ValidID(f[0]) {
			err = fmt.Errorf("bad id %q", f[0])
		}
		if err == nil {
			e.ID = f[0]
		}
	case "arrival":
		if err = want(1); err == nil {
			e.Arrival, err = time.Parse(time.RFC3339Nano, f[0])
		}
	case "from":
		if err = want(1); err == nil {
			e.From, err = unbracket(f[0])
		}
	case "size":
		if err = want(1); err == nil {
			e.Size, err = strconv.ParseInt(f[0], 10, 64)
			if err == nil && e.Size < 0 {
				err = errors.New("negative size")
			}
		}
	case "sha256":
		if err = want(1); err == nil {
			if b, herr := hex.DecodeString(f[0]); herr != nil || len(b) != sha256.Size {
				err = fmt.Errorf("bad digest %q", f[0])
			}
			e.SHA256 = f[0]
		}
	case "body":
		if err = want(1); err == nil {
			e.Body = f[0]
		}
	case "utf8":
		err, e.UTF8 = want(0), true
	case "ret":
		if err = want(1); err == nil {
			e.Ret = f[0]
		}
	case "envid":
		if err = want(1); err == nil {
			e.EnvID = f[0]
		}
	case "requiretls":
		err, e.RequireTLS = want(0), true
	case "auth":
		if err = want(1); err == nil {
			e.AuthUser = f[0]
		}
	case "client":
		if err = want(1); err == nil {
			e.Client = f[0]
		}
	case "helo":
		if err = want(1); err == nil {
			e.Helo = f[0]
		}
	case "dsn":
		err, e.IsDSN = want(0), true
	case "warned":
		err, e.Warned = want(0), true
	case "held":
		err, e.Held = want(0), true
	case "next":
		if err = want(1); err == nil {
			e.NextAttempt, err = time.Parse(time.RFC3339Nano, f[0])
		}
	case "tries":
		if err = want(1); err == nil {
			e.Tries, err = strconv.Atoi(f[0])
		}
	case "rcpt":
		if err = want(4); err != nil {
			return err
		}
		var r Recipient
		if r.Addr, err = unbracket(f[0]); err != nil {
			return err
		}
		r.State = State(f[1])
		if !r.State.valid() {
			return fmt.Errorf("bad state %q", f[1])
		}
		if n := fromDash(f[2]); n != "" {
			r.Notify = strings.Split(n, ",")
		}
		r.ORcpt = fromDash(f[3])
		e.Recipients = append(e.Recipients, r)
	case "try":
		if err = want(5); err != nil {
			return err
		}
		i, err := strconv.Atoi(f[0])
		if err != nil || i < 0 || i >= len(e.Recipients) {
			return fmt.Errorf("bad recipient index %q", f[0])
		}
		var a Attempt
		if a.Time, err = time.Parse(time.RFC3339Nano, f[1]); err != nil {
			return err
		}
		a.Host = fromDash(f[2])
		if a.Code, err = strconv.Atoi(f[3]); err != nil {
			return err
		}
		a.Reply = f[4]
		e.Recipients[i].Attempts = append(e.Recipients[i].Attempts, a)
	default:
		return errors.New("unknown record")
	}
	return err
}

func unbracket(s string) (string, error) {
	if len(s) < 2 || s[0] != '<' || s[len(s)-1] != '>' {
		return "", fmt.Errorf("address %q not in <>", s)
	}
	return s[1 : len(s)-1], nil
}

// escape makes a field safe for a record: bytes that are not printable
// ASCII (space, controls, 8-bit) and '%' become %XX, so that a field never
// contains a separator or a line end. The empty string is written "%".
func escape(s string) string {
	if s == "" {
		return "%"
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || c == '%' {
			fmt.Fprintf(&b, "%%%02X", c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

func unescape(s string) (string, error) {
	if s == "%" {
		return "", nil
	}
	if s == "" {
		return "", errors.New("empty field")
	}
	if !strings.Contains(s, "%") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		if i+3 > len(s) {
			return "", fmt.Errorf("truncated escape in %q", s)
		}
		v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
		if err != nil {
			return "", fmt.Errorf("bad escape in %q", s)
		}
		b.WriteByte(byte(v))
		i += 2
	}
	return b.String(), nil
}
