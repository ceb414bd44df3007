package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"tern/imapd/wire"
)

// rawIMAP is a line-level IMAP client for tests that compare servers byte
// for byte: it sends commands as written and returns the responses with
// their literals inline, so that nothing a client library would smooth
// over (quoted string or literal, NIL or "", case) is lost.
type rawIMAP struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
	n    int
}

func dialRawIMAP(t testing.TB, addr string) *rawIMAP {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	rc := &rawIMAP{t: t, conn: c, r: bufio.NewReader(c)}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := rc.readResponse(); err != nil {
		t.Fatalf("greeting from %s: %v", addr, err)
	}
	return rc
}

// readResponse reads one response line and the literals it announces.
func (c *rawIMAP) readResponse() ([]byte, error) {
	var out []byte
	for {
		line, err := c.r.ReadBytes('\n')
		out = append(out, line...)
		if err != nil {
			return out, err
		}
		n, _ := literalSize(line)
		if n == 0 && !bytes.HasSuffix(bytes.TrimRight(line, "\r\n"), []byte("{0}")) {
			return out, nil
		}
		buf := make([]byte, n)
		if _, err := io.ReadFull(c.r, buf); err != nil {
			return out, err
		}
		out = append(out, buf...)
	}
}

// cmd sends one command and returns its untagged responses; it fails the
// test unless the command completes with OK.
func (c *rawIMAP) cmd(format string, args ...any) [][]byte {
	c.t.Helper()
	untagged, status := c.try(format, args...)
	if !strings.HasPrefix(status, "OK") {
		c.t.Fatalf("%s: %s", fmt.Sprintf(format, args...), status)
	}
	return untagged
}

// try sends one command and returns its untagged responses and the text
// of its tagged reply after the tag.
func (c *rawIMAP) try(format string, args ...any) ([][]byte, string) {
	c.t.Helper()
	c.n++
	tag := fmt.Sprintf("t%d", c.n)
	c.conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(c.conn, tag+" "+format+"\r\n", args...); err != nil {
		c.t.Fatalf("send: %v", err)
	}
	var untagged [][]byte
	for {
		resp, err := c.readResponse()
		if err != nil {
			c.t.Fatalf("%s: read: %v (after %q)", fmt.Sprintf(format, args...), err, resp)
		}
		if rest, ok := bytes.CutPrefix(resp, []byte(tag+" ")); ok {
			return untagged, strings.TrimRight(string(rest), "\r\n")
		}
		untagged = append(untagged, resp)
	}
}

// fetchItems runs a FETCH of one message and returns its data items by
// upper-cased name.
func (c *rawIMAP) fetchItems(seq int, items string) map[string]imapNode {
	c.t.Helper()
	out := make(map[string]imapNode)
	for _, resp := range c.cmd("FETCH %d (%s)", seq, items) {
		p := &imapParser{b: resp}
		if !p.consume(fmt.Sprintf("* %d FETCH ", seq)) {
			continue
		}
		list, err := p.value()
		if err != nil || list.kind != nodeList || len(list.list)%2 != 0 {
			c.t.Fatalf("FETCH response %q: %v", resp, err)
		}
		for i := 0; i < len(list.list); i += 2 {
			out[itemKey(list.list[i].text)] = list.list[i+1]
		}
	}
	return out
}

// itemKey is the name of a FETCH data item as a map key: upper case,
// without quotes, since RFC 3501 9 lets header-fld-name be an atom or a
// quoted string (imapserver quotes them, Dovecot does not).
func itemKey(name string) string {
	return strings.ToUpper(strings.ReplaceAll(name, `"`, ""))
}

// imapNode is one parsed IMAP value.
type imapNode struct {
	kind nodeKind
	text string // atom, number, NIL or string
	list []imapNode
}

type nodeKind int

const (
	nodeAtom nodeKind = iota // atoms, numbers and NIL
	nodeString
	nodeList
)

// canonical writes n in one line: lists in parentheses, atoms as they
// are, strings (quoted or literal on the wire) in Go quoting, which the
// golden files can hold whatever bytes a string has.
func (n imapNode) canonical() string {
	switch n.kind {
	case nodeString:
		return strconv.Quote(n.text)
	case nodeList:
		parts := make([]string, len(n.list))
		for i, c := range n.list {
			parts[i] = c.canonical()
		}
		return "(" + strings.Join(parts, " ") + ")"
	}
	return n.text
}

// imapParser parses IMAP values (RFC 3501 9) from wire bytes, or, with
// goQuoted, from canonical() text.
type imapParser struct {
	b        []byte
	goQuoted bool
}

func (p *imapParser) consume(prefix string) bool {
	if bytes.HasPrefix(p.b, []byte(prefix)) {
		p.b = p.b[len(prefix):]
		return true
	}
	return false
}

func (p *imapParser) value() (imapNode, error) {
	if len(p.b) == 0 {
		return imapNode{}, fmt.Errorf("unexpected end")
	}
	switch c := p.b[0]; {
	case c == '(':
		p.b = p.b[1:]
		n := imapNode{kind: nodeList}
		for {
			p.b = bytes.TrimLeft(p.b, " ")
			if len(p.b) == 0 {
				return n, fmt.Errorf("unterminated list")
			}
			if p.b[0] == ')' {
				p.b = p.b[1:]
				return n, nil
			}
			v, err := p.value()
			if err != nil {
				return n, err
			}
			n.list = append(n.list, v)
		}
	case c == '"' && p.goQuoted:
		q, err := strconv.QuotedPrefix(string(p.b))
		if err != nil {
			return imapNode{}, err
		}
		s, _ := strconv.Unquote(q)
		p.b = p.b[len(q):]
		return imapNode{kind: nodeString, text: s}, nil
	case c == '"':
		var s []byte
		for i := 1; i < len(p.b); i++ {
			switch p.b[i] {
			case '\\':
				if i+1 < len(p.b) {
					i++
					s = append(s, p.b[i])
				}
			case '"':
				p.b = p.b[i+1:]
				return imapNode{kind: nodeString, text: string(s)}, nil
			default:
				s = append(s, p.b[i])
			}
		}
		return imapNode{}, fmt.Errorf("unterminated string")
	case c == '{' || (c == '~' && len(p.b) > 1 && p.b[1] == '{'):
		end := bytes.Index(p.b, []byte("}\r\n"))
		if end < 0 {
			return imapNode{}, fmt.Errorf("bad literal")
		}
		num := strings.TrimSuffix(strings.TrimLeft(string(p.b[:end]), "~{"), "+")
		n, err := strconv.Atoi(num)
		if err != nil || end+3+n > len(p.b) {
			return imapNode{}, fmt.Errorf("bad literal size %q", num)
		}
		s := string(p.b[end+3 : end+3+n])
		p.b = p.b[end+3+n:]
		return imapNode{kind: nodeString, text: s}, nil
	}
	// An atom; a section ("BODY[1.HEADER.FIELDS (A B)]<0>") is one.
	i, depth := 0, 0
	for ; i < len(p.b); i++ {
		c := p.b[i]
		if c == '[' {
			depth++
		} else if c == ']' {
			depth--
		} else if depth == 0 && (c == ' ' || c == ')' || c == '(' || c == '\r' || c == '\n') {
			break
		}
	}
	if i == 0 {
		return imapNode{}, fmt.Errorf("unexpected %q", p.b[0])
	}
	a := string(p.b[:i])
	p.b = p.b[i:]
	return imapNode{kind: nodeAtom, text: a}, nil
}

// parseCanonical parses what canonical() wrote.
func parseCanonical(s string) (imapNode, error) {
	p := &imapParser{b: []byte(s), goQuoted: true}
	n, err := p.value()
	if err == nil && len(bytes.TrimSpace(p.b)) > 0 {
		err = fmt.Errorf("trailing %q", p.b)
	}
	return n, err
}

// diffNodes lists every leaf where got and want differ, with its path.
func diffNodes(path string, got, want imapNode) []string {
	if got.kind == nodeList && want.kind == nodeList {
		var out []string
		for i := 0; i < max(len(got.list), len(want.list)); i++ {
			p := fmt.Sprintf("%s[%d]", path, i)
			switch {
			case i >= len(got.list):
				out = append(out, fmt.Sprintf("%s: missing, want %s", p, want.list[i].canonical()))
			case i >= len(want.list):
				out = append(out, fmt.Sprintf("%s: extra %s", p, got.list[i].canonical()))
			default:
				out = append(out, diffNodes(p, got.list[i], want.list[i])...)
			}
		}
		return out
	}
	if got.kind != want.kind || got.text != want.text {
		g, w := got.canonical(), want.canonical()
		if len(g) > 200 || len(w) > 200 {
			g, w = firstDifference(g, w)
		}
		return []string{fmt.Sprintf("%s: got %s, want %s", path, g, w)}
	}
	return nil
}

// firstDifference cuts two long strings down to where they differ.
func firstDifference(a, b string) (string, string) {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	from := max(0, i-40)
	cut := func(s string) string {
		return fmt.Sprintf("…(at %d of %d) %q", i, len(s), s[min(from, len(s)):min(i+60, len(s))])
	}
	return cut(a), cut(b)
}

// literalSize is the size of the literal a response line announces.
func literalSize(line []byte) (int64, bool) {
	lit, ok := wire.LiteralAt(line)
	return lit.Size, ok && !lit.Sync
}
