package main

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/smtp"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"tern/test/peer"
)

// TestPostfix has a real Postfix deliver through lmtpd with
// mailbox_transport = lmtp:unix:… . It needs root and the postfix package.
func TestPostfix(t *testing.T) {
	postfix, err := exec.LookPath("postfix")
	if err != nil {
		t.Skip("postfix not installed (apt-get install postfix)")
	}
	if os.Geteuid() != 0 {
		t.Skip("running Postfix needs root")
	}
	if testing.Short() {
		t.Skip("slow")
	}
	e := startServer(t, nil)
	// Postfix's lmtp client runs as the postfix user.
	if err := os.Chmod(filepath.Dir(e.unix), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(e.unix, 0o666); err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "postfix")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	pf, err := user.Lookup("postfix")
	if err != nil {
		t.Skipf("no postfix user: %v", err)
	}
	uid, _ := strconv.Atoi(pf.Uid)
	gid, _ := strconv.Atoi(pf.Gid)
	for _, d := range []string{"queue", "data"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chown(filepath.Join(dir, "data"), uid, gid); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	etc := filepath.Join(dir, "etc")
	write(t, filepath.Join(etc, "master.cf"), fmt.Sprintf(peer.PostfixMasterCF, addr))
	write(t, filepath.Join(etc, "main.cf"), strings.Join([]string{
		"compatibility_level = 3.6",
		"queue_directory = " + filepath.Join(dir, "queue"),
		"data_directory = " + filepath.Join(dir, "data"),
		"mail_owner = postfix",
		"setgid_group = postdrop",
		"myhostname = pf.example.test",
		"mydomain = example.test",
		"mydestination = example.test",
		"inet_interfaces = all", // master.cf names the address
		"inet_protocols = ipv4",
		"mynetworks = 127.0.0.0/8",
		"local_recipient_maps =",
		"alias_maps =",
		"alias_database =",
		"mailbox_transport = lmtp:unix:" + e.unix,
		"maillog_file = " + filepath.Join(dir, "maillog"),
		"maillog_file_prefixes = " + dir,
		"smtpd_banner = $myhostname ESMTP",
		"biff = no",
		"",
	}, "\n"))
	run := func(args ...string) {
		t.Helper()
		out, err := exec.Command(postfix, append([]string{"-c", etc}, args...)...).CombinedOutput()
		if err != nil {
			log, _ := os.ReadFile(filepath.Join(dir, "maillog"))
			t.Fatalf("postfix %v: %v\n%s\n%s", args, err, out, log)
		}
	}
	run("check")
	run("start")
	t.Cleanup(func() {
		exec.Command(postfix, "-c", etc, "stop").Run()
	})
	var c *smtp.Client
	for deadline := time.Now().Add(10 * time.Second); ; {
		if c, err = smtp.Dial(addr); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("dial postfix: %v", err)
	}
	msg := "From: x@remote.test\r\nTo: demo@example.test\r\nSubject: via postfix\r\n\r\nhello\r\n"
	if err := smtp.SendMail(addr, nil, "x@remote.test", []string{"demo@example.test", "alice@example.test"}, []byte(msg)); err != nil {
		t.Fatalf("send to postfix: %v", err)
	}
	c.Close()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if len(e.messages(t, "demo@example.test", "INBOX")) == 1 && len(e.messages(t, "alice@example.test", "INBOX")) == 1 {
			got := e.messages(t, "demo@example.test", "INBOX")[0]
			if !strings.Contains(got, "Subject: via postfix") || !strings.HasPrefix(got, "Return-Path: <x@remote.test>") {
				t.Errorf("delivered message:\n%s", got)
			}
			return
		}
	}
	log, _ := os.ReadFile(filepath.Join(dir, "maillog"))
	t.Fatalf("Postfix did not deliver through lmtpd within 30s; maillog:\n%s", log)
}

// freeAddr is a free port on a loopback address of its own (127.x.y.z):
// Postfix binds it after the port is released here, and on 127.0.0.1,
// where the other tests listen, another test could take it in between.
func freeAddr(t testing.TB) string {
	t.Helper()
	ip := fmt.Sprintf("127.%d.%d.%d", 20+rand.IntN(200), rand.IntN(256), 1+rand.IntN(254))
	l, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
