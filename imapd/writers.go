package main

import (
	"fmt"
	"io"
	"time"

	"github.com/emersion/go-imap/v2"

	"tern/imapd/wire"
)

// The writers below are what the backend (fetch.go, store.go, list and
// the unilateral updates) writes its responses to. They write straight
// into the session's buffered writer, which the running command holds.

// NumKind says whether a command numbers messages by sequence number or
// by UID.
type NumKind int

const (
	NumKindSeq NumKind = iota
	NumKindUID
)

// FetchWriter writes the FETCH responses of one command.
type FetchWriter struct {
	s         *session
	req       *wire.FetchRequest
	announced bool
	// rw is reused for every message: one is written at a time, and a
	// large FETCH allocates nothing per message.
	rw FetchResponseWriter
}

// CreateMessage starts the FETCH response of message seqNum;
// FetchResponseWriter.Close ends it.
func (w *FetchWriter) CreateMessage(seqNum uint32) *FetchResponseWriter {
	if !w.announced && w.req.Options.Flags {
		// The command has synced: its snapshot's keywords are
		// announced before the first response (flags.go).
		w.announced = true
		w.s.announceSnapshotFlags()
	}
	e := w.s.enc
	e.Atom("* ").Number(seqNum).Atom(" FETCH (")
	w.rw = FetchResponseWriter{e: e, req: w.req}
	return &w.rw
}

// FetchResponseWriter writes the items of one FETCH response.
type FetchResponseWriter struct {
	e       *wire.Encoder
	req     *wire.FetchRequest
	hasItem bool
	uid     bool
}

func (w *FetchResponseWriter) sep() {
	if w.hasItem {
		w.e.SP()
	}
	w.hasItem = true
}

// WriteUID writes UID (once; RFC 9051 6.4.9 puts it in every UID FETCH
// response).
func (w *FetchResponseWriter) WriteUID(uid imap.UID) {
	if w.uid {
		return
	}
	w.uid = true
	w.sep()
	w.e.Atom("UID ").Number(uint32(uid))
}

// WriteFlags writes FLAGS.
func (w *FetchResponseWriter) WriteFlags(flags []imap.Flag) {
	w.sep()
	w.e.Atom("FLAGS ").Flags(flags)
}

// WriteFlagStrings writes FLAGS from the store's flag strings.
func (w *FetchResponseWriter) WriteFlagStrings(flags []string) {
	w.sep()
	w.e.Atom("FLAGS ").FlagStrings(flags)
}

// WriteRFC822Size writes RFC822.SIZE.
func (w *FetchResponseWriter) WriteRFC822Size(size int64) {
	w.sep()
	w.e.Atom("RFC822.SIZE ").Number64(size)
}

// WriteInternalDate writes INTERNALDATE.
func (w *FetchResponseWriter) WriteInternalDate(t time.Time) {
	w.sep()
	w.e.Atom("INTERNALDATE ").DateTime(t)
}

// WriteBodySection writes BODY[section]<origin> and returns the writer
// of its literal of size octets, which must be closed.
func (w *FetchResponseWriter) WriteBodySection(section *imap.FetchItemBodySection, size int64) io.WriteCloser {
	w.sep()
	if name, ok := w.req.Obsolete[section]; ok {
		// RFC 3501 6.4.5: RFC822, RFC822.HEADER, RFC822.TEXT answer
		// under their own names.
		w.e.Atom(name)
	} else {
		w.e.BodySectionName(section)
	}
	w.e.SP().LiteralHeader(size, false)
	return &literalWriter{e: w.e, left: size}
}

// WriteBinarySection writes BINARY[part]<origin> (RFC 3516 4.3: the
// origin is given back for a partial fetch) as a literal8.
func (w *FetchResponseWriter) WriteBinarySection(section *imap.FetchItemBinarySection, size int64) io.WriteCloser {
	w.sep()
	w.e.Atom("BINARY[").SectionPart(section.Part).Byte(']')
	if section.Partial != nil {
		w.e.Byte('<').Number64(section.Partial.Offset).Byte('>')
	}
	w.e.SP().LiteralHeader(size, true)
	return &literalWriter{e: w.e, left: size}
}

// WriteBinarySectionSize writes BINARY.SIZE[part].
func (w *FetchResponseWriter) WriteBinarySectionSize(section *imap.FetchItemBinarySectionSize, size uint32) {
	w.sep()
	w.e.Atom("BINARY.SIZE[").SectionPart(section.Part).Atom("] ").Number(size)
}

// WriteEncoded writes an item whose value is already encoded (the fetch
// cache's): name with its trailing space, then value as it is.
func (w *FetchResponseWriter) WriteEncoded(name string, value []byte) {
	w.sep()
	w.e.Atom(name)
	w.e.W.Write(value)
}

// WriteBodyStructureEncoded writes BODY and/or BODYSTRUCTURE, as asked,
// from their encoded values.
func (w *FetchResponseWriter) WriteBodyStructureEncoded(body, ext []byte) {
	if w.req.Body {
		w.WriteEncoded("BODY ", body)
	}
	if w.req.Options.BodyStructure != nil && w.req.Options.BodyStructure.Extended {
		w.WriteEncoded("BODYSTRUCTURE ", ext)
	}
}

// Close ends the FETCH response.
func (w *FetchResponseWriter) Close() error {
	w.e.Byte(')').CRLF()
	return nil
}

// literalWriter writes a literal's octets; Close fails when fewer or more
// were written than announced, since the stream would then be corrupt.
type literalWriter struct {
	e    *wire.Encoder
	left int64
}

func (l *literalWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > l.left {
		return 0, fmt.Errorf("imapd: literal longer than announced")
	}
	n, err := l.e.W.Write(p)
	l.left -= int64(n)
	return n, err
}

func (l *literalWriter) Close() error {
	if l.left != 0 {
		return fmt.Errorf("imapd: literal %d octets short", l.left)
	}
	return nil
}

// UpdateWriter writes the unilateral updates of a selected mailbox
// (RFC 9051 7.4, 7.5).
type UpdateWriter struct {
	s            *session
	allowExpunge bool
}

// WriteExpunge writes EXPUNGE.
func (w *UpdateWriter) WriteExpunge(seqNum uint32) error {
	if !w.allowExpunge {
		return fmt.Errorf("imapd: EXPUNGE not allowed here")
	}
	w.s.enc.Atom("* ").Number(seqNum).Atom(" EXPUNGE").CRLF()
	return nil
}

// WriteNumMessages writes EXISTS.
func (w *UpdateWriter) WriteNumMessages(n uint32) error {
	w.s.enc.Atom("* ").Number(n).Atom(" EXISTS").CRLF()
	return nil
}

// WriteNumRecent writes RECENT, for IMAP4rev1 sessions only (RFC 9051
// removed it).
func (w *UpdateWriter) WriteNumRecent(n uint32) error {
	if !w.s.rev2 {
		w.s.enc.Atom("* ").Number(n).Atom(" RECENT").CRLF()
	}
	return nil
}

// WriteMailboxFlags writes FLAGS and PERMANENTFLAGS (flags.go).
func (w *UpdateWriter) WriteMailboxFlags(flags []imap.Flag) error {
	w.s.writeMailboxFlags(flags)
	return nil
}

// WriteMessageFlags writes a FETCH with the message's flags.
func (w *UpdateWriter) WriteMessageFlags(seqNum uint32, uid imap.UID, flags []imap.Flag, modseq uint64) error {
	// The view's update has announced new keywords (tellKeywords).
	e := w.s.enc
	e.Atom("* ").Number(seqNum).Atom(" FETCH (")
	if uid != 0 {
		e.Atom("UID ").Number(uint32(uid)).SP()
	}
	e.Atom("FLAGS ").Flags(flags)
	if w.s.condstore {
		// RFC 7162 3.1.4.1: once CONDSTORE is enabled, flag updates
		// carry MODSEQ.
		e.Atom(" MODSEQ (").Number64(int64(modseq)).Byte(')')
	}
	e.Atom(")").CRLF()
	return nil
}

// ExpungeWriter writes the EXPUNGE responses of EXPUNGE; a nil session
// discards them (CLOSE, RFC 9051 6.4.1).
type ExpungeWriter struct{ s *session }

// WriteExpunge writes EXPUNGE.
func (w *ExpungeWriter) WriteExpunge(seqNum uint32) error {
	if w.s != nil {
		w.s.enc.Atom("* ").Number(seqNum).Atom(" EXPUNGE").CRLF()
	}
	return nil
}

// MoveWriter writes MOVE's responses (RFC 6851 4.3: COPYUID in an
// untagged OK, then the EXPUNGEs).
type MoveWriter struct{ s *session }

// WriteCopyData writes the untagged OK [COPYUID ...].
func (w *MoveWriter) WriteCopyData(data *imap.CopyData) error {
	w.s.enc.Atom("* OK ").Code(codeCopyUID, copyUIDArg(data)).Text("Moved").CRLF()
	return nil
}

// WriteExpunge writes EXPUNGE.
func (w *MoveWriter) WriteExpunge(seqNum uint32) error {
	w.s.enc.Atom("* ").Number(seqNum).Atom(" EXPUNGE").CRLF()
	return nil
}

func flagStrings(flags []imap.Flag) []string {
	out := make([]string, len(flags))
	for i, f := range flags {
		out[i] = string(f)
	}
	return out
}

func copyUIDArg(data *imap.CopyData) string {
	return fmt.Sprintf("%d %s %s", data.UIDValidity, data.SourceUIDs.String(), data.DestUIDs.String())
}

// ListWriter writes LIST or LSUB responses.
type ListWriter struct {
	s    *session
	verb string
	// mailboxID: RETURN (STATUS (... MAILBOXID)) (RFC 8474 4.2).
	mailboxID bool
}

// WriteList writes one LIST (or LSUB) response.
func (w *ListWriter) WriteList(data *imap.ListData) error {
	if w.mailboxID && data.Status != nil {
		st := *data
		st.Status = nil
		w.s.enc.ListData(w.verb, &st)
		w.s.enc.StatusDataID(data.Status, w.s.mailboxID(data.Mailbox))
		return nil
	}
	w.s.enc.ListData(w.verb, data)
	return nil
}

// Response codes go-imap does not name (RFC 9051 7.1, RFC 4315 3).
const (
	codeReadOnly  imap.ResponseCode = "READ-ONLY"
	codeReadWrite imap.ResponseCode = "READ-WRITE"
	codeCopyUID   imap.ResponseCode = "COPYUID"
	codeAppendUID imap.ResponseCode = "APPENDUID"
)
