package main

import (
	"mime"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-message/charset"
	"github.com/emersion/go-message/mail"
	"golang.org/x/text/unicode/norm"

	"tern/common/maildir"
	"tern/imapd/wire"
)

// SORT and THREAD (RFC 5256), ESORT (RFC 5267 3) and PARTIAL (RFC 9394).
//
// Strings are compared with i;unicode-casemap (RFC 5051: each character
// to its titlecase, then canonical decomposition), which on US-ASCII text
// is i;ascii-casemap, the comparator RFC 5256 3 names; it is also what
// Dovecot compares with, so that webmail shows the same order on both.

// sortInfo is what SORT and THREAD need of a message's header, built with
// its searchHeader and kept with it in the header cache, so that a warm
// SORT or THREAD of a large folder reads no files.
type sortInfo struct {
	subject     string // base subject (RFC 5256 2.1), case-mapped
	replyOrFwd  bool   // the base subject extraction removed a Re:/Fwd:
	from, to    string // addr-mailbox of the first address, case-mapped
	cc          string
	displayFrom string // RFC 5957 display name (or address), case-mapped
	displayTo   string
	messageID   string   // without the angle brackets, "" if none
	references  []string // References, or In-Reply-To's first id
}

func (si *sortInfo) size() int {
	n := len(si.subject) + len(si.from) + len(si.to) + len(si.cc) + len(si.displayFrom) +
		len(si.displayTo) + len(si.messageID) + 128
	for _, r := range si.references {
		n += len(r) + 16
	}
	return n
}

// newSortInfo extracts the sort and thread keys of a header.
func newSortInfo(mh mail.Header) sortInfo {
	var si sortInfo
	subj, err := mh.Text("Subject")
	if err != nil {
		subj = mh.Get("Subject")
	}
	si.subject, si.replyOrFwd = baseSubject(subj)
	si.from, si.displayFrom = firstAddress(mh, "From")
	si.to, si.displayTo = firstAddress(mh, "To")
	si.cc, _ = firstAddress(mh, "Cc")
	if ids := messageIDs(mh.Get("Message-Id")); len(ids) > 0 {
		si.messageID = ids[0]
	}
	// RFC 5256 3 (REFERENCES) 1: the References field, or else the first
	// valid message id of In-Reply-To.
	si.references = messageIDs(mh.Get("References"))
	if len(si.references) == 0 {
		if ids := messageIDs(mh.Get("In-Reply-To")); len(ids) > 0 {
			si.references = ids[:1]
		}
	}
	return si
}

// firstAddress gives the addr-mailbox (local part) of the first address
// of a field (RFC 5256 3: FROM, TO, CC) and its decoded display name, or
// the address when it has none (RFC 5957 3: DISPLAYFROM, DISPLAYTO). The
// list is parsed as for ENVELOPE, so a group's name is its first mailbox
// (RFC 3501 7.4.2), as in Dovecot.
func firstAddress(mh mail.Header, key string) (mailbox, display string) {
	v, ok := rawField(mh.Header.Header, key)
	if !ok {
		return "", ""
	}
	list := parseAddressList(v)
	if len(list) == 0 {
		return "", ""
	}
	a := list[0]
	display = a.Name
	if d, err := wordDecoder.DecodeHeader(display); err == nil {
		display = d
	}
	if display == "" {
		display = a.Mailbox
		if a.Host != "" {
			display += "@" + a.Host
		}
	}
	return casemap(a.Mailbox), casemap(display)
}

// wordDecoder decodes RFC 2047 words in every charset go-message knows.
var wordDecoder = &mime.WordDecoder{CharsetReader: charset.Reader}

// messageIDs lists the "<id>" of a field, without the brackets, leaving
// out what is not a message id (RFC 5322 3.6.4).
func messageIDs(v string) []string {
	var ids []string
	for {
		i := strings.IndexByte(v, '<')
		if i < 0 {
			return ids
		}
		v = v[i+1:]
		j := strings.IndexAny(v, "<>")
		if j < 0 {
			return ids
		}
		if v[j] == '<' {
			v = v[j:]
			continue
		}
		id := strings.Join(strings.Fields(v[:j]), "")
		if strings.Contains(id, "@") && !strings.HasPrefix(id, "@") && !strings.HasSuffix(id, "@") {
			ids = append(ids, id)
		}
		v = v[j+1:]
	}
}

// casemap is the key of i;unicode-casemap (RFC 5051 2): titlecase, then
// canonical decomposition.
func casemap(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			ascii = false
			break
		}
	}
	if ascii {
		return strings.ToUpper(s)
	}
	return norm.NFD.String(strings.Map(unicode.ToTitle, s))
}

// baseSubject extracts the base subject of RFC 5256 2.1 from a decoded
// subject (step 1's RFC 2047 decoding is done), case-mapped, and says
// whether a reply or forward marker was removed on the way (RFC 5256 3,
// REFERENCES step 5.C).
func baseSubject(subject string) (string, bool) {
	// Step 1: tabs and continuations to spaces, runs of spaces to one.
	s := strings.Join(strings.FieldsFunc(casemap(subject), func(r rune) bool {
		return r == ' ' || r == '\t' || r == '\r' || r == '\n'
	}), " ")
	reply := false
	for {
		// Step 2: trailing subj-trailer, "(fwd)" / WSP.
		for {
			t := strings.TrimRight(s, " ")
			if strings.HasSuffix(t, "(FWD)") {
				t = t[:len(t)-len("(FWD)")]
				reply = true
			}
			if t == s {
				break
			}
			s = t
		}
		for {
			before := s
			// Step 3: leading subj-leader, (*subj-blob subj-refwd) / WSP.
			for {
				t := strings.TrimLeft(s, " ")
				if rest, ok := cutLeader(t); ok {
					t = rest
					reply = true
				}
				if t == s {
					break
				}
				s = t
			}
			// Step 4: a leading subj-blob, unless nothing would be left.
			if rest, ok := cutBlob(s); ok && rest != "" {
				s = rest
			}
			// Step 5: repeat 3 and 4 until nothing changes.
			if s == before {
				break
			}
		}
		// Step 6: "[fwd:" ... "]" around the whole, then from step 2.
		if strings.HasPrefix(s, "[FWD:") && strings.HasSuffix(s, "]") {
			s = s[len("[FWD:") : len(s)-1]
			reply = true
			continue
		}
		return s, reply
	}
}

// cutBlob removes a leading subj-blob: "[" *BLOBCHAR "]" *WSP.
func cutBlob(s string) (string, bool) {
	if !strings.HasPrefix(s, "[") {
		return s, false
	}
	end := strings.IndexAny(s[1:], "[]")
	if end < 0 || s[1+end] != ']' {
		return s, false
	}
	return strings.TrimLeft(s[end+2:], " "), true
}

// cutLeader removes a leading *subj-blob subj-refwd, where subj-refwd is
// ("re" / ("fw" ["d"])) *WSP [subj-blob] ":".
func cutLeader(s string) (string, bool) {
	t := s
	for {
		rest, ok := cutBlob(t)
		if !ok {
			break
		}
		t = rest
	}
	switch {
	case strings.HasPrefix(t, "RE"):
		t = t[2:]
	case strings.HasPrefix(t, "FWD"):
		t = t[3:]
	case strings.HasPrefix(t, "FW"):
		t = t[2:]
	default:
		return s, false
	}
	t = strings.TrimLeft(t, " ")
	if rest, ok := cutBlob(t); ok {
		t = rest
	}
	if !strings.HasPrefix(t, ":") {
		return s, false
	}
	return t[1:], true
}

// sortMsg is one message matching a SORT or THREAD: its numbers and what
// the keys need.
type sortMsg struct {
	seq, uid uint32
	m        *maildir.Message
	info     *sortInfo // nil if the header could not be read
	sent     time.Time // RFC 5256 2.2
	size     int64
}

var noSortInfo = &sortInfo{}

// matching syncs with the store and lists the messages that match
// criteria, in mailbox order, with their header's sort keys when
// withHeader.
func (s *session) matching(criteria *imap.SearchCriteria, withHeader, withSize bool) ([]sortMsg, error) {
	if err := s.sel.sync(); err != nil {
		return nil, storeError(s.log, "sort", err)
	}
	return s.matchSnapshot(criteria, withHeader, withSize), nil
}

// matchSnapshot is matching on the snapshot the view has.
func (s *session) matchSnapshot(criteria *imap.SearchCriteria, withHeader, withSize bool) []sortMsg {
	v := s.sel
	var out []sortMsg
	c := &candidate{s: s, dir: v.folder.Dir()}
	var keys *folderKeys
	if withHeader {
		keys = s.srv.sortKeys.folder(c.dir, v.uidValidity)
	}
	cur := v.cursor()
	for i, uid := range v.uids {
		m, _ := cur.find(uid)
		if m == nil {
			continue
		}
		seq := uint32(i + 1)
		c.reset(m, seq)
		if !c.match(criteria) {
			continue
		}
		sm := sortMsg{seq: seq, uid: uid, m: m, info: noSortInfo, sent: m.InternalDate}
		if withHeader {
			if h := c.loadSortHeader(keys); h != nil {
				sm.info = &h.sort
				// RFC 5256 2.2: a missing or invalid Date is the
				// internal date.
				if h.dateOK {
					sm.sent = h.date
				}
			}
		}
		if withSize {
			if n, err := s.wireSize(m); err == nil {
				sm.size = n
			} else {
				sm.size = m.Size
			}
		}
		out = append(out, sm)
	}
	return out
}

// sortMessages orders msgs by keys; messages equal on every key keep the
// mailbox order (RFC 5256 3), which the sequence number, unique, gives.
func sortMessages(msgs []sortMsg, keys []wire.SortKey) {
	type key struct {
		kind    sortKind
		reverse bool
	}
	ks := make([]key, len(keys))
	for i, k := range keys {
		ks[i] = key{sortKinds[k.Key], k.Reverse}
	}
	// An index is sorted, not the records: fewer bytes move.
	idx := make([]int32, len(msgs))
	for i := range idx {
		idx[i] = int32(i)
	}
	slices.SortFunc(idx, func(i, j int32) int {
		a, b := &msgs[i], &msgs[j]
		for _, k := range ks {
			c := compareKey(a, b, k.kind)
			if k.reverse {
				c = -c
			}
			if c != 0 {
				return c
			}
		}
		return cmpInt(int64(a.seq), int64(b.seq))
	})
	sorted := make([]sortMsg, len(msgs))
	for i, j := range idx {
		sorted[i] = msgs[j]
	}
	copy(msgs, sorted)
}

// sortKind is a sort key, looked up once per SORT rather than per
// comparison.
type sortKind uint8

const (
	sortArrival sortKind = iota
	sortDate
	sortSize
	sortSubject
	sortFrom
	sortTo
	sortCc
	sortDisplayFrom
	sortDisplayTo
)

var sortKinds = map[string]sortKind{"ARRIVAL": sortArrival, "DATE": sortDate, "SIZE": sortSize,
	"SUBJECT": sortSubject, "FROM": sortFrom, "TO": sortTo, "CC": sortCc,
	"DISPLAYFROM": sortDisplayFrom, "DISPLAYTO": sortDisplayTo}

func compareKey(a, b *sortMsg, kind sortKind) int {
	switch kind {
	case sortArrival:
		return a.m.InternalDate.Compare(b.m.InternalDate)
	case sortDate:
		return a.sent.Compare(b.sent)
	case sortSize:
		return cmpInt(a.size, b.size)
	case sortSubject:
		return strings.Compare(a.info.subject, b.info.subject)
	case sortFrom:
		return strings.Compare(a.info.from, b.info.from)
	case sortTo:
		return strings.Compare(a.info.to, b.info.to)
	case sortCc:
		return strings.Compare(a.info.cc, b.info.cc)
	case sortDisplayFrom:
		return strings.Compare(a.info.displayFrom, b.info.displayFrom)
	case sortDisplayTo:
		return strings.Compare(a.info.displayTo, b.info.displayTo)
	}
	return 0
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Sort runs SORT or UID SORT and returns the numbers in sort order.
func (s *session) Sort(uid bool, req *wire.SortRequest) (_ []uint32, err error) {
	v := s.sel
	defer v.endCommand(&err)
	withHeader, withSize := sortNeeds(req.Keys)
	msgs, err := s.matching(req.Criteria, withHeader, withSize)
	if err != nil {
		return nil, err
	}
	sortMessages(msgs, req.Keys)
	out := make([]uint32, len(msgs))
	for i := range msgs {
		out[i] = msgs[i].seq
		if uid {
			out[i] = msgs[i].uid
		}
	}
	return out, nil
}

// sortNeeds says whether keys need the header and the size.
func sortNeeds(keys []wire.SortKey) (withHeader, withSize bool) {
	for _, k := range keys {
		switch k.Key {
		case "ARRIVAL":
		case "SIZE":
			withSize = true
		default:
			withHeader = true
		}
	}
	return withHeader, withSize
}

// loadSortHeader gives the message's sort keys and Date, from the sort
// key cache, or else from its search header (cache or file), keeping a
// slim copy without the header fields.
func (c *candidate) loadSortHeader(f *folderKeys) *searchHeader {
	cache := c.s.srv.sortKeys
	if h := cache.get(f, c.m.UID); h != nil {
		return h
	}
	h := c.loadHeader()
	if h == nil {
		return nil
	}
	slim := &searchHeader{date: h.date, dateOK: h.dateOK, sort: h.sort}
	slim.size = 96 + slim.sort.size()
	cache.put(f, c.m.UID, slim)
	return slim
}

// sortKeyCache keeps the sort keys of messages by folder and UID (a UID
// names one message file for the life of a UIDVALIDITY, and a Maildir
// file's content never changes), so that a SORT looks each message up by
// number, without building a key. It is bounded by the bytes its entries
// hold; when full, the folder used least recently goes whole.
type sortKeyCache struct {
	mu      sync.Mutex
	max     int
	used    int
	tick    uint64
	folders map[string]*folderKeys
}

// folderKeys are the cached keys of one folder.
type folderKeys struct {
	dir         string
	uidValidity uint32
	byUID       map[uint32]*searchHeader
	used        int
	lastUse     uint64
}

func newSortKeyCache(maxBytes int) *sortKeyCache {
	return &sortKeyCache{max: maxBytes, folders: make(map[string]*folderKeys)}
}

// folder gives the keys of a folder, emptied if its UIDVALIDITY changed.
func (c *sortKeyCache) folder(dir string, uidValidity uint32) *folderKeys {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tick++
	f := c.folders[dir]
	if f == nil || f.uidValidity != uidValidity {
		if f != nil {
			c.used -= f.used
		}
		// A folder costs something even empty, so that many folders
		// sorted once are bounded too.
		f = &folderKeys{dir: dir, uidValidity: uidValidity, byUID: make(map[uint32]*searchHeader),
			used: folderKeysCost + len(dir)}
		c.evict(f, f.used)
		c.folders[dir] = f
		c.used += f.used
	}
	f.lastUse = c.tick
	return f
}

const folderKeysCost = 256

// evict drops the folders used least recently, other than keep, until
// need more bytes fit; it says whether they do.
func (c *sortKeyCache) evict(keep *folderKeys, need int) bool {
	for c.used+need > c.max {
		var lru *folderKeys
		for _, o := range c.folders {
			if o != keep && (lru == nil || o.lastUse < lru.lastUse) {
				lru = o
			}
		}
		if lru == nil {
			return false
		}
		delete(c.folders, lru.dir)
		c.used -= lru.used
	}
	return true
}

func (c *sortKeyCache) get(f *folderKeys, uid uint32) *searchHeader {
	c.mu.Lock()
	h := f.byUID[uid]
	c.mu.Unlock()
	return h
}

func (c *sortKeyCache) put(f *folderKeys, uid uint32, h *searchHeader) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.folders[f.dir] != f || f.byUID[uid] != nil {
		return // evicted or replaced meanwhile, or already there
	}
	if !c.evict(f, h.size) {
		return // this folder alone fills the cache
	}
	f.byUID[uid] = h
	f.used += h.size
	c.used += h.size
}
