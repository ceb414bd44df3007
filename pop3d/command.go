package main

import (
	"bufio"
	"errors"
	"io"
	"strconv"
	"strings"
)

// maxCommandLine is the longest command line, CRLF included. RFC 2449 4:
// "The maximum length of a command is increased from 47 characters ... to
// 255 octets, including the terminating CRLF."
const maxCommandLine = 255

// maxSASLLine bounds one line of a SASL exchange (a base64 response).
// RFC 5034 4: an initial response that would make the AUTH command longer
// than 255 octets is sent as a continuation instead, so continuation lines
// must be allowed to be longer than commands; 12288 octets is the bound
// RFC 4954 4 sets for the same lines in SMTP.
const maxSASLLine = 12288

// Errors of reading a line. Both are answered and the session goes on.
var (
	errLineTooLong = errors.New("pop3d: line too long")
	errBareLF      = errors.New("pop3d: line not terminated by CRLF")
)

// readLine reads one CRLF-terminated line of at most max octets (CRLF
// included) into buf and returns it without the CRLF. A longer line is read
// to its end and thrown away a buffer at a time, so memory stays bounded,
// and errLineTooLong is returned. Lines ended by a bare LF are refused:
// the wire is CRLF only.
func readLine(r *bufio.Reader, buf []byte, max int) ([]byte, error) {
	line := buf[:0]
	tooLong := false
	for {
		seg, err := r.ReadSlice('\n')
		if !tooLong {
			if len(line)+len(seg) > max {
				tooLong = true
			} else {
				line = append(line, seg...)
			}
		}
		switch {
		case err == nil:
			if tooLong {
				return nil, errLineTooLong
			}
			n := len(line)
			if n < 2 || line[n-2] != '\r' {
				return nil, errBareLF
			}
			return line[:n-2], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(seg) > 0:
			return nil, io.ErrUnexpectedEOF
		default:
			return nil, err
		}
	}
}

// command is one parsed command line: the keyword, upper-cased, and the
// rest of the line after the single space that follows it.
type command struct {
	verb string
	arg  string
}

// errBadCommand reports a line that is not a command at all.
var errBadCommand = errors.New("pop3d: malformed command line")

// parseCommand splits a command line. RFC 2449 3: a keyword is 3 or 4
// printable characters, case-insensitive, separated from its arguments by a
// single space; arguments are printable. Control characters are refused
// anywhere on the line, so nothing can smuggle a line end into a log or a
// later line; octets above 0x7E are let through for passwords in UTF-8.
func parseCommand(line []byte) (command, error) {
	for _, c := range line {
		if c < 0x20 || c == 0x7f {
			return command{}, errBadCommand
		}
	}
	s := string(line)
	verb, arg, hasArg := strings.Cut(s, " ")
	if len(verb) < 3 || len(verb) > 4 {
		return command{}, errBadCommand
	}
	for i := 0; i < len(verb); i++ {
		if c := verb[i]; c < 0x21 || c > 0x7e {
			return command{}, errBadCommand
		}
	}
	if hasArg && arg == "" {
		return command{}, errBadCommand
	}
	return command{verb: strings.ToUpper(verb), arg: arg}, nil
}

// args splits the arguments of a command at single spaces and checks their
// number. RFC 1939 3: arguments are separated by a single space; an empty
// argument (two spaces, a trailing space) is a syntax error.
func (c command) args(min, max int) ([]string, bool) {
	if c.arg == "" {
		return nil, min == 0
	}
	a := strings.Split(c.arg, " ")
	if len(a) < min || len(a) > max {
		return nil, false
	}
	for _, s := range a {
		if s == "" {
			return nil, false
		}
	}
	return a, true
}

// parseNumber parses a message number or line count: decimal digits only
// (RFC 1939 3: no sign, no spaces), at most 10 of them.
func parseNumber(s string) (uint64, bool) {
	if s == "" || len(s) > 10 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil
}
