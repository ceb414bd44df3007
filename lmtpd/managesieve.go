package main

// ManageSieve (RFC 5804): the server, its wire syntax and its replies. The
// sessions' states and commands are in managesieve_session.go, the scripts
// on disk in sievestore.go.

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"tern/common/auth"
	"tern/common/authguard"
	"tern/common/config"
	"tern/common/serve"
)

// msServer serves ManageSieve on the connections its serve.Server admits.
// Its keys, a section read only at start, are those of cfg.
type msServer struct {
	cfg   *config.Config
	users *auth.DB
	tls   *tls.Config // nil: no STARTTLS, logins on loopback only
	guard *authguard.Guard
	log   *slog.Logger
	conns *serve.Server
}

func newMSServer(cfg *config.Config, users *auth.DB, tlsConfig *tls.Config, guard *authguard.Guard, log *slog.Logger) *msServer {
	srv := &msServer{cfg: cfg, users: users, tls: tlsConfig, guard: guard,
		log: log.With("service", "managesieve")}
	srv.conns = &serve.Server{
		Name:     "managesieve",
		Log:      srv.log,
		IDPrefix: "s",
		Limits: func() serve.Limits {
			return serve.Limits{MaxConnections: cfg.ManageSieve.MaxConnections,
				PerAddr: cfg.ManageSieve.MaxConnectionsPerIP, LoginTimeout: cfg.Login.Timeout.D()}
		},
		// RFC 5804 1.3: TRYLATER, the server is busy.
		Refuse: func(r serve.Refusal) string { return `BYE (TRYLATER) "` + r.String() + `"` },
		Handle: func(c *serve.Conn) { newMSSession(srv, c).serve() },
	}
	return srv
}

// close releases the login brake's table.
func (srv *msServer) close() {
	if srv.guard != nil {
		srv.guard.Close()
	}
}

// shutdown ends every session (each answers BYE) within grace.
func (srv *msServer) shutdown(grace time.Duration) {
	srv.conns.Shutdown(grace)
}

// Wire syntax (RFC 5804 4):
//
//	command    = atom *(SP argument) CRLF
//	argument   = string / number
//	string     = quoted / literal-c2s
//	quoted     = DQUOTE *1024QUOTED-CHAR DQUOTE   ; \" and \\ escaped
//	literal-c2s = "{" number [ "+" ] "}" CRLF *OCTET
//	number     = 1*DIGIT                          ; < 4294967296

var (
	errMSLineTooLong = errors.New("managesieve: line too long")
	errMSSyntax      = errors.New("managesieve: syntax error")
	// errMSTooBig: a literal over the limit was read and thrown away.
	errMSTooBig = errors.New("managesieve: literal too big")
	// errMSHuge: a literal too big even to skip; the stream is lost.
	errMSHuge = errors.New("managesieve: literal far too big")
)

// msArg is one argument: a string, or a number when isNum.
type msArg struct {
	s     string
	n     int64
	isNum bool
}

// maxQuoted is RFC 5804 4's bound on a quoted string.
const maxQuoted = 1024

// readCommand reads one command with its literals. maxLine bounds the text
// outside literals, maxLiteral each literal, and the whole command is at
// most maxLine+maxLiteral bytes. A literal larger than maxLiteral is read
// and thrown away when it is at most four times that, so that a client that
// sent it without waiting (RFC 5804 4: literal-c2s is non-synchronizing)
// gets an answer; a larger one ends the session.
func readCommand(r *bufio.Reader, maxLine int, maxLiteral int64) (string, []msArg, error) {
	var (
		verb   string
		args   []msArg
		total  int64
		tooBig bool
	)
	for {
		line, err := readMSLine(r, maxLine)
		if err != nil {
			return "", nil, err
		}
		total += int64(len(line))
		if total > int64(maxLine)+maxLiteral {
			return "", nil, errMSLineTooLong
		}
		rest := line
		if verb == "" {
			i := strings.IndexByte(rest, ' ')
			if i < 0 {
				i = len(rest)
			}
			verb, rest = strings.ToUpper(rest[:i]), rest[i:]
			if verb == "" {
				return "", nil, errMSSyntax
			}
		}
		lit := int64(-1)
		for rest != "" {
			if rest[0] != ' ' {
				return verb, nil, errMSSyntax
			}
			rest = rest[1:]
			switch {
			case strings.HasPrefix(rest, `"`):
				s, n, err := unquote(rest)
				if err != nil {
					return verb, nil, err
				}
				args = append(args, msArg{s: s})
				rest = rest[n:]
			case strings.HasPrefix(rest, "{") && strings.HasSuffix(rest, "}"):
				num := strings.TrimSuffix(rest[1:len(rest)-1], "+")
				n, err := strconv.ParseInt(num, 10, 64)
				if err != nil || n < 0 || n > 4294967295 {
					return verb, nil, errMSSyntax
				}
				lit, rest = n, ""
			default:
				i := strings.IndexByte(rest, ' ')
				if i < 0 {
					i = len(rest)
				}
				n, err := strconv.ParseInt(rest[:i], 10, 64)
				if err != nil || n < 0 || n > 4294967295 {
					return verb, nil, errMSSyntax
				}
				args = append(args, msArg{n: n, isNum: true, s: rest[:i]})
				rest = rest[i:]
			}
		}
		if lit < 0 {
			if tooBig {
				return verb, nil, errMSTooBig
			}
			return verb, args, nil
		}
		if lit > maxLiteral {
			if lit > 4*maxLiteral {
				return verb, nil, fmt.Errorf("%w: %d bytes", errMSHuge, lit)
			}
			if _, err := io.CopyN(io.Discard, r, lit); err != nil {
				return verb, nil, err
			}
			tooBig = true
			args = append(args, msArg{})
			continue
		}
		total += lit
		if total > int64(maxLine)+maxLiteral {
			return "", nil, errMSLineTooLong
		}
		b := make([]byte, lit)
		if _, err := io.ReadFull(r, b); err != nil {
			return verb, nil, err
		}
		args = append(args, msArg{s: string(b)})
	}
}

// readMSLine reads one line without its CRLF, at most max bytes with it.
func readMSLine(r *bufio.Reader, max int) (string, error) {
	var b []byte
	for {
		frag, err := r.ReadSlice('\n')
		b = append(b, frag...)
		if len(b) > max {
			// Skip to the end of the line, so the next command starts clean.
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = r.ReadSlice('\n')
			}
			if err != nil {
				return "", err
			}
			return "", errMSLineTooLong
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil {
			return "", err
		}
		break
	}
	if len(b) < 2 || b[len(b)-2] != '\r' {
		return "", errMSSyntax
	}
	return string(b[:len(b)-2]), nil
}

// unquote reads a quoted string at the start of s and returns it and the
// bytes it took.
func unquote(s string) (string, int, error) {
	var out strings.Builder
	for i := 1; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			return out.String(), i + 1, nil
		case '\\':
			i++
			if i >= len(s) || (s[i] != '"' && s[i] != '\\') {
				return "", 0, errMSSyntax
			}
			out.WriteByte(s[i])
		case 0:
			return "", 0, errMSSyntax
		default:
			out.WriteByte(c)
		}
		if out.Len() > maxQuoted {
			return "", 0, errMSSyntax
		}
	}
	return "", 0, errMSSyntax
}

// msString is a string as the server sends it: quoted when short and free
// of CR, LF and NUL, else a literal (RFC 5804 4: literal-s2c).
func msString(s string) string {
	if len(s) <= maxQuoted && !strings.ContainsAny(s, "\r\n\x00") {
		return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
	}
	return "{" + strconv.Itoa(len(s)) + "}\r\n" + s
}

// msReply is a response (RFC 5804 1.2): OK, NO or BYE, an optional
// response code and an optional human-readable text.
type msReply struct {
	kind string // "OK", "NO" or "BYE"
	code string // e.g. "QUOTA/MAXSIZE", `TAG "x"`, or ""
	text string
	// bad counts the reply as a protocol error towards max_errors.
	bad bool
	// quit ends the session once the reply is sent.
	quit bool
	// then runs once the reply is flushed (the STARTTLS handshake).
	then func() error
}

func (r msReply) String() string {
	s := r.kind
	if r.code != "" {
		s += " (" + r.code + ")"
	}
	if r.text != "" {
		s += " " + msString(r.text)
	}
	return s + "\r\n"
}

func msOK(text string) msReply { return msReply{kind: "OK", text: text} }
func msNO(code, text string) msReply {
	return msReply{kind: "NO", code: code, text: text}
}

var msSyntax = msReply{kind: "NO", text: "syntax error", bad: true}

// msReplyFor turns an error of the script store into the response, with
// the code of RFC 5804 1.3 that tells a client what went wrong.
func msReplyFor(err error, log *slog.Logger) msReply {
	switch {
	case errors.Is(err, errNoScript):
		return msNO("NONEXISTENT", "there is no script of that name")
	case errors.Is(err, errScriptExists):
		return msNO("ALREADYEXISTS", "a script of that name exists")
	case errors.Is(err, errScriptActive):
		return msNO("ACTIVE", "the script is active; deactivate it first")
	case errors.Is(err, errBadName):
		return msNO("", "bad script name")
	case errors.Is(err, errTooMany):
		return msNO("QUOTA/MAXSCRIPTS", "too many scripts")
	case errors.Is(err, errTooBig):
		return msNO("QUOTA/MAXSIZE", "script too big")
	}
	log.Error("sieve store", "err", err)
	return msNO("TRYLATER", "cannot do that now, try again later")
}
