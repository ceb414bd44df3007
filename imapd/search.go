package main

import (
	"bytes"
	"io"
	"net/textproto"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	gomessage "github.com/emersion/go-message"
	// Registers the decoders of every charset go-message knows, so that
	// text searches see bodies and encoded words in any charset as UTF-8
	// (RFC 3501 6.4.4: matching is on the decoded text).
	_ "github.com/emersion/go-message/charset"

	"tern/common/maildir"
)

// Search: SEARCH and UID SEARCH (RFC 3501
// 6.4.4), with ESEARCH results (RFC 4731) and SEARCHRES (RFC 5182).
// The parser has already refused charsets other than US-ASCII and UTF-8
// with NO [BADCHARSET].
func (s *session) Search(kind NumKind, criteria *imap.SearchCriteria, options *imap.SearchOptions) (_ *imap.SearchData, err error) {
	v := s.sel
	defer v.endCommand(&err)
	if err := v.sync(); err != nil {
		return nil, storeError(s.log, "search", err)
	}
	var (
		data   imap.SearchData
		seqSet imap.SeqSet
		uidSet imap.UIDSet
		found  []uint32
	)
	c := &candidate{s: s, dir: v.folder.Dir()}
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
		found = append(found, uid)
		data.ModSeq = max(data.ModSeq, m.ModSeq)
		num := seq
		if kind == NumKindUID {
			num = uid
			uidSet.AddNum(imap.UID(uid))
		} else {
			seqSet.AddNum(seq)
		}
		if data.Min == 0 || num < data.Min {
			data.Min = num
		}
		if num > data.Max {
			data.Max = num
		}
		data.Count++
	}
	if kind == NumKindUID {
		data.All = uidSet
	} else {
		data.All = seqSet
	}
	if options.ReturnSave {
		v.searchRes = found
	}
	return &data, nil
}

// candidate is one message being matched; its header and its content are
// each read at most once, and only if a criterion needs them: flags, UIDs,
// sizes and internal dates come from the store's snapshot, headers from
// the header section alone (through the server's header cache), and only
// BODY and TEXT read whole messages.
type candidate struct {
	s   *session
	dir string
	m   *maildir.Message
	seq uint32

	headerLoaded bool
	header       *searchHeader // nil if the message could not be read
	rawLoaded    bool
	raw          []byte
}

func (c *candidate) reset(m *maildir.Message, seq uint32) {
	c.m, c.seq = m, seq
	c.headerLoaded, c.header = false, nil
	c.rawLoaded, c.raw = false, nil
}

// loadHeader gives the message's search header, from the cache or from
// the file.
func (c *candidate) loadHeader() *searchHeader {
	if c.headerLoaded {
		return c.header
	}
	c.headerLoaded = true
	key := c.dir + "/" + c.m.Key
	if h, ok := c.s.srv.headers.get(key); ok {
		c.header = h
		return h
	}
	f, err := c.s.sel.folder.Open(c.m.UID)
	if err != nil {
		return nil
	}
	defer f.Close()
	h, err := readSearchHeader(f)
	if err != nil {
		c.s.log.Warn("search read", "uid", c.m.UID, "err", err)
		return nil
	}
	c.s.srv.headers.put(key, h)
	c.header = h
	return h
}

// loadRaw reads the whole message, in CRLF form, for BODY and TEXT.
func (c *candidate) loadRaw() []byte {
	if c.rawLoaded {
		return c.raw
	}
	c.rawLoaded = true
	f, err := c.s.sel.folder.Open(c.m.UID)
	if err != nil {
		return nil
	}
	defer f.Close()
	conv := maildir.NewWireReader(f)
	defer conv.Close()
	var buf bytes.Buffer
	if size, ok := c.m.WireSize(); ok && size > 0 && size < 1<<30 {
		buf.Grow(int(size))
	}
	if _, err := buf.ReadFrom(conv); err != nil {
		c.s.log.Warn("search read", "uid", c.m.UID, "err", err)
	}
	c.raw = buf.Bytes()
	return c.raw
}

func (c *candidate) match(cr *imap.SearchCriteria) bool {
	v := c.s.sel
	for _, set := range cr.SeqNum {
		if !containsNum(set, c.seq, uint32(len(v.uids))) {
			return false
		}
	}
	for _, set := range cr.UID {
		if imap.IsSearchRes(set) {
			if !containsUID(v.searchRes, c.m.UID) {
				return false
			}
			continue
		}
		var max uint32
		if n := len(v.uids); n > 0 {
			max = v.uids[n-1]
		}
		if !containsUIDSet(set, c.m.UID, max) {
			return false
		}
	}
	// RFC 3501 6.4.4: NEW, OLD and RECENT arrive as criteria on \Recent,
	// which only the view knows.
	for _, f := range cr.Flag {
		if !c.hasFlag(f) {
			return false
		}
	}
	for _, f := range cr.NotFlag {
		if c.hasFlag(f) {
			return false
		}
	}
	if (!cr.Since.IsZero() || !cr.Before.IsZero()) && !matchDate(c.m.InternalDate, cr.Since, cr.Before) {
		return false
	}
	if cr.Larger != 0 || cr.Smaller != 0 {
		size, err := c.s.wireSize(c.m)
		if err != nil {
			size = c.m.Size
		}
		if cr.Larger != 0 && size <= cr.Larger {
			return false
		}
		if cr.Smaller != 0 && size >= cr.Smaller {
			return false
		}
	}
	if cr.ModSeq != nil && c.m.ModSeq < cr.ModSeq.ModSeq {
		return false
	}
	if !cr.SentSince.IsZero() || !cr.SentBefore.IsZero() {
		h := c.loadHeader()
		if h == nil {
			return false
		}
		// A missing or invalid Date is the epoch, as in Dovecot: such a
		// message is SENTBEFORE any date, SENTSINCE none.
		sent := time.Unix(0, 0).UTC()
		if h.dateOK {
			sent = h.date
		}
		if !matchDate(sent, cr.SentSince, cr.SentBefore) {
			return false
		}
	}
	for _, hf := range cr.Header {
		if handled, ok := c.matchObjectCriterion(hf); handled {
			if !ok {
				return false
			}
			continue
		}
		h := c.loadHeader()
		if h == nil || !h.match(textproto.CanonicalMIMEHeaderKey(hf.Key), strings.ToLower(hf.Value)) {
			return false
		}
	}
	for _, text := range cr.Body {
		if !matchEntity(c.loadRaw(), text, false) {
			return false
		}
	}
	for _, text := range cr.Text {
		if !matchEntity(c.loadRaw(), text, true) {
			return false
		}
	}
	for i := range cr.Not {
		if c.match(&cr.Not[i]) {
			return false
		}
	}
	for i := range cr.Or {
		if !c.match(&cr.Or[i][0]) && !c.match(&cr.Or[i][1]) {
			return false
		}
	}
	return true
}

func containsNum(set imap.SeqSet, n, max uint32) bool {
	for _, r := range set {
		start, stop := r.Start, r.Stop
		if start == 0 {
			start = max
		}
		if stop == 0 {
			stop = max
		}
		if start > stop {
			start, stop = stop, start
		}
		if n >= start && n <= stop {
			return true
		}
	}
	return false
}

func containsUIDSet(set imap.UIDSet, uid, max uint32) bool {
	for _, r := range set {
		start, stop := uint32(r.Start), uint32(r.Stop)
		if start == 0 {
			start = max
		}
		if stop == 0 {
			stop = max
		}
		if start > stop {
			start, stop = stop, start
		}
		if uid >= start && uid <= stop {
			return true
		}
	}
	return false
}

func containsUID(uids []uint32, uid uint32) bool {
	for _, u := range uids {
		if u == uid {
			return true
		}
	}
	return false
}

// hasFlag reports whether the candidate carries flag, \Recent included.
func (c *candidate) hasFlag(f imap.Flag) bool {
	if strings.EqualFold(string(f), string(flagRecent)) {
		return c.s.sel.isRecent(c.m.UID)
	}
	return hasFlagFold(c.m.Flags, f)
}

// hasFlagFold: RFC 3501 2.3.2 system flags are case-insensitive.
func hasFlagFold(flags []string, flag imap.Flag) bool {
	for _, f := range flags {
		if strings.EqualFold(f, string(flag)) {
			return true
		}
	}
	return false
}

// matchDate compares dates only, ignoring time and zone (RFC 3501 6.4.4).
func matchDate(t, since, before time.Time) bool {
	d := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	if !since.IsZero() {
		s := time.Date(since.Year(), since.Month(), since.Day(), 0, 0, 0, 0, time.UTC)
		if d.Before(s) {
			return false
		}
	}
	if !before.IsZero() {
		b := time.Date(before.Year(), before.Month(), before.Day(), 0, 0, 0, 0, time.UTC)
		if !d.Before(b) {
			return false
		}
	}
	return true
}

// contains is the case-insensitive substring match RFC 3501 6.4.4 asks for.
func contains(hay, needle string) bool {
	return strings.Contains(strings.ToLower(hay), strings.ToLower(needle))
}

// matchHeader: RFC 3501 6.4.4 HEADER with an empty string matches every
// message that has the field.
func matchHeader(fields gomessage.HeaderFields, pattern string) bool {
	if pattern == "" {
		return fields.Len() > 0
	}
	for fields.Next() {
		v, err := fields.Text()
		if err != nil {
			v = fields.Value()
		}
		if contains(v, pattern) {
			return true
		}
	}
	return false
}

// matchEntity searches the decoded text of a message: headers (for TEXT)
// and every text part, after undoing the transfer encoding and converting
// the charset. A part that cannot be decoded is searched as it is.
func matchEntity(raw []byte, pattern string, withHeader bool) bool {
	if pattern == "" {
		return true
	}
	e, err := gomessage.Read(bytes.NewReader(raw))
	if e == nil {
		return contains(string(raw), pattern)
	}
	_ = err // unknown charsets and encodings leave the part as it is
	return walkEntity(e, pattern, withHeader, 0)
}

func walkEntity(e *gomessage.Entity, pattern string, withHeader bool, depth int) bool {
	if withHeader && matchHeader(e.Header.Fields(), pattern) {
		return true
	}
	if mr := e.MultipartReader(); mr != nil && depth < maxMIMEDepth {
		for {
			p, err := mr.NextPart()
			if err == io.EOF || p == nil {
				return false
			}
			if walkEntity(p, pattern, withHeader, depth+1) {
				return true
			}
		}
	}
	t, _, _ := e.Header.ContentType()
	if t != "" && !strings.HasPrefix(t, "text/") && !strings.HasPrefix(t, "message/") {
		return false
	}
	body, _ := io.ReadAll(e.Body)
	if strings.HasPrefix(t, "message/") {
		if inner, err := gomessage.Read(bytes.NewReader(body)); inner != nil && err == nil && depth < maxMIMEDepth {
			return walkEntity(inner, pattern, withHeader, depth+1)
		}
	}
	return contains(string(body), pattern)
}
