package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/mail"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/migadu/go-sieve/interp"

	"tern/common/mailaddr"
	"tern/common/maillog"
	"tern/common/safeio"
	"tern/common/trace"
)

// vacationReply is one vacation response the script asked for.
type vacationReply struct {
	to   string // the envelope sender being answered
	rcpt string // the envelope recipient the message came to
	resp interp.VacationResponse
}

// vacationStore is the per-user memory of RFC 5230 4.2: to whom a reply
// was sent, for which handle, until when no other is sent. One file per
// user under state_dir/lmtpd/vacation, lines of
// "expiry-unix-seconds TAB handle TAB sender", replaced atomically.
type vacationStore struct {
	dir string
	mu  sync.Mutex // one delivery at a time updates a memory file
}

// claim records that sender gets a reply for handle now unless one was
// sent within the period, and reports whether to send.
func (v *vacationStore) claim(user, handle, sender string, period time.Duration, now time.Time) (bool, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	path := filepath.Join(v.dir, url.PathEscape(user))
	entries, err := readVacation(path)
	if err != nil {
		return false, err
	}
	key := handle + "\t" + strings.ToLower(sender)
	kept := entries[:0]
	for _, e := range entries {
		if e.expiry.After(now) {
			if e.key == key {
				return false, nil
			}
			kept = append(kept, e)
		}
	}
	kept = append(kept, vacationEntry{expiry: now.Add(period), key: key})
	return true, writeVacation(path, kept)
}

type vacationEntry struct {
	expiry time.Time
	key    string // handle TAB lower-case sender
}

func readVacation(path string) ([]vacationEntry, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read vacation memory: %w", err)
	}
	var out []vacationEntry
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		ts, key, ok := strings.Cut(sc.Text(), "\t")
		n, err := strconv.ParseInt(ts, 10, 64)
		if !ok || err != nil {
			// A damaged line only costs one extra reply.
			continue
		}
		out = append(out, vacationEntry{expiry: time.Unix(n, 0), key: key})
	}
	return out, nil
}

// writeVacation replaces the memory file: temp file, fsync, rename, fsync
// of the directory.
func writeVacation(path string, entries []vacationEntry) error {
	var b bytes.Buffer
	for _, e := range entries {
		fmt.Fprintf(&b, "%d\t%s\n", e.expiry.Unix(), e.key)
	}
	if err := safeio.WriteFile(path, b.Bytes(), 0o600); err != nil {
		return fmt.Errorf("write vacation memory: %w", err)
	}
	return nil
}

// sendVacation sends the replies of a plan, each only when RFC 5230 and
// RFC 3834 allow it.
func (a *agent) sendVacation(env envelope, user string, vs []vacationReply, sp *spooled, log *slog.Logger) {
	for _, v := range vs {
		if why := a.noVacationReason(env, user, v, sp); why != "" {
			log.Debug("no vacation reply", "to", v.to, "why", why)
			continue
		}
		days := v.resp.Days
		if days < 1 {
			// RFC 5230 4.1: the minimum period is one day.
			days = 1
		}
		handle := v.resp.Handle
		if handle == "" {
			// RFC 5230 4.2: without :handle, replies with different
			// texts are different responses.
			sum := sha256.Sum256([]byte(v.resp.Subject + "\x00" + v.resp.Body))
			handle = "auto:" + hex.EncodeToString(sum[:16])
		}
		ok, err := a.vacation.claim(user, handle, v.to, time.Duration(days)*24*time.Hour, time.Now())
		if err != nil {
			log.Error("vacation memory", "err", err)
			continue
		}
		if !ok {
			log.Debug("vacation reply already sent within the period", "to", v.to)
			continue
		}
		msg := buildVacation(user, v, sp, a.cfg().Hostname, time.Now())
		// RFC 3834 3.3: automatic responses go out with the null sender.
		if err := a.out.send("", v.to, msg); err != nil {
			log.Warn("vacation reply not sent", "to", v.to, "err", err)
			continue
		}
		maillog.Vacation(log, v.to)
	}
}

// noVacationReason returns why no reply may be sent, or "".
func (a *agent) noVacationReason(env envelope, user string, v vacationReply, sp *spooled) string {
	h := sp.header
	sender := strings.ToLower(v.to)
	local := mailaddr.Local(sender)
	switch {
	case env.from == "":
		return "null sender" // RFC 5230 4.5
	case sender == strings.ToLower(user):
		return "own address"
	case strings.HasPrefix(local, "owner-") || strings.HasSuffix(local, "-request") ||
		local == "mailer-daemon" || local == "listserv" || local == "majordomo":
		// RFC 5230 4.5: list and daemon addresses.
		return "list or daemon sender"
	}
	if as := strings.ToLower(strings.TrimSpace(h.Get("Auto-Submitted"))); as != "" && as != "no" {
		return "auto-submitted" // RFC 3834 2
	}
	for _, l := range []string{"List-Id", "List-Help", "List-Unsubscribe", "List-Subscribe", "List-Post", "List-Owner", "List-Archive"} {
		if h.Get(l) != "" {
			return "mailing list" // RFC 5230 4.5, RFC 2369, RFC 2919
		}
	}
	switch strings.ToLower(strings.TrimSpace(h.Get("Precedence"))) {
	case "bulk", "list", "junk":
		return "bulk precedence"
	}
	// RFC 5230 4.5: reply only if one of the user's addresses is among
	// the To, Cc, Bcc, Resent-To, Resent-Cc and Resent-Bcc fields.
	mine := map[string]bool{strings.ToLower(user): true, strings.ToLower(v.rcpt): true}
	for _, f := range []string{"To", "Cc", "Bcc", "Resent-To", "Resent-Cc", "Resent-Bcc"} {
		for _, val := range h.Values(f) {
			list, err := mail.ParseAddressList(val)
			if err != nil {
				if strings.Contains(strings.ToLower(val), strings.ToLower(user)) {
					return ""
				}
				continue
			}
			for _, ad := range list {
				if mine[strings.ToLower(ad.Address)] {
					return ""
				}
			}
		}
	}
	return "not addressed to the user"
}

// buildVacation makes the reply (RFC 5230 5, RFC 3834 3).
func buildVacation(user string, v vacationReply, sp *spooled, hostname string, now time.Time) []byte {
	h := sp.header
	from := v.resp.From
	if from == "" {
		from = user
	}
	subject := v.resp.Subject
	if subject == "" {
		// RFC 5230 5.5: default "Auto: " and the original subject.
		subject = "Auto: " + decodeHeader(h.Get("Subject"))
	}
	var b bytes.Buffer
	w := func(k, val string) {
		fmt.Fprintf(&b, "%s: %s\r\n", k, trace.OneLine(val))
	}
	w("From", from)
	w("To", v.to)
	w("Subject", mime.QEncoding.Encode("utf-8", subject))
	w("Date", now.Format(time.RFC1123Z))
	w("Message-ID", "<"+randomID()+"@"+hostname+">")
	if id := strings.TrimSpace(h.Get("Message-Id")); id != "" {
		// RFC 5230 5.8: In-Reply-To and References from the original.
		w("In-Reply-To", id)
		refs := strings.TrimSpace(h.Get("References"))
		if refs != "" {
			refs += " "
		}
		w("References", refs+id)
	}
	// RFC 3834 5.1 / RFC 5230 5.6.
	w("Auto-Submitted", "auto-replied (vacation)")
	w("MIME-Version", "1.0")
	body := strings.ReplaceAll(strings.ReplaceAll(v.resp.Body, "\r\n", "\n"), "\n", "\r\n")
	if v.resp.IsMime {
		// RFC 5230 4.7: with :mime the reason is a MIME entity, headers
		// included.
		b.WriteString(body)
	} else {
		w("Content-Type", "text/plain; charset=utf-8")
		w("Content-Transfer-Encoding", "8bit")
		b.WriteString("\r\n")
		b.WriteString(body)
	}
	if !bytes.HasSuffix(b.Bytes(), []byte("\r\n")) {
		b.WriteString("\r\n")
	}
	return b.Bytes()
}

func decodeHeader(s string) string {
	d, err := new(mime.WordDecoder).DecodeHeader(s)
	if err != nil {
		return s
	}
	return d
}

func randomID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
