package wire

import (
	"errors"
	"net/url"
	"strconv"
	"strings"

	"github.com/emersion/go-imap/v2"
)

// IMAPURL is an IMAP URL naming a message or a part of one (RFC 5092 3:
// imessagepart), as CATENATE takes them (RFC 4469 3).
type IMAPURL struct {
	// Absolute is set for "imap://[user[;AUTH=…]@]host[:port]/…"; the
	// other accepted form is the absolute path "/mailbox…" on the server
	// the client is talking to (RFC 4469 3, RFC 5092 7.1).
	Absolute bool
	User     string // percent-decoded; "" when absent
	Host     string
	Port     string
	Mailbox  string // percent-decoded UTF-8 (RFC 5092 3.2)
	// UIDValidity is 0 when the URL does not give it.
	UIDValidity uint32
	UID         uint32
	// Section is the body section (RFC 5092 3.3 enc-section, the
	// section-text of FETCH), with ;PARTIAL= as its partial range; a
	// URL without ;SECTION= names the whole message.
	Section imap.FetchItemBodySection
}

// ErrURL is the error of a URL that is not an IMAP URL of a message part.
var ErrURL = errors.New("wire: not an IMAP URL of a message")

// ParseIMAPURL parses the URLs CATENATE accepts. URLAUTH (RFC 4467) URLs
// and URLs naming anything but a message or part are ErrURL.
func ParseIMAPURL(s string) (*IMAPURL, error) {
	u := &IMAPURL{}
	rest := s
	if len(rest) >= 7 && strings.EqualFold(rest[:7], "imap://") {
		u.Absolute = true
		rest = rest[7:]
		slash := strings.IndexByte(rest, '/')
		if slash < 0 {
			return nil, ErrURL
		}
		server := rest[:slash]
		rest = rest[slash:]
		if at := strings.LastIndexByte(server, '@'); at >= 0 {
			user := server[:at]
			if i := indexFold(user, ";AUTH="); i >= 0 {
				user = user[:i]
			}
			var err error
			if u.User, err = url.PathUnescape(user); err != nil {
				return nil, ErrURL
			}
			server = server[at+1:]
		}
		u.Host = server
		if strings.HasPrefix(server, "[") {
			// RFC 3986 3.2.2: an IPv6 literal.
			end := strings.IndexByte(server, ']')
			if end < 0 {
				return nil, ErrURL
			}
			u.Host, u.Port = server[1:end], strings.TrimPrefix(server[end+1:], ":")
		} else if i := strings.LastIndexByte(server, ':'); i >= 0 {
			u.Host, u.Port = server[:i], server[i+1:]
		}
		if u.Host == "" {
			return nil, ErrURL
		}
	}
	if !strings.HasPrefix(rest, "/") {
		return nil, ErrURL
	}
	rest = rest[1:]
	i := indexFold(rest, "/;UID=")
	if i <= 0 {
		return nil, ErrURL
	}
	mbox := rest[:i]
	rest = rest[i+1:]
	if j := indexFold(mbox, ";UIDVALIDITY="); j >= 0 {
		n, err := nzNumber(mbox[j+len(";UIDVALIDITY="):])
		if err != nil {
			return nil, ErrURL
		}
		u.UIDValidity = n
		mbox = mbox[:j]
	}
	name, err := url.PathUnescape(mbox)
	if err != nil || name == "" || !validUTF8(name) {
		return nil, ErrURL
	}
	if strings.EqualFold(name, "INBOX") {
		name = "INBOX"
	}
	u.Mailbox = name
	// ";UID=n" ["/;SECTION=…"] ["/;PARTIAL=…"], and nothing else: no
	// URLAUTH, which CATENATE would have to verify (RFC 4467).
	segs := strings.Split(rest, "/")
	if u.UID, err = nzNumber(cutParam(segs[0], ";UID=")); err != nil {
		return nil, ErrURL
	}
	segs = segs[1:]
	if len(segs) > 0 && hasParam(segs[0], ";SECTION=") {
		spec, err := url.PathUnescape(cutParam(segs[0], ";SECTION="))
		if err != nil || spec == "" {
			return nil, ErrURL
		}
		c := &Command{Text: []byte("[" + spec + "]")}
		p := &Parser{c: c}
		if err := p.section(&u.Section); err != nil || p.pos != len(c.Text) {
			return nil, ErrURL
		}
		segs = segs[1:]
	}
	if len(segs) > 0 && hasParam(segs[0], ";PARTIAL=") {
		off, size, ok := strings.Cut(cutParam(segs[0], ";PARTIAL="), ".")
		o, err := strconv.ParseUint(off, 10, 32)
		if err != nil {
			return nil, ErrURL
		}
		partial := &imap.SectionPartial{Offset: int64(o), Size: 1 << 62}
		if ok {
			n, err := nzNumber(size)
			if err != nil {
				return nil, ErrURL
			}
			partial.Size = int64(n)
		}
		u.Section.Partial = partial
		segs = segs[1:]
	}
	if len(segs) > 0 {
		return nil, ErrURL
	}
	return u, nil
}

// indexFold is strings.Index with ASCII letters matched in either case
// (the URL's parameter names); other octets, valid UTF-8 or not, match
// only themselves.
func indexFold(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(sub)], sub) {
			return i
		}
	}
	return -1
}

func hasParam(seg, name string) bool {
	return len(seg) >= len(name) && strings.EqualFold(seg[:len(name)], name)
}

// cutParam returns the value of ";NAME=value", or "" when seg is another.
func cutParam(seg, name string) string {
	if !hasParam(seg, name) {
		return ""
	}
	return seg[len(name):]
}

// nzNumber parses a nz-number (RFC 9051 9) of 32 bits.
func nzNumber(s string) (uint32, error) {
	if s == "" || s[0] < '1' || s[0] > '9' {
		return 0, ErrURL
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, ErrURL
	}
	return uint32(n), nil
}
