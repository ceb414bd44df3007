package maildir

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// The change log "tern-index.log" sits beside the index and extends it, so
// that a flag change, an expunge or a new UID costs one appended line
// instead of a rewrite of the whole index (see the package doc and
// tern-maildir(5)):
//
//	tern-index-log 2 V<uidvalidity> G<generation> B<boot> R<reserved>
//	<crc> E <uid> <modseq> <size> <mtime-ns> <saved> <emailid> <key> <info> [<keyword>...]
//	<crc> X <modseq> <uid> [<uid>...]
//	<crc> R <reserved>
//	<crc> F <firstrecent>
//
// The header names the index it extends (UIDVALIDITY and generation); a log
// whose header does not match the index is stale and ignored. E inserts or
// replaces the entry of a UID (fields as in the index), X removes UIDs, R
// raises the modseq reservation, F records that a session claimed the
// messages below <firstrecent> as its \Recent ones (ClaimRecent). <crc> is the CRC-32 (IEEE) of the rest of
// the line in 8 hex digits: a torn or partly written line ends the log.
// The log's version is its index's: a version 1 log (E lines without
// <saved> and <emailid>) extends only a version 1 index, and is read but
// never appended to (appendLog compacts first).

const (
	logName  = "tern-index.log"
	logMagic = "tern-index-log"
)

// modseqReserve is how far ahead of the highest modseq the log durably
// reserves modseqs: one fsync per this many changes lets flag changes skip
// theirs, and after a machine crash new modseqs start above the
// reservation, so a client never sees HIGHESTMODSEQ go backwards.
const modseqReserve = 1024

// Compaction: the log is folded into a rewritten index when it grows past
// both compactMinLog bytes and a compactRatio-th of the index. Small
// folders then rewrite a small index now and then; big ones amortise their
// rewrite over many changes.
const (
	compactMinLog = 64 << 10
	compactRatio  = 2
)

// bootToken names the running system boot: unsynced log lines can only be
// lost when the machine stops, and then the boot id changes. On NFS every
// line is fsynced and the token is "-".
var bootToken = sync.OnceValue(func() string {
	data, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	id := strings.TrimSpace(string(data))
	if err != nil || id == "" || strings.ContainsAny(id, " \n") {
		// Unknown boot: treat every log as possibly cut short.
		return "unknown"
	}
	return id
})

func (st *folderState) myBoot() string {
	if st.shared {
		return "-"
	}
	return bootToken()
}

// logBatch collects the lines of one change.
type logBatch struct {
	buf       bytes.Buffer
	maxModSeq uint64
	durable   bool
}

func (b *logBatch) line(body []byte) {
	var crc [9]byte
	hexCRC(crc[:8], crc32.ChecksumIEEE(body))
	crc[8] = ' '
	b.buf.Write(crc[:])
	b.buf.Write(body)
	b.buf.WriteByte('\n')
}

func hexCRC(dst []byte, v uint32) {
	const digits = "0123456789abcdef"
	for i := 7; i >= 0; i-- {
		dst[i] = digits[v&0xf]
		v >>= 4
	}
}

// entry records the state of e (a new UID or a flag change).
func (b *logBatch) entry(e *entry) {
	var l []byte
	l = append(l, "E "...)
	l = appendEntry(l, e)
	b.line(l)
	b.maxModSeq = max(b.maxModSeq, e.modseq)
}

// expunge records the removal of uids at modseq.
func (b *logBatch) expunge(modseq uint64, uids []uint32) {
	l := []byte("X ")
	l = strconv.AppendUint(l, modseq, 10)
	for _, u := range uids {
		l = append(l, ' ')
		l = strconv.AppendUint(l, uint64(u), 10)
	}
	b.line(l)
	b.maxModSeq = max(b.maxModSeq, modseq)
}

func (b *logBatch) empty() bool { return b.buf.Len() == 0 }

func logHeader(x *index, boot string) []byte {
	return fmt.Appendf(nil, "%s %d V%d G%d B%s R%d\n", logMagic, x.version, x.uidValidity, x.gen, boot, x.reserved)
}

// parseLogHeader checks the header line against the index x and returns
// its boot token and reservation.
func parseLogHeader(line string, x *index) (boot string, reserved uint64, err error) {
	f := strings.Split(line, " ")
	if len(f) != 6 || f[0] != logMagic || f[1] != strconv.Itoa(x.version) {
		return "", 0, fmt.Errorf("%w: bad log header %q", ErrCorruptIndex, line)
	}
	if f[2] != "V"+strconv.FormatUint(uint64(x.uidValidity), 10) || f[3] != "G"+strconv.FormatUint(x.gen, 10) {
		return "", 0, errStaleLog
	}
	if len(f[4]) < 2 || f[4][0] != 'B' {
		return "", 0, fmt.Errorf("%w: bad log boot %q", ErrCorruptIndex, f[4])
	}
	r, err := parseNum(f[5], 'R')
	if err != nil {
		return "", 0, err
	}
	return f[4][1:], r, nil
}

var errStaleLog = errors.New("maildir: log extends an older index")

func parseNum(s string, prefix byte) (uint64, error) {
	if len(s) < 2 || s[0] != prefix || s[1] == '+' {
		return 0, fmt.Errorf("%w: bad field %q", ErrCorruptIndex, s)
	}
	v, err := strconv.ParseUint(s[1:], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: bad field %q", ErrCorruptIndex, s)
	}
	return v, nil
}

// applyLog applies the complete, checked lines of data to x and returns how
// many bytes it used; it stops at the first line that is torn, fails its
// CRC or does not apply (err says why).
func applyLog(x *index, data []byte) (used int, err error) {
	for used < len(data) {
		nl := bytes.IndexByte(data[used:], '\n')
		if nl < 0 {
			return used, fmt.Errorf("%w: torn log line", ErrCorruptIndex)
		}
		if err := applyLogLine(x, string(data[used:used+nl])); err != nil {
			return used, err
		}
		used += nl + 1
	}
	return used, nil
}

func applyLogLine(x *index, line string) error {
	if len(line) < 11 || line[8] != ' ' {
		return fmt.Errorf("%w: short log line", ErrCorruptIndex)
	}
	var want [8]byte
	hexCRC(want[:], crc32.ChecksumIEEE([]byte(line[9:])))
	if line[:8] != string(want[:]) {
		return fmt.Errorf("%w: log line checksum", ErrCorruptIndex)
	}
	body := line[9:]
	switch {
	case strings.HasPrefix(body, "E "):
		e, err := parseEntry(body[2:], x.version)
		if err != nil {
			return fmt.Errorf("%w: log entry: %v", ErrCorruptIndex, err)
		}
		i, found := slices.BinarySearchFunc(x.entries, e.uid, func(a entry, uid uint32) int { return cmpUID(a.uid, uid) })
		if found {
			if x.entries[i].key != e.key {
				return fmt.Errorf("%w: log gives UID %d another key", ErrCorruptIndex, e.uid)
			}
			x.entries[i] = e
		} else {
			// A UID below UIDNEXT that is not in the index was expunged
			// or never existed: it is never given again. New UIDs are
			// above every other, so the entries stay in order.
			if e.uid < x.uidNext {
				return fmt.Errorf("%w: log reuses UID %d", ErrCorruptIndex, e.uid)
			}
			x.entries = append(x.entries, e)
			x.uidNext = e.uid + 1
			if x.uidNext == 0 {
				return fmt.Errorf("%w: UID overflow", ErrCorruptIndex)
			}
		}
		x.highestModSeq = max(x.highestModSeq, e.modseq)
	case strings.HasPrefix(body, "X "):
		f := strings.Split(body[2:], " ")
		m, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil || m == 0 || len(f) < 2 {
			return fmt.Errorf("%w: bad log expunge", ErrCorruptIndex)
		}
		drop := make(map[uint32]bool, len(f)-1)
		for _, s := range f[1:] {
			u, err := strconv.ParseUint(s, 10, 32)
			if err != nil || u == 0 {
				return fmt.Errorf("%w: bad log expunge UID %q", ErrCorruptIndex, s)
			}
			drop[uint32(u)] = true
		}
		x.entries = slices.DeleteFunc(x.entries, func(e entry) bool { return drop[e.uid] })
		x.highestModSeq = max(x.highestModSeq, m)
		uids := make([]uint32, 0, len(drop))
		for u := range drop {
			uids = append(uids, u)
		}
		x.noteExpunge(m, uids)
	case strings.HasPrefix(body, "R "):
		r, err := strconv.ParseUint(body[2:], 10, 64)
		if err != nil {
			return fmt.Errorf("%w: bad log reservation", ErrCorruptIndex)
		}
		x.reserved = max(x.reserved, r)
	case strings.HasPrefix(body, "F "):
		r, err := strconv.ParseUint(body[2:], 10, 32)
		if err != nil || r == 0 {
			return fmt.Errorf("%w: bad log first recent UID", ErrCorruptIndex)
		}
		// Only ever raised; a UID not yet given (a later E line raises
		// UIDNEXT) is no reason to refuse the line.
		x.firstRecent = max(x.firstRecent, uint32(r))
	default:
		return fmt.Errorf("%w: unknown log line", ErrCorruptIndex)
	}
	return nil
}

func cmpUID(a, b uint32) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// readLog brings st.idx up to date with the log: from its start after the
// index was (re)read (fromStart), otherwise only the lines appended since
// the last read. It reports reload when the log was replaced behind an
// unchanged index, which only a full reload can sort out. The index lock is
// held.
func (st *folderState) readLog(fromStart bool) (reload bool, err error) {
	p := filepath.Join(st.dir, logName)
	f, err := openNoFollow(p)
	if errors.Is(err, os.ErrNotExist) {
		if !fromStart && st.logIno != 0 {
			return true, nil
		}
		st.logIno, st.logSize, st.logOff, st.logOK, st.logBoot = 0, 0, 0, false, ""
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("open log %q: %w", p, err)
	}
	defer f.Close()
	var s unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &s); err != nil {
		return false, fmt.Errorf("stat log %q: %w", p, err)
	}
	if !fromStart {
		if s.Ino != st.logIno || s.Size < st.logSize {
			return true, nil
		}
		if s.Size == st.logSize {
			return false, nil
		}
		if !st.logOK {
			// Stale or broken: nothing of it applies, and whoever
			// writes next starts it afresh.
			st.logSize = s.Size
			return false, nil
		}
	}
	off := int64(0)
	if !fromStart {
		off = st.logOff
	}
	data := make([]byte, s.Size-off)
	n, err := f.ReadAt(data, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return false, fmt.Errorf("read log %q: %w", p, err)
	}
	data = data[:n]
	st.logIno, st.logSize = s.Ino, off+int64(n)
	x := st.idx
	if fromStart {
		st.logOK, st.logOff = false, 0
		nl := bytes.IndexByte(data, '\n')
		if nl < 0 {
			return false, nil // empty or torn header: nothing to apply
		}
		boot, reserved, err := parseLogHeader(string(data[:nl]), x)
		if err != nil {
			return false, nil // stale (the index already has it) or broken
		}
		x.reserved = max(x.reserved, reserved)
		st.logBoot, st.logOK = boot, true
		data = data[nl+1:]
		off = int64(nl + 1)
	}
	used, aerr := applyLog(x, data)
	st.logOff = off + int64(used)
	if aerr != nil {
		// A torn last line (the machine stopped during an append) or
		// damage: the lines before it stand; the next writer compacts.
		st.logOK = false
	}
	if fromStart && st.logBoot != st.myBoot() && st.logBoot != "-" {
		// Written during another boot: lines not fsynced may be lost, and
		// their modseqs may have been shown to clients. New modseqs start
		// above everything that was reserved.
		x.highestModSeq = max(x.highestModSeq, x.reserved)
	}
	return false, nil
}

// appendLog writes a change to the log (compacting first when the log
// cannot be appended to), fsyncing it when the change must survive a
// machine crash or needs a new modseq reservation; the index lock is held
// and st.idx already holds the change.
func (st *folderState) appendLog(b *logBatch) error {
	if b.empty() {
		return nil
	}
	x := st.idx
	if !st.logOK || st.logBoot != st.myBoot() || x.version != indexVersion {
		// Compaction writes everything, durably; an index of an older
		// format is rewritten in the current one before its log is
		// appended to, so the log's lines are all of one format.
		return st.compact()
	}
	durable := b.durable || st.shared
	data := b.buf.Bytes()
	if b.maxModSeq > x.reserved {
		x.reserved = b.maxModSeq + modseqReserve
		var r logBatch
		r.line(strconv.AppendUint([]byte("R "), x.reserved, 10))
		data = append(r.buf.Bytes(), data...)
		durable = true
	}
	p := filepath.Join(st.dir, logName)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("open log %q: %w", p, err)
	}
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("append to log %q: %w", p, err)
	}
	if durable {
		if err := unix.Fdatasync(int(f.Fd())); err != nil {
			return fmt.Errorf("fsync log %q: %w", p, err)
		}
	}
	st.logOff += int64(len(data))
	st.logSize = st.logOff
	if st.logOff > compactMinLog && st.logOff > st.idxStat.size/compactRatio {
		return st.compact()
	}
	return nil
}

// compact writes the whole index durably (a new generation) and starts a
// fresh log for it; the index lock is held. A crash between the two steps
// leaves a log naming the old generation: stale, ignored, and everything in
// it is in the new index.
func (st *folderState) compact() error {
	x := st.idx
	x.gen++
	x.version = indexVersion
	if err := writeFileAtomic(st.dir, indexName, x.marshal()); err != nil {
		return fmt.Errorf("write index: %w", err)
	}
	st.idxStat = statOf(filepath.Join(st.dir, indexName))
	x.reserved = max(x.reserved, x.highestModSeq)
	p := filepath.Join(st.dir, logName)
	_, statErr := os.Lstat(p)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("create log %q: %w", p, err)
	}
	defer f.Close()
	hdr := logHeader(x, st.myBoot())
	if err := f.Truncate(0); err != nil {
		return fmt.Errorf("truncate log %q: %w", p, err)
	}
	if _, err := f.WriteAt(hdr, 0); err != nil {
		return fmt.Errorf("write log %q: %w", p, err)
	}
	if err := unix.Fdatasync(int(f.Fd())); err != nil {
		return fmt.Errorf("fsync log %q: %w", p, err)
	}
	if errors.Is(statErr, os.ErrNotExist) {
		// A new file: its name must be durable before lines that must
		// survive a crash are appended to it.
		if err := syncDir(st.dir); err != nil {
			return err
		}
	}
	var s unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &s); err != nil {
		return fmt.Errorf("stat log %q: %w", p, err)
	}
	st.logIno, st.logSize, st.logOff, st.logOK, st.logBoot = s.Ino, int64(len(hdr)), int64(len(hdr)), true, st.myBoot()
	return nil
}

// logUnchanged reports whether the log is as this process last read or
// wrote it. Lines are appended only under the index lock and the log is cut
// only by a compaction (which also replaces the index), so its inode and
// size tell.
func (st *folderState) logUnchanged() bool {
	var s unix.Stat_t
	if err := unix.Lstat(filepath.Join(st.dir, logName), &s); err != nil {
		return st.logIno == 0 && errors.Is(err, unix.ENOENT)
	}
	return s.Ino == st.logIno && s.Size == st.logSize
}
