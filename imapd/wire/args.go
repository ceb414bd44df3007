package wire

import (
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
)

// word reads a fetch attribute or option name: letters, digits, "." and
// "-" (RFC 9051 9: "BODY.PEEK", "RFC822.SIZE", "BINARY.SIZE").
func (p *Parser) word() string {
	start := p.pos
	for p.pos < len(p.c.Text) {
		ch := p.c.Text[p.pos]
		if !(ch >= 'A' && ch <= 'Z' || ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' || ch == '.' || ch == '-' || ch == '=') {
			break
		}
		p.pos++
	}
	return strings.ToUpper(string(p.c.Text[start:p.pos]))
}

// FetchRequest is a parsed FETCH: the options, and the obsolete item
// names (RFC822, RFC822.HEADER, RFC822.TEXT) that the answer must use
// (RFC 3501 6.4.5).
type FetchRequest struct {
	Options  *imap.FetchOptions
	Obsolete map[*imap.FetchItemBodySection]string
	// Body says the non-extended BODY was asked for; Options carries
	// BODYSTRUCTURE as Extended.
	Body bool
	// Vanished is the VANISHED modifier of UID FETCH (RFC 7162 3.2.6).
	Vanished bool
	// EmailID and ThreadID are RFC 8474 7's items, SaveDate RFC 8514
	// 4.1's, Preview RFC 8970 3's (LAZY: PreviewLazy).
	EmailID, ThreadID, SaveDate bool
	Preview, PreviewLazy        bool
}

// Fetch reads the items of FETCH (RFC 9051 6.4.5).
func (p *Parser) Fetch() (*FetchRequest, error) {
	req := &FetchRequest{Options: &imap.FetchOptions{}}
	o := req.Options
	if p.peek() != '(' {
		switch w := p.word(); w {
		case "ALL":
			o.Flags, o.InternalDate, o.RFC822Size, o.Envelope = true, true, true, true
		case "FAST":
			o.Flags, o.InternalDate, o.RFC822Size = true, true, true
		case "FULL":
			o.Flags, o.InternalDate, o.RFC822Size, o.Envelope = true, true, true, true
			o.BodyStructure = &imap.FetchItemBodyStructure{}
			req.Body = true
		default:
			p.pos -= len(w)
			if err := p.fetchAtt(req); err != nil {
				return nil, err
			}
		}
		return req, nil
	}
	err := p.List(func() error { return p.fetchAtt(req) })
	return req, err
}

func (p *Parser) fetchAtt(req *FetchRequest) error {
	o := req.Options
	switch w := p.word(); w {
	case "UID":
		o.UID = true
	case "FLAGS":
		o.Flags = true
	case "INTERNALDATE":
		o.InternalDate = true
	case "MODSEQ": // RFC 7162 3.1.4.1
		o.ModSeq = true
	case "EMAILID": // RFC 8474 7
		req.EmailID = true
	case "THREADID": // RFC 8474 7
		req.ThreadID = true
	case "SAVEDATE": // RFC 8514 4.1
		req.SaveDate = true
	case "PREVIEW": // RFC 8970 3.1: "PREVIEW" [SP "(" preview-mod *(SP preview-mod) ")"]
		req.Preview = true
		if p.pos+1 < len(p.c.Text) && p.c.Text[p.pos] == ' ' && p.c.Text[p.pos+1] == '(' {
			p.pos++
			err := p.List(func() error {
				if p.word() != "LAZY" {
					return Bad("Unknown PREVIEW modifier")
				}
				req.PreviewLazy = true
				return nil
			})
			if err == nil && !req.PreviewLazy {
				err = Bad("PREVIEW needs a modifier in its parentheses")
			}
			return err
		}
	case "RFC822.SIZE":
		o.RFC822Size = true
	case "ENVELOPE":
		o.Envelope = true
	case "BODYSTRUCTURE":
		o.BodyStructure = &imap.FetchItemBodyStructure{Extended: true}
	case "RFC822", "RFC822.HEADER", "RFC822.TEXT":
		bs := &imap.FetchItemBodySection{}
		switch w {
		case "RFC822.HEADER":
			bs.Specifier, bs.Peek = imap.PartSpecifierHeader, true
		case "RFC822.TEXT":
			bs.Specifier = imap.PartSpecifierText
		}
		if req.Obsolete == nil {
			req.Obsolete = make(map[*imap.FetchItemBodySection]string)
		}
		req.Obsolete[bs] = w
		o.BodySection = append(o.BodySection, bs)
	case "BODY", "BODY.PEEK":
		if p.peek() != '[' {
			if w == "BODY.PEEK" {
				return Bad("BODY.PEEK needs a section")
			}
			req.Body = true
			if o.BodyStructure == nil {
				o.BodyStructure = &imap.FetchItemBodyStructure{}
			}
			return nil
		}
		bs := &imap.FetchItemBodySection{Peek: w == "BODY.PEEK"}
		if err := p.section(bs); err != nil {
			return err
		}
		partial, err := p.partial()
		if err != nil {
			return err
		}
		bs.Partial = partial
		o.BodySection = append(o.BodySection, bs)
	case "BINARY", "BINARY.PEEK":
		part, err := p.binaryPart()
		if err != nil {
			return err
		}
		partial, err := p.partial()
		if err != nil {
			return err
		}
		o.BinarySection = append(o.BinarySection, &imap.FetchItemBinarySection{Part: part, Partial: partial, Peek: w == "BINARY.PEEK"})
	case "BINARY.SIZE":
		part, err := p.binaryPart()
		if err != nil {
			return err
		}
		o.BinarySectionSize = append(o.BinarySectionSize, &imap.FetchItemBinarySectionSize{Part: part})
	default:
		return Bad("Unknown FETCH item")
	}
	return nil
}

// partNumbers reads "1.2.3" (nz-numbers separated by dots), stopping
// before a dot that is not followed by a digit.
func (p *Parser) partNumbers() ([]int, error) {
	var part []int
	for {
		ch := p.peek()
		if ch < '1' || ch > '9' {
			if len(part) > 0 {
				p.pos-- // give back the dot
			}
			return part, nil
		}
		n, err := p.Number()
		if err != nil || n == 0 || n > 1<<20 {
			return nil, Bad("Invalid section part")
		}
		part = append(part, int(n))
		if !p.Special('.') {
			return part, nil
		}
	}
}

func (p *Parser) binaryPart() ([]int, error) {
	if !p.Special('[') {
		return nil, Bad("Section expected")
	}
	part, err := p.partNumbers()
	if err != nil {
		return nil, err
	}
	if !p.Special(']') {
		return nil, Bad("Invalid BINARY section")
	}
	return part, nil
}

// section reads "[" section-spec "]" (RFC 9051 9).
func (p *Parser) section(bs *imap.FetchItemBodySection) error {
	if !p.Special('[') {
		return Bad("Section expected")
	}
	part, err := p.partNumbers()
	if err != nil {
		return err
	}
	bs.Part = part
	if len(part) > 0 && !p.Special('.') {
		if !p.Special(']') {
			return Bad("Invalid section")
		}
		return nil
	}
	spec := p.word()
	switch spec {
	case "":
		if len(part) > 0 {
			return Bad("Invalid section")
		}
	case "HEADER":
		bs.Specifier = imap.PartSpecifierHeader
	case "TEXT":
		bs.Specifier = imap.PartSpecifierText
	case "MIME":
		if len(part) == 0 {
			return Bad("MIME needs a part number")
		}
		bs.Specifier = imap.PartSpecifierMIME
	case "HEADER.FIELDS", "HEADER.FIELDS.NOT":
		bs.Specifier = imap.PartSpecifierHeader
		if !p.SP() {
			return Bad("Header list expected")
		}
		var fields []string
		err := p.List(func() error {
			f, err := p.AString()
			fields = append(fields, f)
			return err
		})
		if err != nil {
			return err
		}
		if len(fields) == 0 {
			return Bad("Empty header list")
		}
		if spec == "HEADER.FIELDS" {
			bs.HeaderFields = fields
		} else {
			bs.HeaderFieldsNot = fields
		}
	default:
		return Bad("Invalid section")
	}
	if !p.Special(']') {
		return Bad("Invalid section")
	}
	return nil
}

// partial reads "<" number "." nz-number ">".
func (p *Parser) partial() (*imap.SectionPartial, error) {
	if !p.Special('<') {
		return nil, nil
	}
	off, err := p.Number()
	if err != nil || !p.Special('.') {
		return nil, Bad("Invalid partial")
	}
	n, err := p.Number()
	if err != nil || n == 0 || !p.Special('>') {
		return nil, Bad("Invalid partial")
	}
	return &imap.SectionPartial{Offset: int64(off), Size: int64(n)}, nil
}

// Store reads STORE's arguments after the set (RFC 9051 6.4.6); the
// options are nil without the UNCHANGEDSINCE modifier (RFC 7162 3.1.3),
// whose value may be 0.
func (p *Parser) Store() (*imap.StoreFlags, *imap.StoreOptions, error) {
	var opts *imap.StoreOptions
	if p.peek() == '(' {
		opts = &imap.StoreOptions{}
		err := p.List(func() error {
			if p.word() != "UNCHANGEDSINCE" || !p.SP() {
				return Bad("Unknown STORE modifier")
			}
			n, err := p.Number64()
			opts.UnchangedSince = uint64(n)
			return err
		})
		if err != nil || !p.SP() {
			return nil, nil, errSyntax
		}
	}
	sf := &imap.StoreFlags{Op: imap.StoreFlagsSet}
	if p.Special('+') {
		sf.Op = imap.StoreFlagsAdd
	} else if p.Special('-') {
		sf.Op = imap.StoreFlagsDel
	}
	switch p.word() {
	case "FLAGS":
	case "FLAGS.SILENT":
		sf.Silent = true
	default:
		return nil, nil, Bad("FLAGS expected")
	}
	if !p.SP() {
		return nil, nil, errSyntax
	}
	if p.peek() == '(' {
		flags, err := p.Flags()
		if err != nil {
			return nil, nil, err
		}
		sf.Flags = flags
	} else {
		for {
			f, err := p.Flag()
			if err != nil || f == imap.FlagWildcard {
				return nil, nil, Bad("Invalid flag")
			}
			sf.Flags = append(sf.Flags, f)
			if !p.SP() {
				break
			}
		}
	}
	return sf, opts, nil
}

// SearchRequest is a parsed SEARCH.
type SearchRequest struct {
	Criteria *imap.SearchCriteria
	Options  *imap.SearchOptions // nil without RETURN
	Partial  *PartialRange       // RFC 9394 RETURN (PARTIAL …)
	Update   bool                // RFC 5267 4.2 RETURN (UPDATE)
	Charset  string
}

// Search reads SEARCH's arguments (RFC 9051 6.4.4, RFC 4731 RETURN).
func (p *Parser) Search() (*SearchRequest, error) {
	req := &SearchRequest{Criteria: &imap.SearchCriteria{}}
	start := p.pos
	if p.word() == "RETURN" && p.SP() {
		opts, partial, update, err := p.ReturnOptions(true)
		if err != nil {
			return nil, err
		}
		req.Options, req.Partial, req.Update = opts, partial, update
		if !p.SP() {
			return nil, errSyntax
		}
		start = p.pos
	} else {
		p.pos = start
	}
	if p.word() == "CHARSET" && p.SP() {
		cs, err := p.AString()
		if err != nil || !p.SP() {
			return nil, errSyntax
		}
		req.Charset = cs
	} else {
		p.pos = start
	}
	for {
		if err := p.searchKey(req.Criteria, 0); err != nil {
			return nil, err
		}
		if !p.SP() {
			break
		}
	}
	return req, nil
}

func (p *Parser) searchKey(c *imap.SearchCriteria, depth int) error {
	if depth > p.MaxDepth {
		return ErrDepth
	}
	if p.peek() == '(' {
		return p.List(func() error { return p.searchKey(c, depth+1) })
	}
	ch := p.peek()
	if ch >= '0' && ch <= '9' || ch == '*' || ch == '$' {
		set, err := p.NumSet(false)
		if err != nil {
			return err
		}
		if imap.IsSearchRes(set) {
			// RFC 5182 2.1: "$" is the saved result, which imapd keeps
			// as UIDs.
			c.UID = append(c.UID, imap.SearchRes())
		} else {
			c.SeqNum = append(c.SeqNum, set.(imap.SeqSet))
		}
		return nil
	}
	key := p.word()
	arg := func() (string, error) {
		if !p.SP() {
			return "", errSyntax
		}
		return p.AString()
	}
	date := func() (time.Time, error) {
		if !p.SP() {
			return time.Time{}, errSyntax
		}
		return p.Date()
	}
	flag := func(f imap.Flag, not bool) {
		if not {
			c.NotFlag = append(c.NotFlag, f)
		} else {
			c.Flag = append(c.Flag, f)
		}
	}
	var err error
	switch key {
	case "ALL":
	case "ANSWERED", "DELETED", "DRAFT", "FLAGGED", "SEEN", "RECENT":
		flag(canonFlag("\\"+key), false)
	case "UNANSWERED", "UNDELETED", "UNDRAFT", "UNFLAGGED", "UNSEEN":
		flag(canonFlag("\\"+key[2:]), true)
	case "NEW":
		// RFC 3501 6.4.4: NEW is RECENT UNSEEN; OLD is NOT RECENT.
		flag("\\Recent", false)
		flag(imap.FlagSeen, true)
	case "OLD":
		flag("\\Recent", true)
	case "KEYWORD", "UNKEYWORD":
		if !p.SP() {
			return errSyntax
		}
		f, ferr := p.Flag()
		if ferr != nil {
			return ferr
		}
		flag(f, key == "UNKEYWORD")
	case "BCC", "CC", "FROM", "SUBJECT", "TO":
		var s string
		if s, err = arg(); err == nil {
			c.Header = append(c.Header, imap.SearchCriteriaHeaderField{Key: addressHeader[key], Value: s})
		}
	case "BODY", "TEXT":
		var s string
		if s, err = arg(); err == nil {
			if key == "BODY" {
				c.Body = append(c.Body, s)
			} else {
				c.Text = append(c.Text, s)
			}
		}
	case "HEADER":
		var k, v string
		if k, err = arg(); err == nil {
			if strings.HasPrefix(k, ":") {
				// No field name has a colon (RFC 5322 2.2), so this
				// matches nothing; it must not pass for one of the
				// criteria below that travel as header names.
				k = "\x00" + k
			}
			if v, err = arg(); err == nil {
				c.Header = append(c.Header, imap.SearchCriteriaHeaderField{Key: k, Value: v})
			}
		}
	case "BEFORE", "ON", "SINCE", "SENTBEFORE", "SENTON", "SENTSINCE":
		var t time.Time
		if t, err = date(); err != nil {
			return err
		}
		sub := &imap.SearchCriteria{}
		switch key {
		case "BEFORE":
			sub.Before = t
		case "ON":
			sub.Since, sub.Before = t, t.AddDate(0, 0, 1)
		case "SINCE":
			sub.Since = t
		case "SENTBEFORE":
			sub.SentBefore = t
		case "SENTON":
			sub.SentSince, sub.SentBefore = t, t.AddDate(0, 0, 1)
		case "SENTSINCE":
			sub.SentSince = t
		}
		c.And(sub)
	case "LARGER", "SMALLER":
		if !p.SP() {
			return errSyntax
		}
		var n int64
		if n, err = p.Number64(); err == nil {
			sub := &imap.SearchCriteria{}
			if key == "LARGER" {
				sub.Larger = n
			} else {
				sub.Smaller = n
			}
			c.And(sub)
		}
	case "UID":
		if !p.SP() {
			return errSyntax
		}
		var set imap.NumSet
		if set, err = p.NumSet(true); err == nil {
			c.UID = append(c.UID, set.(imap.UIDSet))
		}
	case "MODSEQ": // RFC 7162 3.1.5
		err = p.searchModSeq(c)
	case "EMAILID", "THREADID": // RFC 8474 6
		if !p.SP() {
			return errSyntax
		}
		var id string
		if id, err = p.Atom(); err == nil {
			name := SearchEmailID
			if key == "THREADID" {
				name = SearchThreadID
			}
			c.Header = append(c.Header, imap.SearchCriteriaHeaderField{Key: name, Value: id})
		}
	case "SAVEDBEFORE", "SAVEDON", "SAVEDSINCE": // RFC 8514 4.2
		var t time.Time
		if t, err = date(); err != nil {
			return err
		}
		if key != "SAVEDSINCE" {
			end := t
			if key == "SAVEDON" {
				end = t.AddDate(0, 0, 1)
			}
			c.Header = append(c.Header, imap.SearchCriteriaHeaderField{Key: SearchSavedBefore, Value: end.Format(time.DateOnly)})
		}
		if key != "SAVEDBEFORE" {
			c.Header = append(c.Header, imap.SearchCriteriaHeaderField{Key: SearchSavedSince, Value: t.Format(time.DateOnly)})
		}
	case "SAVEDATESUPPORTED":
		// RFC 8514 4.3: every mailbox keeps save dates, so this
		// matches every message, as ALL does.
	case "NOT":
		if !p.SP() {
			return errSyntax
		}
		var sub imap.SearchCriteria
		if err = p.searchKey(&sub, depth+1); err == nil {
			c.Not = append(c.Not, sub)
		}
	case "OR":
		var pair [2]imap.SearchCriteria
		for i := range pair {
			if !p.SP() {
				return errSyntax
			}
			if err = p.searchKey(&pair[i], depth+1); err != nil {
				return err
			}
		}
		c.Or = append(c.Or, pair)
	default:
		return Bad("Unknown search key")
	}
	return err
}

// ListRequest is a parsed LIST or LSUB.
type ListRequest struct {
	Ref      string
	Patterns []string
	Options  *imap.ListOptions
	Extended bool // RFC 5258: selection or return options were given
}

// List reads LIST's arguments (RFC 9051 6.3.9, RFC 5258 LIST-EXTENDED,
// RFC 5819 LIST-STATUS, RFC 6154 SPECIAL-USE).
func (p *Parser) ListArgs() (*ListRequest, error) {
	req := &ListRequest{Options: &imap.ListOptions{}}
	o := req.Options
	if p.peek() == '(' {
		req.Extended = true
		err := p.List(func() error {
			switch p.word() {
			case "SUBSCRIBED":
				o.SelectSubscribed = true
			case "REMOTE":
				o.SelectRemote = true
			case "RECURSIVEMATCH":
				o.SelectRecursiveMatch = true
			case "SPECIAL-USE":
				o.SelectSpecialUse = true
			default:
				return Bad("Unknown LIST selection option")
			}
			return nil
		})
		if err != nil || !p.SP() {
			return nil, errSyntax
		}
		// RFC 5258 3.1: RECURSIVEMATCH alone is an error.
		if o.SelectRecursiveMatch && !o.SelectSubscribed && !o.SelectSpecialUse {
			return nil, Bad("RECURSIVEMATCH needs another selection option")
		}
	}
	ref, err := p.AString()
	if err != nil || !p.SP() {
		return nil, errSyntax
	}
	if req.Ref, err = p.decodePattern(ref); err != nil {
		return nil, err
	}
	if p.peek() == '(' {
		req.Extended = true
		err = p.List(func() error {
			pat, err := p.listMailbox()
			req.Patterns = append(req.Patterns, pat)
			return err
		})
	} else {
		var pat string
		pat, err = p.listMailbox()
		req.Patterns = append(req.Patterns, pat)
	}
	if err != nil {
		return nil, err
	}
	if p.SP() {
		if p.word() != "RETURN" || !p.SP() {
			return nil, errSyntax
		}
		req.Extended = true
		err := p.List(func() error {
			switch p.word() {
			case "SUBSCRIBED":
				o.ReturnSubscribed = true
			case "CHILDREN":
				o.ReturnChildren = true
			case "SPECIAL-USE":
				o.ReturnSpecialUse = true
			case "STATUS":
				if !p.SP() {
					return errSyntax
				}
				st, err := p.StatusItems()
				o.ReturnStatus = st
				return err
			default:
				return Bad("Unknown LIST return option")
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return req, nil
}

// listMailbox reads a LIST pattern: a string, or list-chars (atom
// characters, "%", "*" and "]").
func (p *Parser) listMailbox() (string, error) {
	if p.peek() == '"' || p.atLiteral() {
		s, err := p.String()
		if err != nil {
			return "", err
		}
		return p.decodePattern(s)
	}
	start := p.pos
	for p.pos < len(p.c.Text) {
		ch := p.c.Text[p.pos]
		if !isAStringChar(ch) && ch != '%' && ch != '*' {
			break
		}
		p.pos++
	}
	if p.pos == start {
		return "", errSyntax
	}
	return p.decodePattern(string(p.c.Text[start:p.pos]))
}

// decodePattern decodes a reference or pattern like a mailbox name, but
// keeps the wildcards and lets an empty string through.
func (p *Parser) decodePattern(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	if p.UTF8 {
		return s, nil
	}
	d, err := DecodeUTF7(s)
	if err != nil {
		// A pattern that is no valid name matches no mailbox; LIST
		// answers OK with nothing rather than failing.
		return s, nil
	}
	return d, nil
}

// StatusItems reads a list of STATUS items (RFC 9051 6.3.11).
func (p *Parser) StatusItems() (*imap.StatusOptions, error) {
	o := &imap.StatusOptions{}
	err := p.List(func() error {
		switch p.word() {
		case "MESSAGES":
			o.NumMessages = true
		case "RECENT":
			o.NumRecent = true
		case "UIDNEXT":
			o.UIDNext = true
		case "UIDVALIDITY":
			o.UIDValidity = true
		case "UNSEEN":
			o.NumUnseen = true
		case "DELETED":
			o.NumDeleted = true
		case "SIZE":
			o.Size = true
		case "APPENDLIMIT":
			o.AppendLimit = true
		case "HIGHESTMODSEQ": // RFC 7162 3.1.6
			o.HighestModSeq = true
		case "MAILBOXID": // RFC 8474 4.2
			p.StatusMailboxID = true
		case "DELETED-STORAGE": // RFC 9208 4.2
			o.DeletedStorage = true
		default:
			return Bad("Unknown STATUS item")
		}
		return nil
	})
	return o, err
}

// CreateOptions reads CREATE's optional parameters (RFC 6154 3: USE).
func (p *Parser) CreateOptions() (*imap.CreateOptions, error) {
	o := &imap.CreateOptions{}
	if !p.SP() {
		return o, nil
	}
	err := p.List(func() error {
		if p.word() != "USE" || !p.SP() {
			return Bad("Unknown CREATE parameter")
		}
		return p.List(func() error {
			if !p.Special('\\') {
				return Bad("Invalid special-use attribute")
			}
			a, err := p.Atom()
			o.SpecialUse = append(o.SpecialUse, imap.MailboxAttr("\\"+a))
			return err
		})
	})
	return o, err
}

// ID reads ID's parameter list (RFC 2971 3.1): NIL or pairs of string
// and nstring, at most 30 pairs.
func (p *Parser) ID() (map[string]string, error) {
	if !p.SP() {
		return nil, errSyntax
	}
	if p.peek() != '(' {
		if a, err := p.Atom(); err != nil || !strings.EqualFold(a, "NIL") {
			return nil, errSyntax
		}
		return nil, nil
	}
	m := make(map[string]string)
	err := p.List(func() error {
		k, err := p.String()
		if err != nil || !p.SP() {
			return errSyntax
		}
		v, _, err := p.NString()
		if err != nil {
			return err
		}
		// RFC 2971 3.3: field strings at most 30 octets, values at
		// most 1024, at most 30 pairs.
		if len(k) > 30 || len(v) > 1024 || len(m) >= 30 {
			return Bad("ID parameters too long")
		}
		m[k] = v
		return nil
	})
	return m, err
}

// Search criteria that imap.SearchCriteria has no field for travel in its
// Header list under these names, which no header field can have (RFC 5322
// 2.2: a field name has no colon); imapd's matcher takes them out first.
// The saved-date values are dates as "2006-01-02".
const (
	SearchEmailID     = ":EMAILID"     // RFC 8474 6
	SearchThreadID    = ":THREADID"    // RFC 8474 6
	SearchSavedBefore = ":SAVEDBEFORE" // RFC 8514 4.2: save date before the day
	SearchSavedSince  = ":SAVEDSINCE"  // RFC 8514 4.2: save date on or after the day
)

// addressHeader is the header field each address SEARCH key matches
// (RFC 9051 6.4.4), spelt as the field is usually written.
var addressHeader = map[string]string{"BCC": "Bcc", "CC": "Cc", "FROM": "From", "SUBJECT": "Subject", "TO": "To"}
