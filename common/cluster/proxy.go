package cluster

import (
	"bufio"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"
)

// Backend is a session logged in on a home host, ready to relay.
type Backend struct {
	Host string
	// Reply is what the home host answered the login: for IMAP the
	// capabilities of its tagged OK, for POP3 the text of its +OK.
	Reply string
	conn  net.Conn
	r     *bufio.Reader
}

// maxLine bounds one line read from a home host during the login.
const maxLine = 8192

// ErrRefused is a home host that answered the proxy login with NO or -ERR.
var ErrRefused = errors.New("cluster: home host refused the proxy login")

// readLine reads one CRLF line within maxLine.
func readLine(r *bufio.Reader) (string, error) {
	var b []byte
	for {
		frag, more, err := r.ReadLine()
		if err != nil {
			return "", err
		}
		b = append(b, frag...)
		if len(b) > maxLine {
			return "", errors.New("line from home host too long")
		}
		if !more {
			return string(b), nil
		}
	}
}

// LoginIMAP connects to host's imapd internal port for the client at
// client (whose connection arrived on local) and logs user in there
// (RFC 9051 6.2.2 AUTHENTICATE with an initial response, RFC 4959). The
// Reply is the capability list of the tagged OK, to be given to the
// client as the answer to its own login.
func (c *Cluster) LoginIMAP(host, user string, client, local net.Addr) (*Backend, error) {
	nc, err := c.DialProxied(host, c.cfg.IMAPPort, client, local)
	if err != nil {
		return nil, err
	}
	b := &Backend{Host: host, conn: nc, r: bufio.NewReaderSize(nc, 4096)}
	fail := func(err error) (*Backend, error) {
		nc.Close()
		return nil, fmt.Errorf("IMAP login on %s: %w", host, err)
	}
	greeting, err := readLine(b.r)
	if err != nil {
		return fail(err)
	}
	if !strings.HasPrefix(greeting, "* OK") {
		return fail(fmt.Errorf("greeting %q", greeting))
	}
	const tag = "P1"
	cmd := tag + " AUTHENTICATE PLAIN " + base64.StdEncoding.EncodeToString(c.PlainResponse(user)) + "\r\n"
	if _, err := io.WriteString(nc, cmd); err != nil {
		return fail(err)
	}
	for {
		line, err := readLine(b.r)
		if err != nil {
			return fail(err)
		}
		rest, tagged := strings.CutPrefix(line, tag+" ")
		if !tagged {
			continue // untagged data before the tagged reply
		}
		ok, found := strings.CutPrefix(rest, "OK [CAPABILITY ")
		if !found {
			return fail(fmt.Errorf("%w: %q", ErrRefused, line))
		}
		caps, _, found := strings.Cut(ok, "]")
		if !found {
			return fail(fmt.Errorf("tagged OK %q", line))
		}
		b.Reply = caps
		nc.SetDeadline(time.Time{})
		return b, nil
	}
}

// LoginPOP3 is LoginIMAP for pop3d (RFC 5034 4, AUTH PLAIN with an initial
// response). The Reply is the text of the +OK, which says how many
// messages the maildrop holds.
func (c *Cluster) LoginPOP3(host, user string, client, local net.Addr) (*Backend, error) {
	nc, err := c.DialProxied(host, c.cfg.POP3Port, client, local)
	if err != nil {
		return nil, err
	}
	b := &Backend{Host: host, conn: nc, r: bufio.NewReaderSize(nc, 4096)}
	fail := func(err error) (*Backend, error) {
		nc.Close()
		return nil, fmt.Errorf("POP3 login on %s: %w", host, err)
	}
	greeting, err := readLine(b.r)
	if err != nil {
		return fail(err)
	}
	if !strings.HasPrefix(greeting, "+OK") {
		return fail(fmt.Errorf("greeting %q", greeting))
	}
	cmd := "AUTH PLAIN " + base64.StdEncoding.EncodeToString(c.PlainResponse(user)) + "\r\n"
	if _, err := io.WriteString(nc, cmd); err != nil {
		return fail(err)
	}
	line, err := readLine(b.r)
	if err != nil {
		return fail(err)
	}
	text, ok := strings.CutPrefix(line, "+OK ")
	if !ok {
		return fail(fmt.Errorf("%w: %q", ErrRefused, line))
	}
	b.Reply = text
	nc.SetDeadline(time.Time{})
	return b, nil
}

// Close ends a backend that is not relayed after all.
func (b *Backend) Close() { b.conn.Close() }

// End is one side of a relay: where its bytes come from (a reader that may
// hold bytes already buffered), where they go, and the connection whose
// deadlines and close govern both.
type End struct {
	R    io.Reader
	W    io.Writer
	Conn net.Conn
}

// Relay copies bytes both ways between the client and the home host until
// either side closes, then closes both. A client that sends nothing for
// idle is cut off, as the session would be on the home host; every write
// has idle to complete. The home host keeps its own timeouts. It returns
// the bytes sent each way.
func (b *Backend) Relay(client End, idle time.Duration) (up, down int64) {
	backend := End{R: b.r, W: b.conn, Conn: b.conn}
	var wg sync.WaitGroup
	var once sync.Once
	stop := func() {
		once.Do(func() {
			b.conn.Close()
			// Wake the client read; the caller closes the connection.
			client.Conn.SetDeadline(time.Now())
		})
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		down = pump(backend, client, 0, idle)
		stop()
	}()
	up = pump(client, backend, idle, idle)
	stop()
	wg.Wait()
	return up, down
}

// pump copies from src to dst; readIdle 0 waits for src without end.
func pump(src, dst End, readIdle, writeIdle time.Duration) int64 {
	buf := make([]byte, 16<<10)
	var n int64
	for {
		if readIdle > 0 {
			src.Conn.SetReadDeadline(time.Now().Add(readIdle))
		}
		k, err := src.R.Read(buf)
		if k > 0 {
			dst.Conn.SetWriteDeadline(time.Now().Add(writeIdle))
			if _, werr := dst.W.Write(buf[:k]); werr != nil {
				return n
			}
			n += int64(k)
		}
		if err != nil {
			return n
		}
	}
}
