package submit

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"tern/common/smtptest"
)

// The client against a sink that answers as smtpd's socket does; its
// callers (sendmail, lmtpd) are tested against the real smtpd in mailq's
// tests and in test/ (TestLMTPDSubmitsThroughSMTPD, TestSendmailDelivers).

func sockPath(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "submit")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "submit.sock")
}

func TestSendUTF8AndRefusals(t *testing.T) {
	path := sockPath(t)
	k := smtptest.Start(t, "unix", path, false)
	c := &Client{Addr: "unix:" + path, Hello: "mx.example.test", Timeout: 5 * time.Second}

	// A non-ASCII address: Send opens the transaction with SMTPUTF8,
	// which the sink (as smtpd) requires.
	err := c.Send(context.Background(), &Message{From: "j\u00f6rg@example.test", To: []string{"gr\u00fc\u00df@remote.test"},
		Data: strings.NewReader("Subject: hi\r\n\r\nhi\r\n")})
	if err != nil {
		t.Fatal(err)
	}
	if m := k.To("gr\u00fc\u00df@remote.test"); len(m) != 1 || !strings.Contains(m[0].Data, "Subject: hi") {
		t.Fatalf("taken: %+v", k.Messages())
	}

	// Every recipient is tried; two refusals are reported together, and
	// nothing is sent.
	k.Refuse("a@remote.test", &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no a"})
	k.Refuse("c@remote.test", &smtp.SMTPError{Code: 450, EnhancedCode: smtp.EnhancedCode{4, 2, 0}, Message: "try c later"})
	err = c.Send(context.Background(), &Message{From: "x@example.test", To: []string{"a@remote.test", "b@remote.test", "c@remote.test"},
		Data: strings.NewReader("Subject: no\r\n\r\nno\r\n")})
	var bad RecipientsError
	if !errors.As(err, &bad) || len(bad) != 2 || bad[0].Addr != "a@remote.test" || bad[1].Addr != "c@remote.test" {
		t.Fatalf("err %v, want the two refused recipients", err)
	}
	var se *smtp.SMTPError
	if !errors.As(bad[1].Err, &se) || se.Code != 450 {
		t.Fatalf("second refusal: %v", bad[1].Err)
	}
	if n := len(k.Messages()); n != 1 {
		t.Fatalf("%d messages taken, want only the first", n)
	}
}

func TestSendUnreachable(t *testing.T) {
	c := &Client{Addr: "unix:" + sockPath(t), Hello: "mx.example.test", Timeout: time.Second}
	err := c.Send(context.Background(), &Message{From: "x@example.test", To: []string{"y@example.test"}, Data: strings.NewReader("x\r\n")})
	var se *StepError
	if !errors.Is(err, ErrUnreachable) || !errors.As(err, &se) || se.Step != "connect" || !strings.Contains(err.Error(), "is it running?") {
		t.Fatalf("err %v, want an unreachable connect step", err)
	}
}
