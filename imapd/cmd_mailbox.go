package main

import (
	"github.com/emersion/go-imap/v2"

	"tern/imapd/wire"
)

// The mailbox commands of the authenticated state (RFC 9051 6.3).

func init() {
	commands["SELECT"] = commandSpec{authState, (*session).cmdSelect}
	commands["EXAMINE"] = commandSpec{authState, (*session).cmdExamine}
	commands["CREATE"] = commandSpec{authState, (*session).cmdCreate}
	commands["DELETE"] = commandSpec{authState, (*session).cmdDelete}
	commands["RENAME"] = commandSpec{authState, (*session).cmdRename}
	commands["SUBSCRIBE"] = commandSpec{authState, (*session).cmdSubscribe}
	commands["UNSUBSCRIBE"] = commandSpec{authState, (*session).cmdUnsubscribe}
	commands["LIST"] = commandSpec{authState, (*session).cmdList}
	commands["LSUB"] = commandSpec{authState, (*session).cmdLsub}
	commands["STATUS"] = commandSpec{authState, (*session).cmdStatus}
	commands["APPEND"] = commandSpec{authState, (*session).cmdAppend}
}

// mailboxArg reads " mailbox" and the end of the command.
func mailboxArg(p *wire.Parser) (string, error) {
	if !p.SP() {
		return "", wire.Bad("Mailbox name expected")
	}
	name, err := p.Mailbox()
	if err != nil {
		return "", err
	}
	return name, nil
}

func (s *session) cmdSelect(c *wire.Command, p *wire.Parser) (reply, error) {
	return s.selectMailbox(p, false)
}

func (s *session) cmdExamine(c *wire.Command, p *wire.Parser) (reply, error) {
	return s.selectMailbox(p, true)
}

// selectMailbox: SELECT and EXAMINE (RFC 9051 6.3.2, 6.3.3).
func (s *session) selectMailbox(p *wire.Parser, readOnly bool) (reply, error) {
	name, err := mailboxArg(p)
	if err != nil {
		return reply{}, err
	}
	var params *wire.SelectParams
	if p.SP() {
		// RFC 4466 2.4: select parameters, RFC 7162's (condstore.go).
		if params, err = p.SelectParams(); err != nil {
			return reply{}, err
		}
	}
	if err := p.End(); err != nil {
		return reply{}, err
	}
	if params != nil && params.QResync != nil && !s.qresync {
		// RFC 7162 3.2.5: QRESYNC without ENABLE QRESYNC is BAD.
		return reply{}, wire.Bad("QRESYNC is not enabled")
	}
	if params != nil && params.CondStore {
		s.condstore = true // RFC 7162 3.1; SELECT answers HIGHESTMODSEQ
	}
	if s.state == stateSelected {
		// RFC 9051 6.3.2: a SELECT while selected closes the mailbox
		// first (without expunge), and says so with [CLOSED].
		s.unselect()
		s.state = stateAuthenticated
		s.enc.Atom("* OK [CLOSED] Previous mailbox closed").CRLF()
	}
	data, err := s.Select(name, &imap.SelectOptions{ReadOnly: readOnly})
	if err != nil {
		return reply{}, err
	}
	e := s.enc
	e.Atom("* FLAGS ").Flags(data.Flags).CRLF()
	e.Atom("* ").Number(data.NumMessages).Atom(" EXISTS").CRLF()
	if !s.rev2 {
		// RFC 3501 7.3.2 / 7.1: RECENT and UNSEEN are IMAP4rev1's.
		e.Atom("* ").Number(data.NumRecent).Atom(" RECENT").CRLF()
		if data.FirstUnseenSeqNum != 0 {
			e.Atom("* OK [UNSEEN ").Number(data.FirstUnseenSeqNum).Atom("] First unseen").CRLF()
		}
	}
	e.Atom("* OK [PERMANENTFLAGS ").Flags(data.PermanentFlags).Atom("] Flags permitted").CRLF()
	e.Atom("* OK [UIDNEXT ").Number(uint32(data.UIDNext)).Atom("] Predicted next UID").CRLF()
	e.Atom("* OK [UIDVALIDITY ").Number(data.UIDValidity).Atom("] UIDs valid").CRLF()
	s.selectMailboxID() // RFC 8474 4.1
	if s.rev2 {
		// RFC 9051 6.3.2: a LIST response with the mailbox's name.
		e.ListData("LIST", &imap.ListData{Mailbox: name, Delim: delim})
	}
	s.selectModSeq(params)
	s.state = stateSelected
	if readOnly {
		return reply{code: codeReadOnly, text: "EXAMINE completed"}, nil
	}
	return reply{code: codeReadWrite, text: "SELECT completed"}, nil
}

func (s *session) cmdCreate(c *wire.Command, p *wire.Parser) (reply, error) {
	name, err := mailboxArg(p)
	if err != nil {
		return reply{}, err
	}
	opts, err := p.CreateOptions()
	if err != nil {
		return reply{}, err
	}
	if err := p.End(); err != nil {
		return reply{}, err
	}
	if err := s.Create(name, opts); err != nil {
		return reply{}, err
	}
	return s.createdReply(name), nil
}

// cmdDelete: RFC 9051 6.3.4. The selected mailbox is not deleted from
// under its own session: RFC 5530 3 CANNOT says the operation is refused
// for this reason, and the client can UNSELECT and retry, where deleting
// it would leave the session selected in a mailbox that no longer exists.
func (s *session) cmdDelete(c *wire.Command, p *wire.Parser) (reply, error) {
	name, err := mailboxArg(p)
	if err != nil {
		return reply{}, err
	}
	if err := p.End(); err != nil {
		return reply{}, err
	}
	s.mu.Lock()
	selected := s.sel != nil && s.sel.name == name
	s.mu.Unlock()
	if selected {
		return reply{}, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot,
			Text: "Mailbox is selected; CLOSE or UNSELECT it first"}
	}
	return reply{}, s.Delete(name)
}

func (s *session) cmdRename(c *wire.Command, p *wire.Parser) (reply, error) {
	from, err := mailboxArg(p)
	if err != nil {
		return reply{}, err
	}
	to, err := mailboxArg(p)
	if err != nil {
		return reply{}, err
	}
	if err := p.End(); err != nil {
		return reply{}, err
	}
	return reply{}, s.Rename(from, to, &imap.RenameOptions{})
}

func (s *session) cmdSubscribe(c *wire.Command, p *wire.Parser) (reply, error) {
	name, err := mailboxArg(p)
	if err != nil {
		return reply{}, err
	}
	if err := p.End(); err != nil {
		return reply{}, err
	}
	return reply{}, s.Subscribe(name)
}

func (s *session) cmdUnsubscribe(c *wire.Command, p *wire.Parser) (reply, error) {
	name, err := mailboxArg(p)
	if err != nil {
		return reply{}, err
	}
	if err := p.End(); err != nil {
		return reply{}, err
	}
	return reply{}, s.Unsubscribe(name)
}

// cmdList: RFC 9051 6.3.9 with RFC 5258 LIST-EXTENDED.
func (s *session) cmdList(c *wire.Command, p *wire.Parser) (reply, error) {
	if !p.SP() {
		return reply{}, wire.Bad("LIST needs a reference and a pattern")
	}
	req, err := p.ListArgs()
	if err != nil {
		return reply{}, err
	}
	if err := p.End(); err != nil {
		return reply{}, err
	}
	var patterns []string
	for _, pat := range req.Patterns {
		if pat != "" {
			patterns = append(patterns, pat)
		}
	}
	if len(patterns) == 0 && len(req.Patterns) > 1 {
		return reply{}, nil
	}
	q := listQuery{ref: req.Ref, patterns: patterns, options: req.Options}
	w := &ListWriter{s: s, verb: "LIST", mailboxID: p.StatusMailboxID && req.Options.ReturnStatus != nil}
	return reply{}, s.listMailboxes(q, w.WriteList)
}

// cmdLsub: RFC 3501 6.3.9, LIST of the subscribed mailboxes.
func (s *session) cmdLsub(c *wire.Command, p *wire.Parser) (reply, error) {
	if !p.SP() {
		return reply{}, wire.Bad("LSUB needs a reference and a pattern")
	}
	req, err := p.ListArgs()
	if err != nil {
		return reply{}, err
	}
	if err := p.End(); err != nil {
		return reply{}, err
	}
	if req.Extended {
		return reply{}, wire.Bad("LSUB takes no options")
	}
	var patterns []string
	for _, pat := range req.Patterns {
		if pat != "" {
			patterns = append(patterns, pat)
		}
	}
	if len(patterns) == 0 {
		return reply{}, nil
	}
	q := listQuery{ref: req.Ref, patterns: patterns, options: &imap.ListOptions{SelectSubscribed: true}, lsub: true}
	return reply{}, s.listMailboxes(q, (&ListWriter{s: s, verb: "LSUB"}).WriteList)
}

// cmdStatus: RFC 9051 6.3.11.
func (s *session) cmdStatus(c *wire.Command, p *wire.Parser) (reply, error) {
	name, err := mailboxArg(p)
	if err != nil {
		return reply{}, err
	}
	if !p.SP() {
		return reply{}, wire.Bad("STATUS needs items")
	}
	items, err := p.StatusItems()
	if err != nil {
		return reply{}, err
	}
	if err := p.End(); err != nil {
		return reply{}, err
	}
	if items.HighestModSeq {
		s.enableCondStore() // RFC 7162 3.1
	}
	data, err := s.Status(name, items)
	if err != nil {
		return reply{}, err
	}
	var id string
	if p.StatusMailboxID {
		id = s.mailboxID(name)
	}
	s.enc.StatusDataID(data, id)
	return reply{}, nil
}
