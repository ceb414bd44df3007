package main

import (
	"bufio"
	"container/list"
	"errors"
	"fmt"
	"io"
	"net/textproto"
	"strings"
	"sync"
	"time"

	gomessage "github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
	gtextproto "github.com/emersion/go-message/textproto"
)

// searchHeader is what SEARCH needs of a message's header: each field's
// canonical name and its decoded text, lowercased for the case-insensitive
// match RFC 3501 6.4.4 asks for, and the parsed Date field. It is built
// once per message file and shared by every search of every session.
type searchHeader struct {
	fields []searchField
	date   time.Time
	dateOK bool
	sort   sortInfo // SORT and THREAD keys (sort.go)
	size   int      // bytes held, for the cache's budget
}

type searchField struct {
	key   string // canonical (textproto.CanonicalMIMEHeaderKey)
	value string // decoded text (RFC 2047), lowercased
}

// has reports whether the header has a field named key (canonical).
func (h *searchHeader) has(key string) bool {
	for i := range h.fields {
		if h.fields[i].key == key {
			return true
		}
	}
	return false
}

// match reports whether a field named key (canonical) contains lowered,
// an already lowercased pattern. RFC 3501 6.4.4: HEADER with an empty
// string matches every message that has the field.
func (h *searchHeader) match(key, lowered string) bool {
	if lowered == "" {
		return h.has(key)
	}
	for i := range h.fields {
		if h.fields[i].key == key && strings.Contains(h.fields[i].value, lowered) {
			return true
		}
	}
	return false
}

// headerReaders are the buffers header reads go through; a header is read
// in one or two of them.
var headerReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}

// readSearchHeader reads the header section of a message, and no more:
// textproto stops at the empty line that ends it (RFC 5322 2.1). Line ends
// need no conversion here: a field's value is the same whether its lines
// end in LF or CRLF. A header that does not parse is searched as far as it
// goes; only a failing read is an error.
func readSearchHeader(r io.Reader) (*searchHeader, error) {
	er := &errRecorder{r: r}
	br := headerReaders.Get().(*bufio.Reader)
	br.Reset(er)
	h, _ := gtextproto.ReadHeader(br)
	br.Reset(nil)
	headerReaders.Put(br)
	if er.err != nil {
		return nil, fmt.Errorf("read header: %w", er.err)
	}
	mh := mail.Header{Header: gomessage.Header{Header: h}}
	out := &searchHeader{fields: make([]searchField, 0, h.Len()), size: 64}
	for fields := mh.Fields(); fields.Next(); {
		v, err := fields.Text()
		if err != nil {
			v = fields.Value()
		}
		f := searchField{key: textproto.CanonicalMIMEHeaderKey(fields.Key()), value: strings.ToLower(v)}
		if addressField[f.key] {
			f.value += "\x00" + strings.ToLower(searchAddresses(v))
		}
		out.size += len(f.key) + len(f.value) + 32
		out.fields = append(out.fields, f)
	}
	// go-message gives a zero time and no error for a missing Date.
	if t, err := mh.Date(); err == nil && !t.IsZero() {
		out.date, out.dateOK = t, true
	}
	out.sort = newSortInfo(mh)
	out.size += out.sort.size()
	return out, nil
}

// errRecorder remembers the first error of r other than io.EOF.
type errRecorder struct {
	r   io.Reader
	err error
}

func (e *errRecorder) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) && e.err == nil {
		e.err = err
	}
	return n, err
}

// headerCache keeps the search headers of recently searched messages, by
// folder directory and message key (Maildir files never change content,
// so an entry never goes stale; one whose file is gone just ages out).
type headerCache = lruCache[*searchHeader]

func newHeaderCache(maxBytes int) *headerCache {
	return newLRUCache(maxBytes, func(h *searchHeader) int { return h.size })
}

// lruCache maps a message (by folder directory and message key) to what
// was derived from its file. It is bounded by the bytes its entries hold,
// as cost tells, least recently used first out.
type lruCache[V any] struct {
	mu    sync.Mutex
	max   int
	used  int
	cost  func(V) int
	order *list.List // of *lruEntry[V], most recent at the front
	byKey map[string]*list.Element
}

type lruEntry[V any] struct {
	key  string
	v    V
	cost int
}

func newLRUCache[V any](maxBytes int, cost func(V) int) *lruCache[V] {
	return &lruCache[V]{max: maxBytes, cost: cost, order: list.New(), byKey: make(map[string]*list.Element)}
}

func (c *lruCache[V]) get(key string) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byKey[key]
	if !ok {
		var zero V
		return zero, false
	}
	c.order.MoveToFront(e)
	return e.Value.(*lruEntry[V]).v, true
}

// put adds v under key, or replaces what key held.
func (c *lruCache[V]) put(key string, v V) {
	cost := c.cost(v) + len(key) + 64
	if cost > c.max/64 {
		// One giant entry must not push out everything else.
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.byKey[key]; ok {
		ent := e.Value.(*lruEntry[V])
		c.used += cost - ent.cost
		ent.v, ent.cost = v, cost
		c.order.MoveToFront(e)
	} else {
		c.byKey[key] = c.order.PushFront(&lruEntry[V]{key: key, v: v, cost: cost})
		c.used += cost
	}
	for c.used > c.max {
		last := c.order.Back()
		ent := last.Value.(*lruEntry[V])
		c.order.Remove(last)
		delete(c.byKey, ent.key)
		c.used -= ent.cost
	}
}
