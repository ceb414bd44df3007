package main

import (
	"bufio"
	"fmt"
	"io"
	"net/textproto"
	"os"
)

// spooled is one received message, held once in an unlinked temporary
// file so that every copy is written from it without keeping the message
// in memory. Nothing of it survives a crash: the sender has no 250 yet and
// will send again.
type spooled struct {
	f      *os.File
	size   int64
	header textproto.MIMEHeader // parsed header section, for Sieve and filters
}

// spool reads the message from r into a temporary file in the spool
// directory. go-smtp's reader enforces the size limit.
func (a *agent) spool(r io.Reader) (*spooled, error) {
	f, err := os.CreateTemp(a.spoolDir, "msg-")
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	// Unlinked at once: the file lives as long as the descriptor.
	os.Remove(f.Name())
	n, err := io.Copy(f, r)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("spool: %w", err)
	}
	sp := &spooled{f: f, size: n}
	sp.header = readHeader(sp.reader())
	return sp, nil
}

// reader returns a fresh reader of the whole message.
func (sp *spooled) reader() io.Reader {
	return sp.section()
}

func (sp *spooled) section() *io.SectionReader {
	return io.NewSectionReader(sp.f, 0, sp.size)
}

// body returns a reader positioned after the header section (RFC 5322
// 2.1: the first empty line ends it), or at the end when there is none.
func (sp *spooled) body() (io.Reader, error) {
	br := bufio.NewReader(sp.section())
	var off int64
	for {
		line, err := br.ReadSlice('\n')
		off += int64(len(line))
		if err == bufio.ErrBufferFull {
			// A header line longer than the buffer: keep reading it.
			for err == bufio.ErrBufferFull {
				line, err = br.ReadSlice('\n')
				off += int64(len(line))
			}
		}
		if err != nil {
			return io.NewSectionReader(sp.f, sp.size, 0), nil
		}
		if len(line) == 1 || (len(line) == 2 && line[0] == '\r') {
			return io.NewSectionReader(sp.f, off, sp.size-off), nil
		}
	}
}

func (sp *spooled) close() {
	sp.f.Close()
}

// readHeader parses the header section leniently: a malformed header still
// yields the fields before the problem, and the message is delivered
// unchanged whatever its header looks like.
func readHeader(r io.Reader) textproto.MIMEHeader {
	h, _ := textproto.NewReader(bufio.NewReader(r)).ReadMIMEHeader()
	if h == nil {
		h = textproto.MIMEHeader{}
	}
	return h
}
