package main

import (
	"strings"

	"github.com/emersion/go-imap/v2"

	"tern/imapd/wire"
)

// SORT and THREAD (RFC 5256), ESORT (RFC 5267 3), PARTIAL (RFC 9394).

func init() {
	commands["SORT"] = commandSpec{stateSelected, (*session).cmdSort}
	commands["UID SORT"] = commandSpec{stateSelected, (*session).cmdSort}
	commands["THREAD"] = commandSpec{stateSelected, (*session).cmdThread}
	commands["UID THREAD"] = commandSpec{stateSelected, (*session).cmdThread}
}

// errBadCharset: RFC 5256 3 and RFC 3501 6.4.4, a charset imapd cannot
// search in is NO [BADCHARSET] with the ones it can.
var errBadCharset = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeBadCharset,
	Text: "Only US-ASCII and UTF-8 are supported"}

func checkCharset(cs string) error {
	if cs := strings.ToUpper(cs); cs != "UTF-8" && cs != "US-ASCII" {
		return errBadCharset
	}
	return nil
}

// cmdSort: SORT and UID SORT (RFC 5256 3), with RETURN (RFC 5267 3.1)
// answered by ESEARCH and PARTIAL (RFC 9394).
func (s *session) cmdSort(c *wire.Command, p *wire.Parser) (reply, error) {
	if !p.SP() {
		return reply{}, wire.Bad("SORT needs sort criteria")
	}
	req, err := p.Sort()
	if err != nil {
		return reply{}, err
	}
	if err := p.End(); err != nil {
		return reply{}, err
	}
	if err := checkCharset(req.Charset); err != nil {
		return reply{}, err
	}
	nums, err := s.Sort(isUID(c), req)
	if err != nil {
		return reply{}, err
	}
	e := s.enc
	if req.Options == nil {
		e.Atom("* SORT")
		for _, n := range nums {
			e.SP().Number(n)
		}
		e.CRLF()
		return reply{}, nil
	}
	if req.Update {
		if err := s.addContext(c.Tag, isUID(c), req.Keys, req.Criteria, nums); err != nil {
			return reply{}, err
		}
	}
	s.writeESearch(c, req.Options, req.Partial, req.Update, nums, true, 0)
	return reply{}, nil
}

// writeESearch writes the ESEARCH response (RFC 4731 3.1) of a SEARCH or
// SORT with RETURN options, nums being the result in its order: for SORT
// MIN and MAX are the first and last in sort order and ALL is in sort
// order (RFC 5267 3.2). RETURN (UPDATE) alone returns nothing now (RFC
// 5267 4.2). modSeq, when not 0, is the MODSEQ of a search by mod-sequence
// (RFC 7162 3.1.5).
func (s *session) writeESearch(c *wire.Command, opts *imap.SearchOptions, partial *wire.PartialRange, update bool, nums []uint32, sorted bool, modSeq uint64) {
	if !opts.ReturnMin && !opts.ReturnMax && !opts.ReturnCount && !opts.ReturnAll && !opts.ReturnSave && partial == nil && !update {
		// RFC 4731 3.1: RETURN () means ALL.
		opts.ReturnAll = true
	}
	e := s.enc
	e.Atom("* ESEARCH (TAG ").String(c.Tag).Byte(')')
	if isUID(c) {
		e.Atom(" UID")
	}
	if len(nums) > 0 {
		lo, hi := nums[0], nums[len(nums)-1]
		if !sorted {
			for _, n := range nums {
				lo, hi = min(lo, n), max(hi, n)
			}
		}
		if opts.ReturnMin {
			e.Atom(" MIN ").Number(lo)
		}
		if opts.ReturnMax {
			e.Atom(" MAX ").Number(hi)
		}
		if opts.ReturnAll {
			e.Atom(" ALL ").Atom(orderedSet(nums))
		}
	}
	if opts.ReturnCount {
		e.Atom(" COUNT ").Number(uint32(len(nums)))
	}
	if partial != nil {
		// RFC 9394 3.1: PARTIAL (range set-or-NIL).
		e.Atom(" PARTIAL (").Atom(partial.String()).SP()
		if part := partialSlice(nums, *partial); len(part) > 0 {
			e.Atom(orderedSet(part))
		} else {
			e.Atom("NIL")
		}
		e.Byte(')')
	}
	if modSeq != 0 {
		e.Atom(" MODSEQ ").Number64(int64(modSeq))
	}
	e.CRLF()
}

// partialSlice gives positions r.First to r.Last (1-based) of nums, or
// counted from the end when negative (RFC 9394 3.1).
func partialSlice(nums []uint32, r wire.PartialRange) []uint32 {
	n := int64(len(nums))
	first, last := int64(r.First), int64(r.Last)
	if first < 0 {
		// -1:-100 is the last 100, in the result's order.
		first, last = n+last+1, n+first+1
	}
	first = max(first, 1)
	last = min(last, n)
	if first > last {
		return nil
	}
	return nums[first-1 : last]
}

// orderedSet writes numbers as a sequence set in their order, runs of
// consecutive ascending numbers as ranges (RFC 5267 3.2).
func orderedSet(nums []uint32) string {
	var b strings.Builder
	for i := 0; i < len(nums); {
		j := i
		for j+1 < len(nums) && nums[j+1] == nums[j]+1 {
			j++
		}
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(itoa(nums[i]))
		if j > i {
			b.WriteByte(':')
			b.WriteString(itoa(nums[j]))
		}
		i = j + 1
	}
	return b.String()
}

// cmdThread: THREAD and UID THREAD (RFC 5256 3).
func (s *session) cmdThread(c *wire.Command, p *wire.Parser) (reply, error) {
	if !p.SP() {
		return reply{}, wire.Bad("THREAD needs an algorithm")
	}
	req, err := p.Thread()
	if err != nil {
		return reply{}, err
	}
	if err := p.End(); err != nil {
		return reply{}, err
	}
	if err := checkCharset(req.Charset); err != nil {
		return reply{}, err
	}
	threads, err := s.Thread(isUID(c), req)
	if err != nil {
		return reply{}, err
	}
	s.enc.Atom("* THREAD")
	if threads != "" {
		s.enc.SP().Atom(threads)
	}
	s.enc.CRLF()
	return reply{}, nil
}
