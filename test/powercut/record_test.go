package powercut

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"regexp"
	"sort"
	"strings"
	"sync"
)

// msg is one message as the clients know it.
type msg struct {
	id   string // the local part of its Message-ID
	user string // demo or alice
	via  string // smtp, lmtp, append
	body []byte // as sent, CRLF

	acked       bool   // 250, or OK [APPENDUID]
	qid         string // the queue id named in smtpd's 250, if any
	queued      bool   // smtpd answered "queued": delivered later, maybe twice
	removeTried bool   // DELE or EXPUNGE sent, not acknowledged
	removeAcked bool   // QUIT +OK after DELE, or OK to UID EXPUNGE
	seen        bool   // served at least once
	maxCopies   int
	unackedSeen bool // served without having been acknowledged
	servedSize  int  // its size as served whole
	ackRound    int  // the round (cuts before it) whose load acknowledged it
}

type uidKey struct {
	user string
	uv   uint32
	uid  uint32
}

// record is the clients' record of every message and every UID they
// were told, against which what tern serves after each cut is checked.
type record struct {
	mu    sync.Mutex
	next  int
	msgs  map[string]*msg
	uids  map[uidKey]string            // a UID given out → its message
	uidOf map[string]map[uint32]uint32 // message → UIDVALIDITY → UID
	whole map[uidKey]bool              // served whole under this UID

	// Failures, each with a few examples.
	lost, torn, reused, resurrected int
	examples                        []string
	// Figures.
	acked        map[string]int // by path
	removedAcked int
	acks         int // acknowledged deliveries so far
	verified     int
	where        string // the check running, for the examples
	round        int    // cuts so far: the round whose load runs now
}

func newRecord() *record {
	return &record{msgs: map[string]*msg{}, uids: map[uidKey]string{}, uidOf: map[string]map[uint32]uint32{},
		whole: map[uidKey]bool{}, acked: map[string]int{}}
}

func (r *record) fail(counter *int, format string, args ...any) {
	*counter++
	if len(r.examples) < 20 {
		r.examples = append(r.examples, fmt.Sprintf(format, args...))
	}
}

// newMsg makes a message for user, 300 bytes to 12 KiB so that tearing
// can cut it at a 4 KiB block or inside one.
func (r *record) newMsg(rng *rand.Rand, user, via string) *msg {
	r.mu.Lock()
	r.next++
	id := fmt.Sprintf("pc-%d", r.next)
	r.mu.Unlock()
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: <alice@example.test>\r\nTo: <%s@example.test>\r\nSubject: power cut %s\r\nMessage-ID: <%s@powercut.test>\r\n\r\n", user, id, id)
	size := 300 + rng.IntN(12<<10)
	for line := 0; b.Len() < size; line++ {
		fmt.Fprintf(&b, "%s line %d %s\r\n", id, line, strings.Repeat(string(rune('a'+line%26)), 20+rng.IntN(50)))
	}
	fmt.Fprintf(&b, "end of %s\r\n", id)
	m := &msg{id: id, user: user, via: via, body: b.Bytes()}
	r.mu.Lock()
	r.msgs[id] = m
	r.mu.Unlock()
	return m
}

func (r *record) ack(m *msg, qid string, queued bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m.acked, m.qid, m.queued, m.ackRound = true, qid, queued, r.round
	r.acked[m.via]++
	r.acks++
}

var msgIDRE = regexp.MustCompile(`(?mi)^Message-ID: <(pc-\d+)@powercut\.test>\r?$`)

// identify finds the record of a served message; whole says whether the
// message is complete (the sent message, after the trace headers tern
// prepends).
func (r *record) identify(served []byte) (m *msg, whole bool) {
	hdr := served
	if i := bytes.Index(served, []byte("\r\n\r\n")); i >= 0 {
		hdr = served[:i+2]
	}
	sm := msgIDRE.FindSubmatch(hdr)
	if sm == nil {
		return nil, false
	}
	r.mu.Lock()
	m = r.msgs[string(sm[1])]
	r.mu.Unlock()
	if m == nil {
		return nil, false
	}
	if m.via == "append" {
		return m, bytes.Equal(served, m.body)
	}
	return m, bytes.HasSuffix(served, m.body)
}

// sawUID records that a client was told uid for message id; a UID that
// names another message, or a message whose UID changed, is a reuse.
// single is false when the message is served more than once (a
// duplicate): each copy has its own UID.
func (r *record) sawUID(user string, uv, uid uint32, id string, single bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := uidKey{user, uv, uid}
	if prev, ok := r.uids[k]; ok && prev != id {
		r.fail(&r.reused, "%s: %s UIDVALIDITY %d UID %d named %s and now %s", r.where, user, uv, uid, prev, id)
		return
	}
	r.uids[k] = id
	if !single {
		return
	}
	byUV := r.uidOf[id]
	if byUV == nil {
		byUV = map[uint32]uint32{}
		r.uidOf[id] = byUV
	}
	if prev, ok := byUV[uv]; ok && prev != uid {
		r.fail(&r.reused, "%s: %s: %s had UID %d and now %d in UIDVALIDITY %d", r.where, user, id, prev, uid, uv)
		return
	}
	byUV[uv] = uid
}

// servedMsg is one message as IMAP or POP3 served it after a restart.
type servedMsg struct {
	uv, uid uint32 // 0 for POP3
	size    int64  // RFC822.SIZE, or -1
	data    []byte
	known   *msg // checked whole before under the same UID: data is not fetched
}

// wholeAt returns the message served whole before as user's uv/uid, if
// hdr (its Message-ID header as served now) still names it.
func (r *record) wholeAt(user string, uv, uid uint32, hdr []byte) *msg {
	sm := msgIDRE.FindSubmatch(hdr)
	if sm == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	k := uidKey{user, uv, uid}
	if !r.whole[k] || r.uids[k] != string(sm[1]) {
		return nil
	}
	return r.msgs[string(sm[1])]
}

// check compares what a user's INBOX serves now with the record; queued
// lists the messages still in smtpd's queue (it is asked only when an
// acknowledged queued message is missing).
func (r *record) check(user string, served []servedMsg, queued func() map[string]bool, where string) {
	copies := map[string]int{}
	r.mu.Lock()
	r.where = where
	r.mu.Unlock()
	for i, s := range served {
		if s.known != nil {
			copies[s.known.id]++
			continue
		}
		m, whole := r.identify(s.data)
		if m == nil || !whole || (s.size >= 0 && s.size != int64(len(s.data))) || m.user != user {
			r.mu.Lock()
			r.fail(&r.torn, "%s: %s served a torn or unknown message (%d bytes, size %d): %.120q", where, user, len(s.data), s.size, s.data)
			r.mu.Unlock()
			continue
		}
		copies[m.id]++
		served[i].known = m
		r.mu.Lock()
		m.servedSize = len(s.data)
		if s.uid != 0 {
			r.whole[uidKey{user, s.uv, s.uid}] = true
		}
		r.mu.Unlock()
	}
	for _, s := range served {
		if s.known != nil && s.uid != 0 {
			r.sawUID(user, s.uv, s.uid, s.known.id, copies[s.known.id] == 1)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.verified++
	ids := make([]string, 0, len(r.msgs))
	for id := range r.msgs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		m := r.msgs[id]
		if m.user != user {
			continue
		}
		n := copies[id]
		if n > 0 {
			m.seen = true
			m.maxCopies = max(m.maxCopies, n)
			if !m.acked {
				m.unackedSeen = true
			}
			// A queued message may be delivered again (a cut between the
			// delivery and the envelope's removal): a copy that comes
			// after a removal is a duplicate, not the removed one.
			if m.removeAcked && !m.queued && m.maxCopies == 1 {
				r.fail(&r.resurrected, "%s: %s's removal was acknowledged, but it is served again", where, id)
			}
			// Still there: an earlier removal that was not acknowledged
			// did not happen.
			m.removeTried = false
			continue
		}
		if !m.acked || m.removeAcked || m.removeTried {
			continue
		}
		if m.qid != "" && queued()[m.qid] {
			continue
		}
		// The round and what the clients knew of it tell a write that
		// was never durable (gone at the first check after its round)
		// from a removal of the wrong file (seen, then gone).
		r.fail(&r.lost, "%s: %s (%s, queue id %q, queued %v, acknowledged in the round before cut %d, seen before %v) was acknowledged and is gone",
			where, id, m.via, m.qid, m.queued, m.ackRound+1, m.seen)
	}
}

// ackCount is the number of acknowledged deliveries so far.
func (r *record) ackCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.acks
}

// queuedPending reports whether an acknowledged queued message has not
// been served yet: the queue must then be listed before the mailboxes
// are read (a message delivered in between is then in one of them).
func (r *record) queuedPending() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range r.msgs {
		if m.acked && m.queued && !m.seen {
			return true
		}
	}
	return false
}

// totals sums the figures over every message.
func (r *record) totals() (acked, duplicates, unackedDelivered int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range r.msgs {
		if m.acked {
			acked++
		}
		if m.maxCopies > 1 {
			duplicates += m.maxCopies - 1
		}
		if m.unackedSeen {
			unackedDelivered++
		}
	}
	return
}
