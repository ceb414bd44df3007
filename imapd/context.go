package main

import (
	"slices"
	"sort"

	"github.com/emersion/go-imap/v2"

	"tern/common/maildir"
	"tern/imapd/wire"
)

// CONTEXT=SEARCH and CONTEXT=SORT (RFC 5267 4): a SEARCH or SORT with
// RETURN (UPDATE) stays alive until CANCELUPDATE or the mailbox is closed,
// and the client is told with ESEARCH ADDTO and REMOVEFROM how its result
// changes as messages arrive, change flags or are expunged.

func init() {
	commands["CANCELUPDATE"] = commandSpec{stateSelected, (*session).cmdCancelUpdate}
}

// searchContext is one updating search (keys nil) or sort.
type searchContext struct {
	tag      string
	uid      bool
	keys     []wire.SortKey
	criteria *imap.SearchCriteria
	result   []uint32          // UIDs, in the result's order
	snap     *maildir.Snapshot // the snapshot result was computed on
}

// addContext keeps a search or sort for updates; nums is its result as
// sent (sequence numbers unless uid). A new context with the tag of an
// old one replaces it.
func (s *session) addContext(tag string, uid bool, keys []wire.SortKey, criteria *imap.SearchCriteria, nums []uint32) error {
	v := s.sel
	result := make([]uint32, len(nums))
	for i, n := range nums {
		if !uid {
			n = v.uids[n-1]
		}
		result[i] = n
	}
	ctx := &searchContext{tag: tag, uid: uid, keys: keys, criteria: criteria, result: result, snap: v.snap}
	for i, c := range v.contexts {
		if c.tag == tag {
			v.contexts[i] = ctx
			return nil
		}
	}
	if max := s.srv.cfg.IMAPD.MaxSearchContexts; len(v.contexts) >= max {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeLimit,
			Text: "Too many updating searches; CANCELUPDATE one first"}
	}
	v.contexts = append(v.contexts, ctx)
	v.beforeExpunge = s.contextsExpunged
	return nil
}

// cmdCancelUpdate: RFC 5267 4.3.
func (s *session) cmdCancelUpdate(c *wire.Command, p *wire.Parser) (reply, error) {
	tags, err := p.CancelUpdate()
	if err != nil {
		return reply{}, err
	}
	if err := p.End(); err != nil {
		return reply{}, err
	}
	v := s.sel
	for _, t := range tags {
		i := slices.IndexFunc(v.contexts, func(c *searchContext) bool { return c.tag == t })
		if i < 0 {
			return reply{}, wire.Bad("No updating search with tag %q", t)
		}
		v.contexts = slices.Delete(v.contexts, i, i+1)
	}
	return reply{}, nil
}

// contextsExpunged writes, before the EXPUNGEs of the messages at the
// indexes gone of the view, REMOVEFROM for those in an updating result,
// while their sequence numbers are still the client's (RFC 5267 4.4).
func (s *session) contextsExpunged(gone []int) {
	v := s.sel
	goneUIDs := make(map[uint32]bool, len(gone))
	for _, i := range gone {
		goneUIDs[v.uids[i]] = true
	}
	for _, c := range v.contexts {
		var out []uint32
		for _, uid := range c.result {
			if goneUIDs[uid] {
				out = append(out, uid)
			}
		}
		if len(out) == 0 {
			continue
		}
		s.writeContextUpdate(c, "REMOVEFROM", out, c.result, true)
		c.result = slices.DeleteFunc(c.result, func(uid uint32) bool { return goneUIDs[uid] })
	}
}

// updateContexts runs every updating search again after a poll and tells
// the client what entered and left its result (RFC 5267 4.4, 4.5).
func (s *session) updateContexts() {
	v := s.sel
	if v == nil {
		return
	}
	for _, c := range v.contexts {
		if c.snap == v.snap && len(v.uids) == len(v.snap.Messages) {
			continue
		}
		withHeader, withSize := sortNeeds(c.keys)
		msgs := s.matchSnapshot(c.criteria, withHeader, withSize)
		if c.keys != nil {
			sortMessages(msgs, c.keys)
		}
		now := make([]uint32, 0, len(msgs))
		in := make(map[uint32]bool, len(msgs))
		for _, m := range msgs {
			now = append(now, m.uid)
			in[m.uid] = true
		}
		var gone []uint32
		was := make(map[uint32]bool, len(c.result))
		for _, uid := range c.result {
			was[uid] = true
			switch {
			case in[uid]:
			case v.seqOf(uid) == 0:
				// Expunged and told (contextsExpunged).
			default:
				if _, present := findSnap(v.snap, uid); present {
					gone = append(gone, uid)
				} else {
					// Expunged, but the EXPUNGE may not be sent yet
					// (RFC 9051 7.5.1): it stays until it is.
					now = append(now, uid)
				}
			}
		}
		var added []uint32
		for _, uid := range now {
			if !was[uid] {
				added = append(added, uid)
			}
		}
		if c.keys == nil {
			slices.Sort(now)
		}
		// RFC 5267 4.4: REMOVEFROM with positions in the old result,
		// ADDTO with positions in the new one.
		s.writeContextUpdate(c, "REMOVEFROM", gone, c.result, true)
		s.writeContextUpdate(c, "ADDTO", added, now, false)
		c.result, c.snap = now, v.snap
	}
}

func findSnap(snap *maildir.Snapshot, uid uint32) (*maildir.Message, bool) {
	msgs := snap.Messages
	i := sort.Search(len(msgs), func(i int) bool { return msgs[i].UID >= uid })
	if i < len(msgs) && msgs[i].UID == uid {
		return &msgs[i], true
	}
	return nil, false
}

// writeContextUpdate writes an ESEARCH ADDTO or REMOVEFROM (RFC 5267
// 4.4) for uids. For a SEARCH the position is 0 and the numbers one set;
// for a SORT each message goes with its position in order (the old result
// for REMOVEFROM, last first; the new one for ADDTO).
func (s *session) writeContextUpdate(c *searchContext, verb string, uids, order []uint32, lastFirst bool) {
	if len(uids) == 0 {
		return
	}
	num := func(uid uint32) uint32 {
		if c.uid {
			return uid
		}
		return s.sel.seqOf(uid)
	}
	e := s.enc
	e.Atom("* ESEARCH (TAG ").String(c.tag).Byte(')')
	if c.uid {
		e.Atom(" UID")
	}
	e.SP().Atom(verb).Atom(" (")
	if c.keys == nil {
		nums := make([]uint32, 0, len(uids))
		for _, uid := range uids {
			nums = append(nums, num(uid))
		}
		slices.Sort(nums)
		e.Atom("0 ").Atom(orderedSet(nums))
	} else {
		pos := make(map[uint32]int, len(order))
		for i, uid := range order {
			pos[uid] = i + 1
		}
		sorted := append([]uint32(nil), uids...)
		sort.Slice(sorted, func(i, j int) bool {
			if lastFirst {
				return pos[sorted[i]] > pos[sorted[j]]
			}
			return pos[sorted[i]] < pos[sorted[j]]
		})
		for i, uid := range sorted {
			if i > 0 {
				e.SP()
			}
			e.Number(uint32(pos[uid])).SP().Number(num(uid))
		}
	}
	e.Atom(")").CRLF()
}
