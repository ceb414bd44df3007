package main

import (
	"strings"

	"github.com/emersion/go-imap/v2"

	"tern/imapd/wire"
)

// The commands of the selected state (RFC 9051 6.4), with their UID forms
// (RFC 9051 6.4.9, RFC 4315 UID EXPUNGE, RFC 6851 MOVE).

func init() {
	commands["CHECK"] = commandSpec{stateSelected, (*session).cmdCheck}
	commands["CLOSE"] = commandSpec{stateSelected, (*session).cmdClose}
	commands["UNSELECT"] = commandSpec{stateSelected, (*session).cmdUnselect}
	commands["EXPUNGE"] = commandSpec{stateSelected, (*session).cmdExpunge}
	commands["UID EXPUNGE"] = commandSpec{stateSelected, (*session).cmdExpunge}
	commands["SEARCH"] = commandSpec{stateSelected, (*session).cmdSearch}
	commands["UID SEARCH"] = commandSpec{stateSelected, (*session).cmdSearch}
	commands["FETCH"] = commandSpec{stateSelected, (*session).cmdFetch}
	commands["UID FETCH"] = commandSpec{stateSelected, (*session).cmdFetch}
	commands["STORE"] = commandSpec{stateSelected, (*session).cmdStore}
	commands["UID STORE"] = commandSpec{stateSelected, (*session).cmdStore}
	commands["COPY"] = commandSpec{stateSelected, (*session).cmdCopy}
	commands["UID COPY"] = commandSpec{stateSelected, (*session).cmdCopy}
	commands["MOVE"] = commandSpec{stateSelected, (*session).cmdMove}
	commands["UID MOVE"] = commandSpec{stateSelected, (*session).cmdMove}
}

func isUID(c *wire.Command) bool { return c.Name == "UID" }

// setArg reads " sequence-set".
func setArg(c *wire.Command, p *wire.Parser) (imap.NumSet, error) {
	if !p.SP() {
		return nil, wire.Bad("Sequence set expected")
	}
	return p.NumSet(isUID(c))
}

// cmdCheck: RFC 3501 6.4.1; everything is on disk already.
func (s *session) cmdCheck(c *wire.Command, p *wire.Parser) (reply, error) {
	return reply{}, p.End()
}

// cmdClose: RFC 9051 6.4.1, a silent expunge (none when read-only) and
// back to the authenticated state.
func (s *session) cmdClose(c *wire.Command, p *wire.Parser) (reply, error) {
	if err := p.End(); err != nil {
		return reply{}, err
	}
	err := s.Expunge(&ExpungeWriter{}, nil)
	s.unselect()
	s.state = stateAuthenticated
	return reply{}, err
}

// cmdUnselect: RFC 9051 6.4.2 (RFC 3691).
func (s *session) cmdUnselect(c *wire.Command, p *wire.Parser) (reply, error) {
	if err := p.End(); err != nil {
		return reply{}, err
	}
	s.unselect()
	s.state = stateAuthenticated
	return reply{}, nil
}

// cmdExpunge: EXPUNGE (RFC 9051 6.4.3) and UID EXPUNGE (RFC 9051 6.4.9).
func (s *session) cmdExpunge(c *wire.Command, p *wire.Parser) (reply, error) {
	var uids *imap.UIDSet
	if isUID(c) {
		set, err := setArg(c, p)
		if err != nil {
			return reply{}, err
		}
		us, ok := set.(imap.UIDSet)
		if !ok {
			return reply{}, wire.Bad("UID EXPUNGE needs UIDs")
		}
		uids = &us
	}
	if err := p.End(); err != nil {
		return reply{}, err
	}
	return reply{}, s.Expunge(&ExpungeWriter{s: s}, uids)
}

// cmdSearch: RFC 9051 6.4.4, with ESEARCH (RFC 4731) and SEARCHRES (RFC
// 5182).
func (s *session) cmdSearch(c *wire.Command, p *wire.Parser) (reply, error) {
	if !p.SP() {
		return reply{}, wire.Bad("SEARCH needs criteria")
	}
	req, err := p.Search()
	if err != nil {
		return reply{}, err
	}
	if err := p.End(); err != nil {
		return reply{}, err
	}
	if cs := strings.ToUpper(req.Charset); cs != "" && cs != "UTF-8" && cs != "US-ASCII" {
		return reply{}, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeBadCharset,
			Text: "Only US-ASCII and UTF-8 are supported"}
	}
	kind := NumKindSeq
	if isUID(c) {
		kind = NumKindUID
	}
	opts := req.Options
	extended := opts != nil || s.rev2
	if opts == nil {
		opts = &imap.SearchOptions{}
	}
	if !opts.ReturnMin && !opts.ReturnMax && !opts.ReturnCount && !opts.ReturnAll && !opts.ReturnSave && req.Partial == nil && !req.Update {
		// RFC 4731 3.1: RETURN () means ALL.
		opts.ReturnAll = true
	}
	withModSeq := searchUsesModSeq(req.Criteria)
	if withModSeq {
		s.enableCondStore() // RFC 7162 3.1
	}
	data, err := s.Search(kind, req.Criteria, opts)
	if err != nil {
		return reply{}, err
	}
	if req.Update {
		// RFC 5267 4.2 (context.go).
		if err := s.addContext(c.Tag, kind == NumKindUID, nil, req.Criteria, numList(data.All)); err != nil {
			return reply{}, err
		}
	}
	if !withModSeq {
		data.ModSeq = 0
	}
	e := s.enc
	if !extended {
		e.Atom("* SEARCH")
		for _, n := range numList(data.All) {
			e.SP().Number(n)
		}
		if data.ModSeq != 0 && data.Count > 0 {
			// RFC 7162 3.1.5: the highest modseq of the messages found.
			e.Atom(" (MODSEQ ").Number64(int64(data.ModSeq)).Byte(')')
		}
		e.CRLF()
		return reply{}, nil
	}
	if req.Partial != nil {
		// RFC 9394 3.1 (cmd_sort.go).
		var modSeq uint64
		if data.Count > 0 {
			modSeq = data.ModSeq // RFC 7162 3.1.5
		}
		s.writeESearch(c, opts, req.Partial, req.Update, numList(data.All), false, modSeq)
		return reply{}, nil
	}
	if opts.ReturnSave && !opts.ReturnMin && !opts.ReturnMax && !opts.ReturnCount && !opts.ReturnAll {
		// RFC 5182 2.1: SAVE alone gives no ESEARCH response.
		return reply{}, nil
	}
	e.Atom("* ESEARCH (TAG ").String(c.Tag).Byte(')')
	if kind == NumKindUID {
		e.Atom(" UID")
	}
	if opts.ReturnMin && data.Count > 0 {
		e.Atom(" MIN ").Number(data.Min)
	}
	if opts.ReturnMax && data.Count > 0 {
		e.Atom(" MAX ").Number(data.Max)
	}
	if opts.ReturnAll && data.Count > 0 {
		e.Atom(" ALL ").NumSet(data.All)
	}
	if opts.ReturnCount {
		e.Atom(" COUNT ").Number(data.Count)
	}
	if data.ModSeq != 0 && data.Count > 0 {
		e.Atom(" MODSEQ ").Number64(int64(s.esearchModSeq(opts, data, kind == NumKindUID))) // RFC 7162 3.1.5
	}
	e.CRLF()
	return reply{}, nil
}

// numList lists the numbers of a search result.
func numList(set imap.NumSet) []uint32 {
	switch set := set.(type) {
	case imap.SeqSet:
		nums, _ := set.Nums()
		return nums
	case imap.UIDSet:
		var out []uint32
		for _, r := range set {
			for u := r.Start; u <= r.Stop && u != 0; u++ {
				out = append(out, uint32(u))
			}
		}
		return out
	}
	return nil
}

// cmdFetch: RFC 9051 6.4.5.
func (s *session) cmdFetch(c *wire.Command, p *wire.Parser) (reply, error) {
	set, err := setArg(c, p)
	if err != nil {
		return reply{}, err
	}
	if !p.SP() {
		return reply{}, wire.Bad("FETCH needs items")
	}
	req, err := p.Fetch()
	if err != nil {
		return reply{}, err
	}
	if p.SP() {
		if err := p.FetchModifiers(req); err != nil {
			return reply{}, err
		}
	}
	if err := p.End(); err != nil {
		return reply{}, err
	}
	if req.Vanished && (!isUID(c) || !s.qresync) {
		// RFC 7162 3.2.6: VANISHED only in UID FETCH, after ENABLE QRESYNC.
		return reply{}, wire.Bad("VANISHED needs UID FETCH and ENABLE QRESYNC")
	}
	if req.Options.ChangedSince != 0 {
		req.Options.ModSeq = true // RFC 7162 3.1.4.1: CHANGEDSINCE implies MODSEQ
	}
	if req.Options.ModSeq {
		s.enableCondStore()
	}
	if isUID(c) {
		req.Options.UID = true
	}
	return reply{}, s.Fetch(&FetchWriter{s: s, req: req}, set, req.Options)
}

// cmdStore: RFC 9051 6.4.6.
func (s *session) cmdStore(c *wire.Command, p *wire.Parser) (reply, error) {
	set, err := setArg(c, p)
	if err != nil {
		return reply{}, err
	}
	if !p.SP() {
		return reply{}, wire.Bad("STORE needs flags")
	}
	flags, opts, err := p.Store()
	if err != nil {
		return reply{}, err
	}
	if err := p.End(); err != nil {
		return reply{}, err
	}
	if opts != nil {
		s.enableCondStore() // RFC 7162 3.1: UNCHANGEDSINCE
	}
	if flags.Op != imap.StoreFlagsDel && !s.sel.readOnly {
		s.announceFlags(flagStrings(flags.Flags))
	}
	req := &wire.FetchRequest{Options: &imap.FetchOptions{UID: isUID(c), Flags: true}}
	modified, err := s.Store(&FetchWriter{s: s, req: req}, set, flags, opts)
	if err != nil || len(modified) == 0 {
		return reply{}, err
	}
	// RFC 7162 3.1.3: the messages that failed UNCHANGEDSINCE, as UIDs
	// for UID STORE, else as sequence numbers.
	var out imap.NumSet
	if isUID(c) {
		var us imap.UIDSet
		for _, u := range modified {
			us.AddNum(imap.UID(u))
		}
		out = us
	} else {
		var ss imap.SeqSet
		for _, u := range modified {
			if seq := s.sel.seqOf(u); seq != 0 {
				ss.AddNum(seq)
			}
		}
		out = ss
	}
	return reply{code: codeModified, arg: out.String(), text: "Conditional STORE failed"}, nil
}

// destArg reads " mailbox" and the end of COPY and MOVE.
func destArg(p *wire.Parser) (string, error) {
	name, err := mailboxArg(p)
	if err != nil {
		return "", err
	}
	return name, p.End()
}

// cmdCopy: RFC 9051 6.4.7, COPYUID from RFC 4315.
func (s *session) cmdCopy(c *wire.Command, p *wire.Parser) (reply, error) {
	set, err := setArg(c, p)
	if err != nil {
		return reply{}, err
	}
	dest, err := destArg(p)
	if err != nil {
		return reply{}, err
	}
	data, err := s.Copy(set, dest)
	if err != nil {
		return reply{}, err
	}
	if data == nil {
		return reply{}, nil
	}
	return reply{code: codeCopyUID, arg: copyUIDArg(data), text: "COPY completed"}, nil
}

// cmdMove: RFC 9051 6.4.8 (RFC 6851).
func (s *session) cmdMove(c *wire.Command, p *wire.Parser) (reply, error) {
	set, err := setArg(c, p)
	if err != nil {
		return reply{}, err
	}
	dest, err := destArg(p)
	if err != nil {
		return reply{}, err
	}
	return reply{}, s.Move(&MoveWriter{s: s}, set, dest)
}
