package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
)

// inflater decodes the raw DEFLATE stream (RFC 1951) a client sends after
// COMPRESS DEFLATE (RFC 4978). It is tern's own rather than
// compress/flate's for two reasons:
//
//   - compress/flate hands out what it decoded only at a stored block (a
//     sync flush), a full window or the end of the stream. zlib's
//     Z_PARTIAL_FLUSH, which mbsync uses, ends a command with an empty
//     fixed-code block instead, and compress/flate would keep the command
//     until the client sent more: the session hangs. This decoder returns
//     every byte as soon as the bits that encode it have arrived.
//   - compress/flate keeps the first read error for good, but a read
//     timeout is not the end of a session (IDLE wakes up every
//     imapd.idle_recheck). Here each step (a block header, a symbol with
//     its extra bits) is taken whole or not at all, so a read that fails
//     leaves the decoder where it was.
//
// It decodes only as far as Read is asked to, so a few compressed bytes
// that inflate to gigabytes cost no memory: the window is 32 KiB and the
// input buffer holds at most a block header.
type inflater struct {
	r   io.Reader
	in  []byte // received; in[cur.pos:] from bit cur.bit on is unread
	cur bitCursor

	window [windowSize]byte
	total  int64 // bytes decoded so far; window[total%windowSize] is next

	state    inflateState
	final    bool // the current block is the last
	stored   int  // bytes left in a stored block
	copyLen  int  // bytes left of a match that did not fit in Read's buffer
	copyDist int
	lit      *huffman // the current block's codes
	dist     *huffman
	dynLit   huffman
	dynDist  huffman
	err      error // the stream is over (io.EOF) or broken
}

// windowSize is how far back a DEFLATE stream may refer (RFC 1951 2).
const windowSize = 32 << 10

type inflateState uint8

const (
	stateHeader inflateState = iota
	stateStored
	stateHuffman
	stateDone
)

// bitCursor is a position in the input: a byte and the bits of it used.
type bitCursor struct {
	pos int
	bit uint
}

// errCorrupt is a stream that breaks RFC 1951; the session ends.
var errCorrupt = errors.New("invalid DEFLATE data")

func newInflater(r io.Reader) *inflater {
	return &inflater{r: r, in: make([]byte, 0, 4096)}
}

// Read returns what the input received so far decodes to, reading more
// from the connection only when nothing could be decoded. A read error
// (a timeout) is returned as it is and leaves the decoder intact.
func (z *inflater) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if z.err != nil {
			return 0, z.err
		}
		n, err := z.decode(p)
		if err != nil {
			z.err = fmt.Errorf("compressed stream: %w", err)
			return n, z.err
		}
		if n > 0 {
			return n, nil
		}
		if z.state == stateDone {
			// The client's last block: RFC 4978 has no way back to
			// plain text, so this is the end of the session.
			z.err = io.EOF
			continue
		}
		if err := z.fill(); err != nil {
			return 0, err
		}
	}
}

// fill reads more input, keeping what is not decoded yet.
func (z *inflater) fill() error {
	if z.cur.pos > 0 {
		n := copy(z.in, z.in[z.cur.pos:])
		z.in = z.in[:n]
		z.cur.pos = 0
	}
	if len(z.in) == cap(z.in) {
		// Every step needs far less than the buffer (a dynamic block
		// header is at most some 350 bytes): the data is not DEFLATE.
		return errCorrupt
	}
	n, err := z.r.Read(z.in[len(z.in):cap(z.in)])
	z.in = z.in[:len(z.in)+n]
	if n > 0 {
		return nil
	}
	if err == nil {
		return io.ErrNoProgress
	}
	var ne net.Error
	if !(errors.As(err, &ne) && ne.Timeout()) {
		// A timeout may be waited out (IDLE); anything else ends the
		// stream. An end inside the stream is the connection's end.
		z.err = err
	}
	return err
}

// bits takes n (at most 32) bits from c, least significant first
// (RFC 1951 3.1.1); false when the input ends first.
func (z *inflater) bits(c *bitCursor, n uint) (uint32, bool) {
	if n <= 24 && c.pos+4 <= len(z.in) {
		v := binary.LittleEndian.Uint32(z.in[c.pos:]) >> c.bit & (1<<n - 1)
		c.bit += n
		c.pos += int(c.bit >> 3)
		c.bit &= 7
		return v, true
	}
	var v uint32
	for got := uint(0); got < n; {
		if c.pos >= len(z.in) {
			return 0, false
		}
		take := min(8-c.bit, n-got)
		v |= (uint32(z.in[c.pos]>>c.bit) & (1<<take - 1)) << got
		got += take
		if c.bit += take; c.bit == 8 {
			c.bit = 0
			c.pos++
		}
	}
	return v, true
}

// put appends one decoded byte to p and the window.
func (z *inflater) put(p []byte, n *int, b byte) {
	p[*n] = b
	*n++
	z.window[z.total&(windowSize-1)] = b
	z.total++
}

// putAll copies a stored block's bytes to p and the window.
func (z *inflater) putAll(p, b []byte) {
	copy(p, b)
	for len(b) > 0 {
		c := copy(z.window[z.total&(windowSize-1):], b)
		b = b[c:]
		z.total += int64(c)
	}
}

// decode decodes into p as much as the buffered input allows.
func (z *inflater) decode(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if z.copyLen > 0 {
			for z.copyLen > 0 && n < len(p) {
				z.put(p, &n, z.window[(z.total-int64(z.copyDist))&(windowSize-1)])
				z.copyLen--
			}
			continue
		}
		switch z.state {
		case stateDone:
			return n, nil
		case stateHeader:
			ok, err := z.header()
			if err != nil || !ok {
				return n, err
			}
		case stateStored:
			if z.stored == 0 {
				z.endBlock()
				continue
			}
			avail := min(z.stored, len(z.in)-z.cur.pos, len(p)-n)
			if avail == 0 {
				return n, nil
			}
			z.putAll(p[n:n+avail], z.in[z.cur.pos:z.cur.pos+avail])
			n += avail
			z.cur.pos += avail
			z.stored -= avail
		case stateHuffman:
			ok, err := z.symbol(p, &n)
			if err != nil || !ok {
				return n, err
			}
		}
	}
	return n, nil
}

func (z *inflater) endBlock() {
	if z.final {
		z.state = stateDone
	} else {
		z.state = stateHeader
	}
}

// header reads a block header (RFC 1951 3.2.3), whole or not at all.
func (z *inflater) header() (bool, error) {
	c := z.cur
	h, ok := z.bits(&c, 3)
	if !ok {
		return false, nil
	}
	final := h&1 == 1
	switch h >> 1 {
	case 0: // stored (RFC 1951 3.2.4)
		if c.bit != 0 {
			c.bit = 0
			c.pos++
		}
		if len(z.in)-c.pos < 4 {
			return false, nil
		}
		b := z.in[c.pos : c.pos+4]
		l, nl := uint16(b[0])|uint16(b[1])<<8, uint16(b[2])|uint16(b[3])<<8
		if l != ^nl {
			return false, errCorrupt
		}
		c.pos += 4
		z.stored = int(l)
		z.state = stateStored
	case 1: // fixed codes (RFC 1951 3.2.6)
		z.lit, z.dist = &fixedLit, &fixedDist
		z.state = stateHuffman
	case 2: // dynamic codes (RFC 1951 3.2.7)
		ok, err := z.dynamicHeader(&c)
		if err != nil || !ok {
			return false, err
		}
		z.lit, z.dist = &z.dynLit, &z.dynDist
		z.state = stateHuffman
	default:
		return false, errCorrupt
	}
	z.final = final
	z.cur = c
	return true, nil
}

// codeLengthOrder is the order of the code length code lengths (RFC 1951
// 3.2.7).
var codeLengthOrder = [19]int{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}

func (z *inflater) dynamicHeader(c *bitCursor) (bool, error) {
	v, ok := z.bits(c, 14)
	if !ok {
		return false, nil
	}
	nlit, ndist, nclen := int(v&31)+257, int(v>>5&31)+1, int(v>>10)+4
	if nlit > 286 || ndist > 30 {
		return false, errCorrupt
	}
	var lengths [286 + 30]uint8
	for i := 0; i < nclen; i++ {
		l, ok := z.bits(c, 3)
		if !ok {
			return false, nil
		}
		lengths[codeLengthOrder[i]] = uint8(l)
	}
	var clen huffman
	if err := clen.init(lengths[:19]); err != nil {
		return false, err
	}
	clear(lengths[:19])
	for i := 0; i < nlit+ndist; {
		sym, ok, err := z.decodeSym(c, &clen)
		if err != nil || !ok {
			return false, err
		}
		if sym < 16 {
			lengths[i] = uint8(sym)
			i++
			continue
		}
		var rep int
		var val uint8
		switch sym {
		case 16:
			if i == 0 {
				return false, errCorrupt
			}
			r, ok := z.bits(c, 2)
			if !ok {
				return false, nil
			}
			rep, val = 3+int(r), lengths[i-1]
		case 17:
			r, ok := z.bits(c, 3)
			if !ok {
				return false, nil
			}
			rep = 3 + int(r)
		default:
			r, ok := z.bits(c, 7)
			if !ok {
				return false, nil
			}
			rep = 11 + int(r)
		}
		if i+rep > nlit+ndist {
			return false, errCorrupt
		}
		for ; rep > 0; rep-- {
			lengths[i] = val
			i++
		}
	}
	if lengths[256] == 0 {
		return false, errCorrupt // no end-of-block code
	}
	if err := z.dynLit.init(lengths[:nlit]); err != nil {
		return false, err
	}
	if err := z.dynDist.init(lengths[nlit : nlit+ndist]); err != nil {
		return false, err
	}
	return true, nil
}

// Lengths 257..285 and distances 0..29: base values and extra bits (RFC
// 1951 3.2.5).
var (
	lengthBase  = [29]uint16{3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258}
	lengthExtra = [29]uint8{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}
	distBase    = [30]uint16{1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577}
	distExtra   = [30]uint8{0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13}
)

// symbol decodes one literal, end of block, or length and distance,
// whole or not at all.
func (z *inflater) symbol(p []byte, n *int) (bool, error) {
	c := z.cur
	sym, ok, err := z.decodeSym(&c, z.lit)
	if err != nil || !ok {
		return false, err
	}
	switch {
	case sym < 256:
		z.cur = c
		z.put(p, n, byte(sym))
		return true, nil
	case sym == 256:
		z.cur = c
		z.endBlock()
		return true, nil
	case sym > 285:
		return false, errCorrupt
	}
	sym -= 257
	extra, ok := z.bits(&c, uint(lengthExtra[sym]))
	if !ok {
		return false, nil
	}
	length := int(lengthBase[sym]) + int(extra)
	d, ok, err := z.decodeSym(&c, z.dist)
	if err != nil || !ok {
		return false, err
	}
	if d > 29 {
		return false, errCorrupt
	}
	extra, ok = z.bits(&c, uint(distExtra[d]))
	if !ok {
		return false, nil
	}
	dist := int(distBase[d]) + int(extra)
	if int64(dist) > min(z.total, windowSize) {
		return false, errCorrupt // before the start of the stream
	}
	z.cur = c
	z.copyLen, z.copyDist = length, dist
	return true, nil
}

// huffman is a canonical Huffman code (RFC 1951 3.2.2): a table of the
// codes of up to fastBits bits, and the counts and symbols by length for
// the longer ones.
type huffman struct {
	fast   [1 << fastBits]uint16 // length<<9 | symbol; 0 when longer
	count  [16]uint16
	symbol [288]uint16
}

const fastBits = 9

func (h *huffman) init(lengths []uint8) error {
	*h = huffman{}
	for _, l := range lengths {
		h.count[l]++
	}
	h.count[0] = 0
	left := 1
	for l := 1; l < 16; l++ {
		left <<= 1
		if left -= int(h.count[l]); left < 0 {
			return errCorrupt // over-subscribed
		}
	}
	// An incomplete code is allowed (a single distance code, RFC 1951
	// 3.2.7); a code it lacks is an error when met.
	var offs [16]uint16
	for l := 1; l < 15; l++ {
		offs[l+1] = offs[l] + h.count[l]
	}
	var next [16]uint32
	code := uint32(0)
	for l := 1; l < 16; l++ {
		code = (code + uint32(h.count[l-1])) << 1
		if l == 1 {
			code = 0
		}
		next[l] = code
	}
	for sym, l := range lengths {
		if l == 0 {
			continue
		}
		h.symbol[offs[l]] = uint16(sym)
		offs[l]++
		c := next[l]
		next[l]++
		if l <= fastBits {
			rev := uint32(0)
			for i := uint8(0); i < l; i++ {
				rev |= (c >> i & 1) << (l - 1 - i)
			}
			for f := rev; f < 1<<fastBits; f += 1 << l {
				h.fast[f] = uint16(l)<<9 | uint16(sym)
			}
		}
	}
	return nil
}

// decodeSym decodes one symbol of h from c; false when the input ends
// first.
func (z *inflater) decodeSym(c *bitCursor, h *huffman) (int, bool, error) {
	peek := *c
	if v, ok := z.bits(&peek, fastBits); ok {
		if e := h.fast[v]; e != 0 {
			z.bits(c, uint(e>>9))
			return int(e & 511), true, nil
		}
	}
	// Bit by bit, as in zlib's puff.c: codes of one length are
	// consecutive, and longer codes follow shorter ones.
	var code, first, index int
	for l := 1; l < 16; l++ {
		b, ok := z.bits(c, 1)
		if !ok {
			return 0, false, nil
		}
		code |= int(b)
		count := int(h.count[l])
		if code-first < count {
			return int(h.symbol[index+code-first]), true, nil
		}
		index += count
		first = (first + count) << 1
		code <<= 1
	}
	return 0, false, errCorrupt
}

// The fixed codes (RFC 1951 3.2.6).
var fixedLit, fixedDist huffman

func init() {
	var l [288]uint8
	for i := range l {
		switch {
		case i < 144:
			l[i] = 8
		case i < 256:
			l[i] = 9
		case i < 280:
			l[i] = 7
		default:
			l[i] = 8
		}
	}
	fixedLit.init(l[:])
	var d [30]uint8
	for i := range d {
		d[i] = 5
	}
	fixedDist.init(d[:])
}
