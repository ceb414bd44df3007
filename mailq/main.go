// Command mailq lists and controls tern's mail queue; called as sendmail it
// is the Unix submission command, and called as newaliases it checks the
// aliases file. `make build` links bin/sendmail to it. See tern-mailq(1)
// and tern-sendmail(1).
//
// mailq reads and changes the queue only through tern/common/queue, with
// the queue's own locks: a message being delivered is locked by smtpd's
// queue runner, and mailq then answers "busy, retry" instead of waiting or
// racing it.
//
// # SECURITY
//
// mailq acts on the queue directly, so it needs the rights of the queue's
// owner (the user smtpd runs as). Run by root it first switches to that
// owner (the owner of state_dir/queue), so that every file it writes stays
// readable by smtpd; other users get "permission denied".
//
// sendmail never touches the queue. It is a client of smtpd's local
// submission socket (smtpd.local_submit, mode 0666), where smtpd learns the
// caller's uid from the kernel (SO_PEERCRED) and so knows who submits:
// local users need no password, and cannot forge another user's envelope
// sender (only root, smtpd's own user and smtpd.trusted_users may use -f),
// nor write into the queue by any other path (it is private to smtpd's
// user). A setgid drop directory, the other classic design, would need a
// privileged helper to move files and could not tell who wrote them
// without trusting the file's owner; the socket gets the identity from
// the kernel and reuses every check of smtpd's SMTP session. The price is
// that sendmail needs smtpd running: when it is not, sendmail exits 75
// (EX_TEMPFAIL) and says so, and the caller keeps the message.
package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
)

func main() {
	os.Exit(run(os.Args, os.Stdin, os.Stdout, os.Stderr))
}

// run chooses the program by the name it was called by.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	name := filepath.Base(args[0])
	switch {
	case name == "sendmail" || strings.HasSuffix(name, "-sendmail"):
		return sendmailMain(args[1:], stdin, stdout, stderr)
	case name == "newaliases":
		return newaliasesMain(args[1:], stdout, stderr)
	default:
		return mailqMain(args[1:], stdout, stderr)
	}
}
