package wire

import (
	"strconv"
	"strings"

	"github.com/emersion/go-imap/v2"
)

// SortKey is one sort criterion of SORT (RFC 5256 3).
type SortKey struct {
	Key     string // ARRIVAL, CC, DATE, FROM, SIZE, SUBJECT, TO, DISPLAYFROM, DISPLAYTO
	Reverse bool
}

// PartialRange is RFC 9394's PARTIAL return option: positions First to
// Last (1-based) of the result, counted from its end when negative.
type PartialRange struct {
	First, Last int32 // First <= Last in absolute value, same sign
}

// String writes the range as RFC 9394 3.1's partial-range.
func (r PartialRange) String() string {
	return strconv.Itoa(int(r.First)) + ":" + strconv.Itoa(int(r.Last))
}

// SortRequest is a parsed SORT (RFC 5256 3) with ESORT's RETURN options
// (RFC 5267 3) and PARTIAL (RFC 9394).
type SortRequest struct {
	Keys     []SortKey
	Charset  string
	Criteria *imap.SearchCriteria
	Options  *imap.SearchOptions // nil without RETURN
	Partial  *PartialRange
	Update   bool // RFC 5267 4.2 RETURN (UPDATE)
}

// ThreadRequest is a parsed THREAD (RFC 5256 3).
type ThreadRequest struct {
	Algorithm string // REFERENCES or ORDEREDSUBJECT, upper case
	Charset   string
	Criteria  *imap.SearchCriteria
}

// sortKeys are the keys of RFC 5256 3 and RFC 5957 (DISPLAYFROM,
// DISPLAYTO).
var sortKeys = map[string]bool{"ARRIVAL": true, "CC": true, "DATE": true, "FROM": true, "SIZE": true,
	"SUBJECT": true, "TO": true, "DISPLAYFROM": true, "DISPLAYTO": true}

// Sort reads SORT's arguments: [RETURN (opts)] (sort-criteria) charset
// search-key... (RFC 5256 5, RFC 5267 3).
func (p *Parser) Sort() (*SortRequest, error) {
	req := &SortRequest{Criteria: &imap.SearchCriteria{}}
	start := p.pos
	if p.word() == "RETURN" && p.SP() {
		opts, partial, update, err := p.ReturnOptions(false)
		if err != nil {
			return nil, err
		}
		req.Options, req.Partial, req.Update = opts, partial, update
		if !p.SP() {
			return nil, errSyntax
		}
	} else {
		p.pos = start
	}
	err := p.List(func() error {
		k := SortKey{Key: p.word()}
		if k.Key == "REVERSE" {
			if !p.SP() {
				return errSyntax
			}
			k = SortKey{Key: p.word(), Reverse: true}
		}
		if !sortKeys[k.Key] {
			return Bad("Unknown sort key %q", k.Key)
		}
		req.Keys = append(req.Keys, k)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(req.Keys) == 0 {
		return nil, Bad("SORT needs at least one sort key")
	}
	if req.Charset, err = p.searchCharset(); err != nil {
		return nil, err
	}
	if err := p.searchKeys(req.Criteria); err != nil {
		return nil, err
	}
	return req, nil
}

// Thread reads THREAD's arguments: algorithm charset search-key... (RFC
// 5256 5).
func (p *Parser) Thread() (*ThreadRequest, error) {
	req := &ThreadRequest{Criteria: &imap.SearchCriteria{}}
	alg, err := p.Atom()
	if err != nil {
		return nil, Bad("THREAD needs an algorithm")
	}
	req.Algorithm = strings.ToUpper(alg)
	if req.Algorithm != "REFERENCES" && req.Algorithm != "ORDEREDSUBJECT" {
		return nil, Bad("Unknown threading algorithm %q", alg)
	}
	if req.Charset, err = p.searchCharset(); err != nil {
		return nil, err
	}
	if err := p.searchKeys(req.Criteria); err != nil {
		return nil, err
	}
	return req, nil
}

// searchCharset reads the charset SORT and THREAD require (RFC 5256 3)
// and the space after it.
func (p *Parser) searchCharset() (string, error) {
	if !p.SP() {
		return "", errSyntax
	}
	cs, err := p.AString()
	if err != nil || !p.SP() {
		return "", Bad("Charset and search criteria expected")
	}
	return cs, nil
}

// searchKeys reads one or more search keys separated by spaces.
func (p *Parser) searchKeys(c *imap.SearchCriteria) error {
	for {
		if err := p.searchKey(c, 0); err != nil {
			return err
		}
		if !p.SP() {
			return nil
		}
	}
}

// ReturnOptions reads the list of search-return-opts (RFC 4731 3.1, RFC
// 5182 2, RFC 9394 3.1, RFC 5267 4.1 CONTEXT and UPDATE); save says SAVE
// is allowed.
func (p *Parser) ReturnOptions(save bool) (*imap.SearchOptions, *PartialRange, bool, error) {
	opts := &imap.SearchOptions{}
	var partial *PartialRange
	update := false
	err := p.List(func() error {
		switch w := p.word(); w {
		case "MIN":
			opts.ReturnMin = true
		case "MAX":
			opts.ReturnMax = true
		case "ALL":
			opts.ReturnAll = true
		case "COUNT":
			opts.ReturnCount = true
		case "SAVE":
			if !save {
				return Bad("Unknown RETURN option %q", w)
			}
			opts.ReturnSave = true
		case "PARTIAL":
			if !p.SP() {
				return errSyntax
			}
			r, err := p.partialRange()
			if err != nil {
				return err
			}
			partial = r
		case "CONTEXT":
			// RFC 5267 4.1: a hint that more updates may be asked for.
		case "UPDATE":
			update = true
		default:
			return Bad("Unknown RETURN option %q", w)
		}
		return nil
	})
	if err != nil {
		return nil, nil, false, err
	}
	// RFC 9394 3.1: PARTIAL and ALL are mutually exclusive.
	if partial != nil && opts.ReturnAll {
		return nil, nil, false, Bad("PARTIAL and ALL are mutually exclusive")
	}
	// RFC 5267 4.2: the result of SAVE does not follow updates.
	if update && opts.ReturnSave {
		return nil, nil, false, Bad("UPDATE and SAVE are mutually exclusive")
	}
	return opts, partial, update, nil
}

// CancelUpdate reads CANCELUPDATE's tags (RFC 5267 4.3).
func (p *Parser) CancelUpdate() ([]string, error) {
	var tags []string
	for p.SP() {
		t, err := p.String()
		if err != nil {
			return nil, err
		}
		tags = append(tags, t)
	}
	if len(tags) == 0 {
		return nil, Bad("CANCELUPDATE needs tags")
	}
	return tags, nil
}

// partialRange reads RFC 9394's partial-range: "1:100" or "-1:-100"; the
// two ends may come in either order but must have the same sign.
func (p *Parser) partialRange() (*PartialRange, error) {
	start := p.pos
	for p.pos < len(p.c.Text) {
		ch := p.c.Text[p.pos]
		if !(ch >= '0' && ch <= '9' || ch == '-' || ch == ':') {
			break
		}
		p.pos++
	}
	a, b, ok := strings.Cut(string(p.c.Text[start:p.pos]), ":")
	bad := Bad("Invalid PARTIAL range")
	if !ok {
		return nil, bad
	}
	x, err1 := strconv.ParseInt(a, 10, 32)
	y, err2 := strconv.ParseInt(b, 10, 32)
	if err1 != nil || err2 != nil || x == 0 || y == 0 || (x < 0) != (y < 0) {
		return nil, bad
	}
	if x < 0 {
		if x < y {
			x, y = y, x
		}
	} else if x > y {
		x, y = y, x
	}
	return &PartialRange{First: int32(x), Last: int32(y)}, nil
}
