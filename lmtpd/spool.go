package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/textproto"
	"os"
)

// spooled is one received message, held once so that every copy is
// written from it: in memory when it is no larger than
// lmtpd.memory_buffer, else in an unlinked temporary file, so that a large
// message is never held in memory. Nothing of it survives a crash: the
// sender has no 250 yet and will send again.
type spooled struct {
	ra     io.ReaderAt // the message: a *bytes.Reader or the *os.File
	f      *os.File    // the spool file, nil when the message is in memory
	size   int64
	header textproto.MIMEHeader // parsed header section, for Sieve and filters
}

// spool reads the message from r, into memory up to limit bytes and into
// a temporary file in the spool directory beyond. The server's DATA reader
// enforces the size limit.
func (a *agent) spool(r io.Reader, limit int64) (*spooled, error) {
	var buf bytes.Buffer
	n, err := buf.ReadFrom(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("receive message: %w", err)
	}
	if n <= limit {
		sp := &spooled{ra: bytes.NewReader(buf.Bytes()), size: n}
		sp.header = readHeader(sp.reader())
		return sp, nil
	}
	f, err := os.CreateTemp(a.spoolDir, "msg-")
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	// Unlinked at once: the file lives as long as the descriptor.
	os.Remove(f.Name())
	if _, err := f.Write(buf.Bytes()); err != nil {
		f.Close()
		return nil, fmt.Errorf("spool: %w", err)
	}
	rest, err := io.Copy(f, r)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("spool: %w", err)
	}
	sp := &spooled{ra: f, f: f, size: n + rest}
	sp.header = readHeader(sp.reader())
	return sp, nil
}

// reader returns a fresh reader of the whole message.
func (sp *spooled) reader() io.Reader {
	return sp.section()
}

func (sp *spooled) section() *io.SectionReader {
	return io.NewSectionReader(sp.ra, 0, sp.size)
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
			return io.NewSectionReader(sp.ra, sp.size, 0), nil
		}
		if len(line) == 1 || (len(line) == 2 && line[0] == '\r') {
			return io.NewSectionReader(sp.ra, off, sp.size-off), nil
		}
	}
}

func (sp *spooled) close() {
	if sp.f != nil {
		sp.f.Close()
	}
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
