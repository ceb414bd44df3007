package maildir

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// indexName is the per-folder index file; indexLockName its lock file.
const (
	indexName     = "tern-index"
	indexLockName = "tern-index.lock"
	indexMagic    = "tern-index"
	indexVersion  = 2
)

// The index file (see the package doc and tern-maildir(5)):
//
//	tern-index 2 V<uidvalidity> N<uidnext> M<highestmodseq> G<generation> C<count> F<firstrecent>
//	<uid> <modseq> <size> <mtime-ns> <saved> <emailid> <key> <info> [<keyword>...]
//	...
//	.
//
// Version 2 added <saved>, the save date (RFC 8514) in Unix seconds, 0 when
// unknown, and <emailid>, the message's EMAILID (RFC 8474) when it is not
// the one derived from its key ("-"): see objectid.go. Version 1 lines lack
// both and are still read (save date unknown, EMAILID from the key); every
// write is version 2, and a process that finds a version 1 index rewrites
// it before appending to its log, so a log never mixes the two. Older
// binaries refuse a version 2 header as damaged and start a new
// UIDVALIDITY (tern-maildir(5)).
//
// F, the first UID no session has yet seen as recent (RFC 3501 2.3.2
// \Recent), was added later: a header without it is read as F = N (no
// message recent), so indexes written before it stay readable.
// Fields are separated by one space. key, info and keywords are
// percent-escaped (bytes <= 0x20, 0x7f and "%" as %XX); an empty info is "-".
// Lines are in strictly ascending UID order. The final "." line and the count
// make a truncated copy detectable.

// index is the parsed index of one folder.
type index struct {
	uidValidity   uint32
	uidNext       uint32
	highestModSeq uint64
	gen           uint64
	entries       []entry // ascending uid
	// reserved is the highest modseq durably reserved in the change log
	// (never written to the index file itself).
	reserved uint64
	// expunged is the expunge history (vanished.go), ascending modseq;
	// expungedUIDs counts its UIDs, expungeFloor the modseq at or below
	// which expunges may be forgotten.
	expunged     []Expunged
	expungedUIDs int
	expungeFloor uint64
	// firstRecent is the lowest UID that no session has claimed as
	// recent (RFC 3501 2.3.2): the messages from it up are \Recent to the
	// next session that selects the folder read-write. Dovecot keeps the
	// same in dovecot.index; it never exceeds uidNext.
	firstRecent uint32
	// version is the format the index was read in (indexVersion once
	// written); its log's E lines are in the same format.
	version int
}

// entry is one message of the index.
type entry struct {
	uid    uint32
	modseq uint64
	size   int64
	mtime  int64 // unix nanoseconds: the IMAP internal date
	// saved is when the message entered this folder, in Unix seconds
	// (RFC 8514 SAVEDATE); 0 for messages indexed before it was kept.
	saved int64
	// emailID is the RFC 8474 EMAILID when it differs from the one
	// derived from key (a COPY keeps its source's); usually "".
	emailID string
	key     string
	info    string   // ":2,FLAGS" as last seen on disk, or ""
	kw      []string // all keywords of the message, sorted
}

func escapeField(s string) string {
	need := false
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= 0x20 || c == 0x7f || c == '%' {
			need = true
			break
		}
	}
	if !need {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= 0x20 || c == 0x7f || c == '%' {
			fmt.Fprintf(&b, "%%%02X", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

func unescapeField(s string) (string, error) {
	if !strings.Contains(s, "%") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", fmt.Errorf("bad escape in %q", s)
		}
		v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
		if err != nil || strings.ToUpper(s[i+1:i+3]) != s[i+1:i+3] {
			return "", fmt.Errorf("bad escape in %q", s)
		}
		b.WriteByte(byte(v))
		i += 2
	}
	return b.String(), nil
}

// validKey refuses keys that could name a path other than a file in cur/:
// the index is trusted only as far as it can be checked.
func validKey(k string) bool {
	return k != "" && k != "." && k != ".." && !strings.ContainsAny(k, "/:\x00")
}

func validInfo(s string) bool {
	return s == "" || (s[0] == ':' && !strings.ContainsAny(s, "/\x00"))
}

// recentMark is the F field: firstRecent, never above UIDNEXT, and never
// 0 (an index built without it counts every message as recent).
func (x *index) recentMark() uint32 {
	if x.firstRecent == 0 {
		return 1
	}
	return min(x.firstRecent, x.uidNext)
}

// marshal writes the index in its file format.
func (x *index) marshal() []byte {
	var b bytes.Buffer
	b.Grow(64 + len(x.entries)*96)
	fmt.Fprintf(&b, "%s %d V%d N%d M%d G%d C%d F%d\n", indexMagic, indexVersion,
		x.uidValidity, x.uidNext, x.highestModSeq, x.gen, len(x.entries), x.recentMark())
	var line []byte
	for i := range x.entries {
		line = appendEntry(line[:0], &x.entries[i])
		line = append(line, '\n')
		b.Write(line)
	}
	b.WriteString(".\n")
	b.Write(x.appendExpunged(nil))
	return b.Bytes()
}

// appendEntry appends the index line of e (without the newline).
func appendEntry(b []byte, e *entry) []byte {
	b = strconv.AppendUint(b, uint64(e.uid), 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, e.modseq, 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, e.size, 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, e.mtime, 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, e.saved, 10)
	b = append(b, ' ')
	if e.emailID == "" {
		b = append(b, '-')
	} else {
		b = append(b, e.emailID...) // an objectid: never needs escaping
	}
	b = append(b, ' ')
	b = append(b, escapeField(e.key)...)
	b = append(b, ' ')
	if e.info == "" {
		b = append(b, '-')
	} else {
		b = append(b, escapeField(e.info)...)
	}
	for _, k := range e.kw {
		b = append(b, ' ')
		b = append(b, escapeField(k)...)
	}
	return b
}

// parseHeaderLine parses the first line of an index.
func parseHeaderLine(line string) (*index, int, error) {
	f := strings.Split(line, " ")
	if (len(f) != 7 && len(f) != 8) || f[0] != indexMagic || (f[1] != "1" && f[1] != strconv.Itoa(indexVersion)) {
		return nil, 0, fmt.Errorf("%w: bad header %q", ErrCorruptIndex, line)
	}
	var vals [5]uint64
	for i, p := range []struct {
		prefix byte
		bits   int
	}{{'V', 32}, {'N', 32}, {'M', 64}, {'G', 64}, {'C', 32}} {
		s := f[i+2]
		if len(s) < 2 || s[0] != p.prefix || s[1] == '+' {
			return nil, 0, fmt.Errorf("%w: bad header field %q", ErrCorruptIndex, s)
		}
		v, err := strconv.ParseUint(s[1:], 10, p.bits)
		if err != nil {
			return nil, 0, fmt.Errorf("%w: bad header field %q", ErrCorruptIndex, s)
		}
		vals[i] = v
	}
	x := &index{uidValidity: uint32(vals[0]), uidNext: uint32(vals[1]), highestModSeq: vals[2], gen: vals[3],
		version: int(f[1][0] - '0')}
	if x.uidValidity == 0 || x.uidNext == 0 {
		return nil, 0, fmt.Errorf("%w: zero UIDVALIDITY or UIDNEXT", ErrCorruptIndex)
	}
	// An index from before the F field: nothing is recent any more.
	x.firstRecent = x.uidNext
	if len(f) == 8 {
		s := f[7]
		v, err := strconv.ParseUint(strings.TrimPrefix(s, "F"), 10, 32)
		if len(s) < 2 || s[0] != 'F' || s[1] == '+' || err != nil || v == 0 || uint32(v) > x.uidNext {
			return nil, 0, fmt.Errorf("%w: bad header field %q", ErrCorruptIndex, s)
		}
		x.firstRecent = uint32(v)
	}
	return x, int(vals[4]), nil
}

// parseIndex parses and checks a whole index file. It refuses anything that
// would let a UID point at two messages or a key escape cur/.
func parseIndex(data []byte) (*index, error) {
	s := string(data)
	nl := strings.IndexByte(s, '\n')
	if nl < 0 {
		return nil, fmt.Errorf("%w: no header", ErrCorruptIndex)
	}
	x, count, err := parseHeaderLine(s[:nl])
	if err != nil {
		return nil, err
	}
	s = s[nl+1:]
	if count > len(s)/12 {
		// Each line takes at least 12 bytes; refuse absurd counts before
		// allocating for them.
		return nil, fmt.Errorf("%w: count %d too large", ErrCorruptIndex, count)
	}
	x.entries = make([]entry, 0, count)
	keys := make(map[string]struct{}, count)
	for lineNo := 2; ; lineNo++ {
		nl := strings.IndexByte(s, '\n')
		if nl < 0 {
			return nil, fmt.Errorf("%w: truncated at line %d", ErrCorruptIndex, lineNo)
		}
		line := s[:nl]
		s = s[nl+1:]
		if line == "." {
			break
		}
		e, err := parseEntry(line, x.version)
		if err != nil {
			return nil, fmt.Errorf("%w: line %d: %v", ErrCorruptIndex, lineNo, err)
		}
		if n := len(x.entries); n > 0 && e.uid <= x.entries[n-1].uid {
			return nil, fmt.Errorf("%w: line %d: UID %d not ascending", ErrCorruptIndex, lineNo, e.uid)
		}
		if e.uid >= x.uidNext {
			return nil, fmt.Errorf("%w: line %d: UID %d >= UIDNEXT %d", ErrCorruptIndex, lineNo, e.uid, x.uidNext)
		}
		if e.modseq > x.highestModSeq {
			return nil, fmt.Errorf("%w: line %d: modseq above highest", ErrCorruptIndex, lineNo)
		}
		if _, dup := keys[e.key]; dup {
			return nil, fmt.Errorf("%w: line %d: duplicate key %q", ErrCorruptIndex, lineNo, e.key)
		}
		keys[e.key] = struct{}{}
		x.entries = append(x.entries, e)
	}
	if err := x.parseExpunged(s); err != nil {
		return nil, err
	}
	if len(x.entries) != count {
		return nil, fmt.Errorf("%w: %d entries, header says %d", ErrCorruptIndex, len(x.entries), count)
	}
	return x, nil
}

// parseEntry parses one message line of an index (or a log's E line) in
// the given format version.
func parseEntry(line string, version int) (entry, error) {
	// Split into a stack buffer: one allocation per line adds up in a
	// folder of 100,000 messages.
	var buf [16]string
	f := buf[:0]
	for {
		i := strings.IndexByte(line, ' ')
		if i < 0 {
			f = append(f, line)
			break
		}
		f = append(f, line[:i])
		line = line[i+1:]
	}
	var e entry
	if version >= 2 {
		if len(f) < 8 {
			return entry{}, fmt.Errorf("%d fields", len(f))
		}
		var err error
		if e.saved, err = strconv.ParseInt(f[4], 10, 64); err != nil || e.saved < 0 || f[4][0] == '+' {
			return e, fmt.Errorf("bad save date %q", f[4])
		}
		if f[5] != "-" {
			if !ValidObjectID(f[5]) {
				return e, fmt.Errorf("bad email id %q", f[5])
			}
			e.emailID = f[5]
		}
		// The rest reads as a version 1 line (shifted in place: no
		// allocation per line).
		f = f[:4+copy(f[4:], f[6:])]
	}
	if len(f) < 6 {
		return entry{}, fmt.Errorf("%d fields", len(f))
	}
	uid, err := strconv.ParseUint(f[0], 10, 32)
	if err != nil || uid == 0 || f[0][0] == '+' {
		return e, fmt.Errorf("bad uid %q", f[0])
	}
	e.uid = uint32(uid)
	if e.modseq, err = strconv.ParseUint(f[1], 10, 64); err != nil || e.modseq == 0 || f[1][0] == '+' {
		return e, fmt.Errorf("bad modseq %q", f[1])
	}
	if e.size, err = strconv.ParseInt(f[2], 10, 64); err != nil || e.size < 0 || f[2][0] == '+' {
		return e, fmt.Errorf("bad size %q", f[2])
	}
	if e.mtime, err = strconv.ParseInt(f[3], 10, 64); err != nil || f[3][0] == '+' {
		return e, fmt.Errorf("bad mtime %q", f[3])
	}
	if e.key, err = unescapeField(f[4]); err != nil || !validKey(e.key) || escapeField(e.key) != f[4] {
		return e, fmt.Errorf("bad key %q", f[4])
	}
	if f[5] != "-" {
		if e.info, err = unescapeField(f[5]); err != nil || e.info == "" || !validInfo(e.info) || escapeField(e.info) != f[5] {
			return e, fmt.Errorf("bad info %q", f[5])
		}
	}
	for _, k := range f[6:] {
		kw, err := unescapeField(k)
		if err != nil || kw == "" || escapeField(kw) != k {
			return e, fmt.Errorf("bad keyword %q", k)
		}
		if n := len(e.kw); n > 0 && kw <= e.kw[n-1] {
			return e, fmt.Errorf("keywords not sorted")
		}
		e.kw = append(e.kw, kw)
	}
	return e, nil
}
