package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-smtp"
	"golang.org/x/sys/unix"

	"tern/common/config"
	"tern/common/mailaddr"
	"tern/common/maillog"
	"tern/common/trace"
)

// Local submission: the socket of smtpd.local_submit is how sendmail(1)
// hands over mail from programs on this machine (cron, mail(1), scripts).
//
// SECURITY. The socket is mode 0666, so any local user can connect, and
// none needs a password: the kernel tells smtpd who the peer is
// (SO_PEERCRED, the uid of the process that connected; it cannot be
// forged from user space). That uid fixes the envelope sender:
//
//   - A user's own sender is login@hostname, where login is the Unix
//     name of the uid (or "uid" followed by the number, when it has no
//     usable name) and hostname is tern.toml's hostname. sendmail builds
//     the same address from the same config, so the two agree.
//   - Any other reverse path, <> included, is refused (553 5.7.1) unless
//     the peer is trusted: root, the user smtpd runs as, or a user listed
//     in smtpd.trusted_users. A refusal is loud on purpose: mail is never
//     sent under a sender other than the one the caller asked for.
//   - The session counts as authenticated for relaying (the peer is on
//     this machine and identified), offers no AUTH, and records the uid in
//     a Received field, so every local message can be traced to its user.
//
// Users never write the queue themselves: it stays private to smtpd's
// user, and the message reaches it only through this session, with the
// same checks (size, strict line endings, loop count) as any other.

// localPeer is the identity of a process connected to the local
// submission socket.
type localPeer struct {
	uid     uint32
	pid     int32
	login   string // the Unix user name, usable as a local part
	sender  string // login@hostname: the only sender of an untrusted peer
	trusted bool   // may set any sender
}

// errNoCredentials means the kernel could not tell who the peer is; the
// connection is refused.
var errNoCredentials = errors.New("smtpd: no peer credentials on the local submission socket")

// peerOf reads the peer's credentials from a unix socket connection and
// decides its sender and whether it is trusted.
func (s *server) peerOf(c net.Conn) (*localPeer, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return nil, fmt.Errorf("%w: %T is not a unix socket", errNoCredentials, c)
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errNoCredentials, err)
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return nil, fmt.Errorf("%w: %v", errNoCredentials, err)
	}
	if credErr != nil {
		return nil, fmt.Errorf("%w: %v", errNoCredentials, credErr)
	}
	p := &localPeer{uid: cred.Uid, pid: cred.Pid, login: config.LocalLogin(cred.Uid)}
	p.sender = p.login + "@" + s.cfg().Hostname
	p.trusted = s.trustedUID(cred.Uid, p.login)
	return p, nil
}

// trustedUID: root, smtpd's own user, and smtpd.trusted_users (by name
// or by number) may set any envelope sender.
func (s *server) trustedUID(uid uint32, login string) bool {
	if uid == 0 || int(uid) == os.Getuid() {
		return true
	}
	return slices.Contains(s.cfg().SMTPD.TrustedUsers, login) ||
		slices.Contains(s.cfg().SMTPD.TrustedUsers, strconv.FormatUint(uint64(uid), 10))
}

// localMail is MAIL FROM on the local submission socket: the sender rule
// of the SECURITY note above.
func (s *session) localMail(from string, opts *smtp.MailOptions) error {
	p := s.peer
	if from != "" {
		if _, _, err := mailaddr.Split(from); err != nil {
			return s.refuse(replyBadSender, "mail", from, "")
		}
	}
	if !p.trusted && (from == "" || !strings.EqualFold(from, p.sender)) {
		maillog.Rejected(s.log, maillog.Rejection{Stage: "mail", From: from, Code: 553, Reason: p.login + " may not set the envelope sender"})
		return &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 7, 1},
			Message: "Only trusted users may set the envelope sender; yours is <" + p.sender + ">"}
	}
	s.from = from
	if opts != nil {
		s.mailOpts = *opts
	}
	return nil
}

// localReceivedHeader is the trace field of a locally submitted message
// (trace.LocalReceived): the uid in the comment of the "by" clause.
func (s *session) localReceivedHeader(id string) string {
	return trace.LocalReceived(s.srv.cfg().Hostname, s.peer.uid, s.peer.login, id, s.soleRecipient(), time.Now())
}
