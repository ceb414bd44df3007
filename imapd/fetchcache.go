package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"sync"

	"github.com/emersion/go-message/textproto"

	"tern/common/maildir"
	"tern/imapd/wire"
)

// fetchInfo is what FETCH derives from a message file and keeps for the
// next FETCH of the same message, by any session: the header section and
// the encoded ENVELOPE, BODY and BODYSTRUCTURE. Clients ask for these
// over and over (a message list shows each message's envelope every time
// it is opened), and each would otherwise open, convert and parse the
// file again. A fetchInfo is never changed once in the cache: a FETCH that
// adds to it puts a copy.
//
// The entries are by folder, message key and UID. By the Maildir
// convention a file's content never changes under its key: writers such
// as procmail, mutt and tern write a new file and rename it into place,
// and a flag change renames only the part of the name after the key. A
// message edited by another program is a new file, so a new key and a new
// UID, so a new entry; an entry whose file is gone ages out.
type fetchInfo struct {
	header        []byte // the header section in wire form, up to and with its empty line
	envelope      []byte // the ENVELOPE value, encoded
	body          []byte // the BODY value, encoded
	bodyStructure []byte // the BODYSTRUCTURE value, encoded
}

func (fi *fetchInfo) cost() int {
	return len(fi.header) + len(fi.envelope) + len(fi.body) + len(fi.bodyStructure) + 96
}

// maxCachedHeader bounds the header section a fetchInfo keeps; a longer
// one (a message that never ends its header, a huge Received chain) is
// read from the file each time.
const maxCachedHeader = 64 << 10

type fetchCache = lruCache[*fetchInfo]

func newFetchCache(maxBytes int) *fetchCache {
	return newLRUCache(maxBytes, (*fetchInfo).cost)
}

// msgSource is one message as a FETCH reads it: the file, opened when an
// item first needs it, its wire form (CRLF line ends, common/maildir), and
// the cached fetchInfo, copied before it is added to.
type msgSource struct {
	folder *maildir.Folder
	cache  *fetchCache
	log    *slog.Logger
	m      *maildir.Message
	f      *os.File
	conv   *maildir.WireReader
	// openErr is why the file could not be opened: the message is then
	// answered without the items that need it.
	openErr error
	key     string
	info    *fetchInfo
	// own says info is this FETCH's copy, to be put back in the cache;
	// readFailed that it must not be (noteRead).
	own, readFailed bool
}

func newMsgSource(folder *maildir.Folder, cache *fetchCache, log *slog.Logger, m *maildir.Message) *msgSource {
	return &msgSource{folder: folder, cache: cache, log: log, m: m}
}

// file opens the message file once.
func (src *msgSource) file() (*os.File, error) {
	if src.f == nil {
		f, err := src.folder.Open(src.m.UID)
		if err != nil {
			src.openErr = err
			return nil, err
		}
		src.f = f
	}
	return src.f, nil
}

// content gives the message in wire form from its start.
func (src *msgSource) content() (io.Reader, error) {
	f, err := src.file()
	if err != nil {
		return nil, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("rewind message %d: %w", src.m.UID, err)
	}
	if src.conv == nil {
		src.conv = maildir.NewWireReader(f)
	} else {
		src.conv.Reset(f)
	}
	return src.conv, nil
}

// cached gives the message's fetchInfo, empty when nothing is cached.
func (src *msgSource) cached() *fetchInfo {
	if src.info == nil {
		src.key = src.folder.Dir() + "/" + src.m.Key + "/" + strconv.FormatUint(uint64(src.m.UID), 10)
		if fi, ok := src.cache.get(src.key); ok {
			src.info = fi
		} else {
			src.info, src.own = &fetchInfo{}, true
		}
	}
	return src.info
}

// edit gives the fetchInfo to add to: this FETCH's own copy.
func (src *msgSource) edit() *fetchInfo {
	fi := src.cached()
	if !src.own {
		c := *fi
		src.info, src.own = &c, true
	}
	return src.info
}

// header gives the header section in wire form.
func (src *msgSource) header() ([]byte, error) {
	if h := src.cached().header; h != nil {
		return h, nil
	}
	r, err := src.content()
	if err != nil {
		return nil, err
	}
	er := &errRecorder{r: r}
	h := rawHeader(er)
	if h == nil {
		h = []byte{}
	}
	src.noteRead(er.err)
	if len(h) <= maxCachedHeader {
		src.edit().header = h
	}
	return h, nil
}

// envelope gives the encoded ENVELOPE.
func (src *msgSource) envelope() ([]byte, error) {
	if env := src.cached().envelope; env != nil {
		return env, nil
	}
	hb, err := src.header()
	if err != nil {
		return nil, err
	}
	h, _ := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(hb)))
	// RFC 3501 7.4.2: the adl of each address is its source route.
	routes := wire.Routes(envelopeRoutes(h))
	env := encodeValue(func(e *wire.Encoder) { e.EnvelopeRoutes(envelope(h), &routes) })
	src.edit().envelope = env
	return env, nil
}

// bodyStructure gives the encoded BODY and BODYSTRUCTURE.
func (src *msgSource) bodyStructure() (body, ext []byte, err error) {
	if fi := src.cached(); fi.body != nil {
		return fi.body, fi.bodyStructure, nil
	}
	r, err := src.content()
	if err != nil {
		return nil, nil, err
	}
	er := &errRecorder{r: r}
	bs := parseBodyStructure(er)
	body = encodeValue(func(e *wire.Encoder) { e.BodyStructure(bs, false) })
	ext = encodeValue(func(e *wire.Encoder) { e.BodyStructure(bs, true) })
	src.noteRead(er.err)
	fi := src.edit()
	fi.body, fi.bodyStructure = body, ext
	return body, ext, nil
}

// noteRead records a read of the file that failed half way: the message
// is answered as far as it was read, as it was before the cache, but
// nothing of this FETCH is kept, since it must not stand for the message.
func (src *msgSource) noteRead(err error) {
	if err != nil {
		src.readFailed = true
		src.log.Warn("fetch read", "uid", src.m.UID, "err", err)
	}
}

// close closes the file and keeps what was learnt of the message.
func (src *msgSource) close() {
	if src.conv != nil {
		src.conv.Close()
	}
	if src.f != nil {
		src.f.Close()
	}
	if src.own && !src.readFailed && src.info != nil && src.info.cost() > 96 {
		src.cache.put(src.key, src.info)
	}
}

// encodeValue runs f on an encoder into a buffer and returns a copy of
// what it wrote.
func encodeValue(f func(e *wire.Encoder)) []byte {
	b := encodeBuffers.Get().(*encodeBuffer)
	defer encodeBuffers.Put(b)
	b.buf.Reset()
	f(&b.enc)
	b.enc.W.Flush()
	return bytes.Clone(b.buf.Bytes())
}

type encodeBuffer struct {
	buf bytes.Buffer
	enc wire.Encoder
}

var encodeBuffers = sync.Pool{New: func() any {
	b := &encodeBuffer{}
	b.enc.W = bufio.NewWriterSize(&b.buf, 4096)
	return b
}}
