package wire

import (
	"bufio"
	"mime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
)

// Encoder writes responses straight into a connection's buffered writer.
// Write errors stay in the bufio.Writer and come out of its Flush.
type Encoder struct {
	W *bufio.Writer
	// UTF8 says mailbox names are sent as UTF-8 (RFC 6855 3).
	UTF8 bool
	num  [24]byte
}

// NewEncoder writes to w.
func NewEncoder(w *bufio.Writer) *Encoder { return &Encoder{W: w} }

// Raw writes s as it is.
func (e *Encoder) Raw(s string) *Encoder { e.W.WriteString(s); return e }

// Atom writes an atom (the caller knows it is one).
func (e *Encoder) Atom(s string) *Encoder { e.W.WriteString(s); return e }

// SP writes a space.
func (e *Encoder) SP() *Encoder { e.W.WriteByte(' '); return e }

// Byte writes one special character.
func (e *Encoder) Byte(ch byte) *Encoder { e.W.WriteByte(ch); return e }

// CRLF ends a response line.
func (e *Encoder) CRLF() *Encoder { e.W.WriteString("\r\n"); return e }

// Number writes an unsigned number.
func (e *Encoder) Number(n uint32) *Encoder {
	e.W.Write(strconv.AppendUint(e.num[:0], uint64(n), 10))
	return e
}

// Number64 writes a non-negative 64-bit number.
func (e *Encoder) Number64(n int64) *Encoder {
	e.W.Write(strconv.AppendInt(e.num[:0], n, 10))
	return e
}

// quotable says whether s can be a quoted string: 7-bit (8-bit only in
// UTF-8 mode), no CR, LF or NUL (RFC 9051 9), and short.
func quotable(s string, utf8 bool) bool {
	if len(s) > 1024 {
		return false
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if ch == '\r' || ch == '\n' || ch == 0 || (ch >= 0x80 && !utf8) {
			return false
		}
	}
	return true
}

// String writes s as a quoted string, or as a literal when it cannot be
// quoted.
func (e *Encoder) String(s string) *Encoder {
	if !quotable(s, false) {
		e.W.WriteByte('{')
		e.Number64(int64(len(s)))
		e.W.WriteString("}\r\n")
		e.W.WriteString(s)
		return e
	}
	e.W.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			e.W.WriteByte('\\')
		}
		e.W.WriteByte(s[i])
	}
	e.W.WriteByte('"')
	return e
}

// AString writes s as an atom when it can be one, else as a string.
func (e *Encoder) AString(s string) *Encoder {
	atom := s != ""
	for i := 0; i < len(s) && atom; i++ {
		atom = isAtomChar(s[i])
	}
	if atom {
		return e.Atom(s)
	}
	return e.String(s)
}

// NString writes s, or NIL when it is empty.
func (e *Encoder) NString(s string) *Encoder {
	if s == "" {
		return e.Atom("NIL")
	}
	return e.String(s)
}

// Mailbox writes a mailbox name: modified UTF-7 (RFC 3501 5.1.3), or
// UTF-8 after ENABLE UTF8=ACCEPT (RFC 6855 3).
func (e *Encoder) Mailbox(name string) *Encoder {
	if strings.EqualFold(name, "INBOX") {
		return e.Atom("INBOX")
	}
	if !e.UTF8 {
		return e.String(EncodeUTF7(name))
	}
	if quotable(name, true) {
		e.W.WriteByte('"')
		for i := 0; i < len(name); i++ {
			if name[i] == '"' || name[i] == '\\' {
				e.W.WriteByte('\\')
			}
			e.W.WriteByte(name[i])
		}
		e.W.WriteByte('"')
		return e
	}
	return e.String(name)
}

// LiteralHeader writes the announcement of a literal of n octets; the
// caller writes the octets next. binary makes it a literal8 (RFC 3516).
func (e *Encoder) LiteralHeader(n int64, binary bool) *Encoder {
	if binary {
		e.W.WriteByte('~')
	}
	e.W.WriteByte('{')
	e.Number64(n)
	e.W.WriteString("}\r\n")
	return e
}

// Flags writes a flag list.
func (e *Encoder) Flags(flags []imap.Flag) *Encoder {
	e.W.WriteByte('(')
	for i, f := range flags {
		if i > 0 {
			e.W.WriteByte(' ')
		}
		e.W.WriteString(string(f))
	}
	e.W.WriteByte(')')
	return e
}

// FlagStrings writes a flag list from the store's strings, without
// converting it first.
func (e *Encoder) FlagStrings(flags []string) *Encoder {
	e.W.WriteByte('(')
	for i, f := range flags {
		if i > 0 {
			e.W.WriteByte(' ')
		}
		e.W.WriteString(f)
	}
	e.W.WriteByte(')')
	return e
}

// DateTimeLayout is RFC 9051 9's date-time.
const DateTimeLayout = "02-Jan-2006 15:04:05 -0700"

// DateTime writes a quoted date-time.
func (e *Encoder) DateTime(t time.Time) *Encoder {
	e.W.WriteByte('"')
	e.W.WriteString(t.Format(DateTimeLayout))
	e.W.WriteByte('"')
	return e
}

// Code writes a response code with its brackets and a trailing space.
func (e *Encoder) Code(code imap.ResponseCode, arg string) *Encoder {
	if code == "" {
		return e
	}
	e.W.WriteByte('[')
	e.W.WriteString(string(code))
	if arg != "" {
		e.W.WriteByte(' ')
		e.W.WriteString(arg)
	}
	e.W.WriteString("] ")
	return e
}

// Text writes human-readable text, with CR and LF taken out so that it
// cannot end the line early.
func (e *Encoder) Text(s string) *Encoder {
	if strings.ContainsAny(s, "\r\n") {
		s = strings.NewReplacer("\r", " ", "\n", " ").Replace(s)
	}
	if s == "" {
		s = "Done"
	}
	e.W.WriteString(s)
	return e
}

// StatusResponse writes a complete status response line: tag (or "*"),
// type, optional code, text.
func (e *Encoder) StatusResponse(tag string, typ imap.StatusResponseType, code imap.ResponseCode, text string) *Encoder {
	e.Atom(tag).SP().Atom(string(typ)).SP().Code(code, "").Text(text).CRLF()
	return e
}

// envelopeDateLayout is RFC 5322 3.3's date, as ENVELOPE carries it.
const envelopeDateLayout = "Mon, 02 Jan 2006 15:04:05 -0700"

// Routes are the source routes (RFC 5322 4.4 obs-route, the "adl" of
// RFC 9051's address) of an envelope's address lists, which imap.Address
// has no field for: for From, Sender, Reply-To, To, Cc and Bcc in that
// order, one route per address ("" for none), parallel to the list.
type Routes [6][]string

// Envelope writes an ENVELOPE structure (RFC 9051 7.5.2).
func (e *Encoder) Envelope(env *imap.Envelope) *Encoder {
	return e.EnvelopeRoutes(env, nil)
}

// EnvelopeRoutes writes an ENVELOPE whose addresses may have source
// routes.
func (e *Encoder) EnvelopeRoutes(env *imap.Envelope, routes *Routes) *Encoder {
	if env == nil {
		env = &imap.Envelope{}
	}
	sender, replyTo := env.Sender, env.ReplyTo
	if sender == nil {
		sender = env.From
	}
	if replyTo == nil {
		replyTo = env.From
	}
	e.Byte('(')
	if env.Date.IsZero() {
		e.Atom("NIL")
	} else {
		e.String(env.Date.Format(envelopeDateLayout))
	}
	e.SP().NString(mime.QEncoding.Encode("utf-8", env.Subject))
	for i, l := range [][]imap.Address{env.From, sender, replyTo, env.To, env.Cc, env.Bcc} {
		var r []string
		if routes != nil {
			r = routes[i]
			if r == nil && (i == 1 && env.Sender == nil || i == 2 && env.ReplyTo == nil) {
				r = routes[0] // Sender and Reply-To default to From
			}
		}
		e.SP().addressList(l, r)
	}
	e.SP()
	if len(env.InReplyTo) > 0 {
		e.String("<" + strings.Join(env.InReplyTo, "> <") + ">")
	} else {
		e.Atom("NIL")
	}
	e.SP()
	if env.MessageID != "" {
		e.String("<" + env.MessageID + ">")
	} else {
		e.Atom("NIL")
	}
	return e.Byte(')')
}

func (e *Encoder) addressList(l []imap.Address, routes []string) {
	if len(l) == 0 {
		e.Atom("NIL")
		return
	}
	e.Byte('(')
	for i, a := range l {
		e.Byte('(').NString(mime.QEncoding.Encode("utf-8", a.Name)).SP()
		if i < len(routes) {
			e.NString(routes[i])
		} else {
			e.Atom("NIL")
		}
		e.SP().NString(a.Mailbox).SP().NString(a.Host).Byte(')')
	}
	e.Byte(')')
}

// BodyStructure writes BODY (extended false) or BODYSTRUCTURE (RFC 9051
// 7.5.2).
func (e *Encoder) BodyStructure(bs imap.BodyStructure, extended bool) *Encoder {
	e.Byte('(')
	switch bs := bs.(type) {
	case *imap.BodyStructureSinglePart:
		e.String(bs.Type).SP().String(bs.Subtype).SP().params(bs.Params)
		e.SP().NString(bs.ID).SP().NString(bs.Description).SP()
		if bs.Encoding == "" {
			e.String("7bit")
		} else {
			// Some clients (Outlook for iOS) break on upper case.
			e.String(strings.ToLower(bs.Encoding))
		}
		e.SP().Number(bs.Size)
		if msg := bs.MessageRFC822; msg != nil {
			e.SP().Envelope(msg.Envelope).SP().BodyStructure(msg.BodyStructure, extended)
			e.SP().Number64(msg.NumLines)
		} else if bs.Text != nil {
			e.SP().Number64(bs.Text.NumLines)
		}
		if extended {
			ext := bs.Extended
			if ext == nil {
				ext = &imap.BodyStructureSinglePartExt{}
			}
			e.SP().Atom("NIL").SP().disposition(ext.Disposition).SP().language(ext.Language)
			e.SP().NString(ext.Location)
		}
	case *imap.BodyStructureMultiPart:
		for _, child := range bs.Children {
			// body-type-mpart has no SP between parts.
			e.BodyStructure(child, extended)
		}
		e.SP().String(bs.Subtype)
		if extended {
			ext := bs.Extended
			if ext == nil {
				ext = &imap.BodyStructureMultiPartExt{}
			}
			e.SP().params(ext.Params).SP().disposition(ext.Disposition).SP().language(ext.Language)
			e.SP().NString(ext.Location)
		}
	default:
		e.String("text").SP().String("plain").SP().Atom("NIL NIL NIL").SP().String("7bit").SP().Number(0).SP().Number(0)
	}
	return e.Byte(')')
}

func (e *Encoder) params(params map[string]string) *Encoder {
	if len(params) == 0 {
		return e.Atom("NIL")
	}
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	e.Byte('(')
	for i, k := range keys {
		if i > 0 {
			e.SP()
		}
		e.String(k).SP().String(params[k])
	}
	return e.Byte(')')
}

func (e *Encoder) disposition(d *imap.BodyStructureDisposition) *Encoder {
	if d == nil {
		return e.Atom("NIL")
	}
	return e.Byte('(').String(d.Value).SP().params(d.Params).Byte(')')
}

func (e *Encoder) language(l []string) *Encoder {
	if len(l) == 0 {
		return e.Atom("NIL")
	}
	e.Byte('(')
	for i, s := range l {
		if i > 0 {
			e.SP()
		}
		e.String(s)
	}
	return e.Byte(')')
}

// SectionPart writes "1.2.3".
func (e *Encoder) SectionPart(part []int) *Encoder {
	for i, n := range part {
		if i > 0 {
			e.Byte('.')
		}
		e.Number(uint32(n))
	}
	return e
}

// BodySectionName writes BODY[section]<origin> as a FETCH response names
// it (RFC 9051 7.5.2: the origin, not the length, and no PEEK).
func (e *Encoder) BodySectionName(bs *imap.FetchItemBodySection) *Encoder {
	e.Atom("BODY[").SectionPart(bs.Part)
	if len(bs.Part) > 0 && bs.Specifier != imap.PartSpecifierNone {
		e.Byte('.')
	}
	if bs.Specifier != imap.PartSpecifierNone {
		e.Atom(string(bs.Specifier))
		list := bs.HeaderFields
		if len(list) > 0 {
			e.Atom(".FIELDS")
		} else if list = bs.HeaderFieldsNot; len(list) > 0 {
			e.Atom(".FIELDS.NOT")
		}
		if len(list) > 0 {
			e.SP().Byte('(')
			for i, f := range list {
				if i > 0 {
					e.SP()
				}
				e.String(f)
			}
			e.Byte(')')
		}
	}
	e.Byte(']')
	if bs.Partial != nil {
		e.Byte('<').Number64(bs.Partial.Offset).Byte('>')
	}
	return e
}

// ListData writes one LIST or LSUB response (RFC 9051 7.3.1, RFC 5258
// CHILDINFO and OLDNAME, RFC 5819 STATUS after it).
func (e *Encoder) ListData(verb string, d *imap.ListData) *Encoder {
	e.Atom("* ").Atom(verb).SP().Byte('(')
	for i, a := range d.Attrs {
		if i > 0 {
			e.SP()
		}
		e.Atom(string(a))
	}
	e.Byte(')').SP()
	if d.Delim == 0 {
		e.Atom("NIL")
	} else {
		e.String(string(d.Delim))
	}
	e.SP().Mailbox(d.Mailbox)
	var ext []func()
	if d.ChildInfo != nil && d.ChildInfo.Subscribed {
		ext = append(ext, func() { e.String("CHILDINFO").SP().Atom("(\"SUBSCRIBED\")") })
	}
	if d.OldName != "" {
		ext = append(ext, func() { e.String("OLDNAME").SP().Byte('(').Mailbox(d.OldName).Byte(')') })
	}
	if len(ext) > 0 {
		e.SP().Byte('(')
		for i, f := range ext {
			if i > 0 {
				e.SP()
			}
			f()
		}
		e.Byte(')')
	}
	e.CRLF()
	if d.Status != nil {
		e.StatusData(d.Status)
	}
	return e
}

// StatusData writes one STATUS response (RFC 9051 7.3.4).
func (e *Encoder) StatusData(d *imap.StatusData) *Encoder {
	return e.StatusDataID(d, "")
}

// StatusDataID writes one STATUS response with MAILBOXID (RFC 8474 4.2)
// when mailboxID is not empty.
func (e *Encoder) StatusDataID(d *imap.StatusData, mailboxID string) *Encoder {
	e.Atom("* STATUS ").Mailbox(d.Mailbox).SP().Byte('(')
	sep := false
	item := func(name string) {
		if sep {
			e.SP()
		}
		sep = true
		e.Atom(name).SP()
	}
	if d.NumMessages != nil {
		item("MESSAGES")
		e.Number(*d.NumMessages)
	}
	if d.NumRecent != nil {
		item("RECENT")
		e.Number(*d.NumRecent)
	}
	if d.UIDNext != 0 {
		item("UIDNEXT")
		e.Number(uint32(d.UIDNext))
	}
	if d.UIDValidity != 0 {
		item("UIDVALIDITY")
		e.Number(d.UIDValidity)
	}
	if d.NumUnseen != nil {
		item("UNSEEN")
		e.Number(*d.NumUnseen)
	}
	if d.NumDeleted != nil {
		item("DELETED")
		e.Number(*d.NumDeleted)
	}
	if d.Size != nil {
		item("SIZE")
		e.Number64(*d.Size)
	}
	if d.AppendLimit != nil {
		item("APPENDLIMIT")
		e.Number(*d.AppendLimit)
	}
	if d.HighestModSeq != 0 {
		item("HIGHESTMODSEQ") // RFC 7162 3.1.6
		e.Number64(int64(d.HighestModSeq))
	}
	if mailboxID != "" {
		item("MAILBOXID") // RFC 8474 4.2: "MAILBOXID" SP "(" objectid ")"
		e.Byte('(').Atom(mailboxID).Byte(')')
	}
	if d.DeletedStorage != nil {
		item("DELETED-STORAGE") // RFC 9208 4.2
		e.Number64(*d.DeletedStorage)
	}
	return e.Byte(')').CRLF()
}

// NumSet writes a sequence set.
func (e *Encoder) NumSet(set imap.NumSet) *Encoder {
	return e.Atom(set.String())
}
