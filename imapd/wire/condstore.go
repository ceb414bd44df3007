package wire

import (
	"github.com/emersion/go-imap/v2"
)

// CONDSTORE and QRESYNC (RFC 7162) arguments.

// ModSeq reads a mod-sequence-value (RFC 7162 7: 1*DIGIT, up to 2^63-1).
// zero says whether 0 (mod-sequence-valzer) is allowed.
func (p *Parser) ModSeq(zero bool) (uint64, error) {
	n, err := p.number(63)
	if err != nil || (n == 0 && !zero) {
		return 0, Bad("Invalid mod-sequence")
	}
	return n, nil
}

// searchModSeq reads the rest of SEARCH's MODSEQ key (RFC 7162 3.1.5):
// " [entry-name entry-type-req] mod-sequence-valzer". The entry names
// a flag's metadata; tern keeps one modseq a message, so the entry is
// checked and the message's modseq compared.
func (p *Parser) searchModSeq(c *imap.SearchCriteria) error {
	if !p.SP() {
		return errSyntax
	}
	ms := &imap.SearchCriteriaModSeq{}
	if ch := p.peek(); ch == '"' || ch == '{' {
		name, err := p.String()
		if err != nil || !p.SP() {
			return errSyntax
		}
		switch t := imap.SearchCriteriaMetadataType(p.word()); {
		case t == "PRIV", t == "SHARED", t == "ALL":
			ms.MetadataName = name
			ms.MetadataType = imap.SearchCriteriaMetadataType(toLower(string(t)))
		default:
			return Bad("Invalid MODSEQ entry type")
		}
		if !p.SP() {
			return errSyntax
		}
	}
	n, err := p.ModSeq(true)
	if err != nil {
		return err
	}
	ms.ModSeq = n
	if c.ModSeq != nil && c.ModSeq.ModSeq > n {
		// Both must hold: the larger bound is the one that counts.
		return nil
	}
	c.ModSeq = ms
	return nil
}

func toLower(s string) string {
	b := []byte(s)
	for i, ch := range b {
		if ch >= 'A' && ch <= 'Z' {
			b[i] = ch + 'a' - 'A'
		}
	}
	return string(b)
}

// FetchModifiers reads FETCH's " (CHANGEDSINCE n [VANISHED])" (RFC 7162
// 3.1.4.1, 3.2.6) into req.
func (p *Parser) FetchModifiers(req *FetchRequest) error {
	seen := false
	err := p.List(func() error {
		switch p.word() {
		case "CHANGEDSINCE":
			if !p.SP() {
				return errSyntax
			}
			n, err := p.ModSeq(false)
			if err != nil {
				return err
			}
			req.Options.ChangedSince = n
			seen = true
		case "VANISHED":
			req.Vanished = true
		default:
			return Bad("Unknown FETCH modifier")
		}
		return nil
	})
	if err != nil {
		return err
	}
	if req.Vanished && !seen {
		// RFC 7162 3.2.6: VANISHED only with CHANGEDSINCE.
		return Bad("VANISHED needs CHANGEDSINCE")
	}
	return nil
}

// QResync is the argument of SELECT's QRESYNC parameter (RFC 7162 3.2.5).
type QResync struct {
	UIDValidity uint32
	ModSeq      uint64
	KnownUIDs   imap.UIDSet // nil: every UID
	// SeqMatch: known sequence numbers and their UIDs.
	SeqMatchSeqs imap.SeqSet
	SeqMatchUIDs imap.UIDSet
}

// SelectParams are SELECT's and EXAMINE's parameters (RFC 4466 2.1).
type SelectParams struct {
	CondStore bool
	QResync   *QResync
}

// SelectParams reads "(CONDSTORE)" or "(QRESYNC (...))" after the
// mailbox name (RFC 7162 3.1.8, 3.2.5).
func (p *Parser) SelectParams() (*SelectParams, error) {
	sp := &SelectParams{}
	err := p.List(func() error {
		switch p.word() {
		case "CONDSTORE":
			sp.CondStore = true
		case "QRESYNC":
			if sp.QResync != nil || !p.SP() || !p.Special('(') {
				return errSyntax
			}
			q := &QResync{}
			v, err := p.Number()
			if err != nil || v == 0 || !p.SP() {
				return Bad("Invalid QRESYNC UIDVALIDITY")
			}
			q.UIDValidity = v
			if q.ModSeq, err = p.ModSeq(false); err != nil {
				return err
			}
			if p.SP() {
				if p.peek() != '(' {
					set, err := p.NumSet(true)
					if err != nil || imap.IsSearchRes(set) {
						return Bad("Invalid known UIDs")
					}
					q.KnownUIDs = set.(imap.UIDSet)
					p.SP()
				}
				if p.Special('(') {
					seqs, err := p.NumSet(false)
					if err != nil || imap.IsSearchRes(seqs) || !p.SP() {
						return Bad("Invalid sequence match data")
					}
					uids, err := p.NumSet(true)
					if err != nil || imap.IsSearchRes(uids) || !p.Special(')') {
						return Bad("Invalid sequence match data")
					}
					q.SeqMatchSeqs, q.SeqMatchUIDs = seqs.(imap.SeqSet), uids.(imap.UIDSet)
				}
			}
			if !p.Special(')') {
				return errSyntax
			}
			sp.QResync = q
		default:
			return Bad("Unknown SELECT parameter")
		}
		return nil
	})
	return sp, err
}
