package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"

	"tern/common/config"
	"tern/common/submit"
)

// smtpOnStdio is sendmail -bs: an SMTP dialogue on standard input and
// output, relayed to smtpd's local submission socket, where the same
// rules apply as to -bm (the sender is checked against the caller's
// uid). Lines from standard input may end in LF alone; they are sent
// with CRLF, since the dialogue is the local caller's own and smtpd takes
// CRLF only. When smtpd cannot be reached the caller gets a 421 reply
// and the exit code 75.
func smtpOnStdio(cfg *config.Config, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, cancel := context.WithTimeout(context.Background(), cfg.SMTPD.ConnectTimeout.D())
	conn, err := submit.Dial(ctx, cfg.SMTPD.LocalSubmit)
	cancel()
	if err != nil {
		fmt.Fprintf(stdout, "421 4.3.0 %s local submission unavailable, try again later\r\n", cfg.Hostname)
		fmt.Fprintf(stderr, "sendmail: %v\n", err)
		return exTempFail
	}
	defer conn.Close()
	go func() {
		br := bufio.NewReader(stdin)
		for {
			line, err := br.ReadString('\n')
			if len(line) > 0 {
				if line[len(line)-1] == '\n' && (len(line) < 2 || line[len(line)-2] != '\r') {
					line = line[:len(line)-1] + "\r\n"
				}
				if _, werr := io.WriteString(conn, line); werr != nil {
					return
				}
			}
			if err != nil {
				break
			}
		}
		// The caller is done talking: let smtpd see the end, and still
		// relay its last replies.
		if uc, ok := conn.(*net.UnixConn); ok {
			uc.CloseWrite()
		}
	}()
	if _, err := io.Copy(stdout, conn); err != nil {
		fmt.Fprintf(stderr, "sendmail: %v\n", err)
		return exTempFail
	}
	// smtpd closed the session (QUIT, or an error it reported on stdout).
	// Do not wait for more input nobody will read.
	return exOK
}
