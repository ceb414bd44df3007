package main

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
)

// errHeaderTooBig: the header is larger than smtpd.max_header_size.
var errHeaderTooBig = errors.New("smtpd: message header too large")

// field is one header field exactly as received: raw holds the name, the
// colon, the value with its folding, and the final CRLF. Fields the
// filters do not change are written back byte for byte, so that DKIM
// signatures over them stay valid.
type field struct {
	name string // as written; compare with strings.EqualFold
	raw  []byte
}

// value is the field's value: after the colon, without the final CRLF,
// folding kept.
func (f field) value() string {
	i := bytes.IndexByte(f.raw, ':')
	if i < 0 {
		return ""
	}
	return strings.TrimSuffix(string(f.raw[i+1:]), "\r\n")
}

// newField builds a field from a name and a value given by a filter. A
// line break in the value (LF or CRLF) becomes CRLF followed by a tab
// unless the next line already starts with white space (RFC 5322 2.2.3
// folding), so no value can end the header early or start a new field.
func newField(name, value string) field {
	value = strings.ReplaceAll(value, "\r\n", "\n")
	value = strings.ReplaceAll(value, "\r", "")
	lines := strings.Split(value, "\n")
	var b strings.Builder
	b.WriteString(name)
	b.WriteString(":")
	for i, l := range lines {
		if i > 0 {
			b.WriteString("\r\n")
			if !strings.HasPrefix(l, " ") && !strings.HasPrefix(l, "\t") {
				b.WriteString("\t")
			}
		} else if l != "" && l[0] != ' ' && l[0] != '\t' {
			b.WriteString(" ")
		}
		b.WriteString(l)
	}
	b.WriteString("\r\n")
	return field{name: name, raw: []byte(b.String())}
}

// validFieldName: RFC 5322 2.2, printable US-ASCII except colon.
func validFieldName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c <= ' ' || c >= 0x7f || c == ':' {
			return false
		}
	}
	return true
}

// header is a message header as a list of fields, in order.
type header []field

// readHeader reads the header from r: every field up to the empty line
// (consumed) or the first line that is not a field (left for the body,
// as RFC 5322 2.2 gives no other reading of it). n is the number of bytes
// of the header, the empty line included, so that the body starts at
// offset n of the message. A header over max bytes is errHeaderTooBig.
func readHeader(r io.Reader, max int) (h header, n int64, err error) {
	br := bufio.NewReader(r)
	for {
		line, err := readLine(br, max-int(n))
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, 0, err
		}
		if len(line) == 0 {
			return h, n, nil // end of message
		}
		switch {
		case bytes.Equal(line, []byte("\r\n")) || bytes.Equal(line, []byte("\n")):
			return h, n + int64(len(line)), nil
		case line[0] == ' ' || line[0] == '\t':
			if len(h) == 0 {
				// Folding with nothing to fold into: not a header.
				return h, n, nil
			}
			h[len(h)-1].raw = append(h[len(h)-1].raw, line...)
		default:
			i := bytes.IndexByte(line, ':')
			if i <= 0 || !validFieldName(strings.TrimRight(string(line[:i]), " \t")) {
				return h, n, nil // the body starts here
			}
			h = append(h, field{name: strings.TrimRight(string(line[:i]), " \t"), raw: append([]byte(nil), line...)})
		}
		n += int64(len(line))
		if errors.Is(err, io.EOF) {
			return h, n, nil
		}
	}
}

// readLine reads one line, its end included, of at most max bytes.
func readLine(br *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > max {
			return nil, errHeaderTooBig
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		return line, err
	}
}

// bytes is the header as written: every field, without the empty line.
func (h header) bytes() []byte {
	var b bytes.Buffer
	for _, f := range h {
		b.Write(f.raw)
	}
	return b.Bytes()
}

// values are the values of the fields called name, in order.
func (h header) values(name string) []string {
	var out []string
	for _, f := range h {
		if strings.EqualFold(f.name, name) {
			out = append(out, f.value())
		}
	}
	return out
}

// remove drops the fields for which drop is true.
func (h header) remove(drop func(field) bool) header {
	out := h[:0]
	for _, f := range h {
		if !drop(f) {
			out = append(out, f)
		}
	}
	return out
}

// insert puts f at position i (0 is the top; past the end appends).
func (h header) insert(i int, f field) header {
	if i < 0 {
		i = 0
	}
	if i >= len(h) {
		return append(h, f)
	}
	h = append(h, field{})
	copy(h[i+1:], h[i:])
	h[i] = f
	return h
}

// change replaces the index-th (1-based) field called name, or deletes
// it when value is "" (the milter protocol's SMFIR_CHGHEADER). A missing
// field is added at the end, as sendmail and Postfix do.
func (h header) change(name string, index int, value string) header {
	seen := 0
	for i, f := range h {
		if !strings.EqualFold(f.name, name) {
			continue
		}
		seen++
		if seen != index {
			continue
		}
		if value == "" {
			return append(h[:i], h[i+1:]...)
		}
		h[i] = newField(f.name, value)
		return h
	}
	if value == "" {
		return h
	}
	return append(h, newField(name, value))
}
