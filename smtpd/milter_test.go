package main

import (
	"errors"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-milter"
	"github.com/emersion/go-smtp"

	"tern/common/queue"
)

// sendMX sends one message to smtpd's MX listener with go-smtp's client
// and returns the error of the transaction (an *smtp.SMTPError when
// smtpd refused it).
func sendMX(t testing.TB, addr, from string, to []string, msg string) error {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		return err
	}
	if err := c.Mail(from, nil); err != nil {
		return err
	}
	for _, r := range to {
		if err := c.Rcpt(r, nil); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	io.WriteString(w, msg)
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

// wantReply checks that err is an SMTP reply with this code and enhanced
// code, its text containing text.
func wantReply(t testing.TB, err error, code int, enh smtp.EnhancedCode, text string) {
	t.Helper()
	var se *smtp.SMTPError
	if !errors.As(err, &se) {
		t.Fatalf("want %d %v %q, got %v", code, enh, text, err)
	}
	if se.Code != code || se.EnhancedCode != enh || !strings.Contains(se.Message, text) {
		t.Fatalf("want %d %v %q, got %d %v %q", code, enh, text, se.Code, se.EnhancedCode, se.Message)
	}
}

// scriptMilter is a milter written with go-milter's server side (the
// other half of the protocol library smtpd uses), driven by the Subject
// of each message: it shows that every action a milter can take reaches
// the client, the queue or the delivered message.
type scriptMilter struct {
	milter.NoOpMilter
	name    string
	seen    *milterLog
	subject string
	headers []string
	rcpts   []string
}

// milterLog records what the milters saw, for the test to check.
type milterLog struct {
	mu      sync.Mutex
	headers map[string][]string // milter name → header fields seen (last message)
	body    map[string]string
}

func (l *milterLog) set(name string, h []string, body string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.headers[name], l.body[name] = h, body
}

func (l *milterLog) get(name string) ([]string, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.headers[name], l.body[name]
}

func (m *scriptMilter) RcptTo(rcpt string, mod *milter.Modifier) (milter.Response, error) {
	m.rcpts = append(m.rcpts, rcpt)
	if strings.Contains(rcpt, "sales@") && m.name == "first" {
		return milter.RespReject, nil
	}
	return milter.RespContinue, nil
}

func (m *scriptMilter) Header(name, value string, mod *milter.Modifier) (milter.Response, error) {
	m.headers = append(m.headers, name+": "+value)
	if strings.EqualFold(name, "Subject") {
		m.subject = value
	}
	return milter.RespContinue, nil
}

var bodies sync.Map // milter name → body of the last message

func (m *scriptMilter) BodyChunk(chunk []byte, mod *milter.Modifier) (milter.Response, error) {
	prev, _ := bodies.LoadOrStore(m.name, "")
	bodies.Store(m.name, prev.(string)+string(chunk))
	return milter.RespContinue, nil
}

func (m *scriptMilter) Body(mod *milter.Modifier) (milter.Response, error) {
	b, _ := bodies.LoadAndDelete(m.name)
	body, _ := b.(string)
	m.seen.set(m.name, m.headers, body)
	if m.name != "first" {
		return milter.RespAccept, nil
	}
	switch m.subject {
	case "reject":
		return milter.NewResponseStr(byte(milter.ActReplyCode), "550 5.7.1 Not wanted here"), nil
	case "multiline":
		return milter.NewResponseStr(byte(milter.ActReplyCode), "550 5.7.1 first line\r\n550-5.7.1 second line"), nil
	case "bare-reject":
		return milter.RespReject, nil
	case "tempfail":
		return milter.RespTempFail, nil
	case "discard":
		return milter.RespDiscard, nil
	case "quarantine":
		mod.Quarantine("looks like phishing")
		return milter.RespAccept, nil
	case "modify":
		mod.AddHeader("X-Added", "by the first milter")
		mod.InsertHeader(0, "X-Top", "on top")
		mod.ChangeHeader(1, "X-Change", "changed value")
		mod.ChangeHeader(1, "X-Delete", "")
		mod.ChangeHeader(2, "X-Twice", "second changed")
		mod.AddRecipient("<alice@example.test>")
		mod.DeleteRecipient("<demo@example.test>")
		mod.ChangeFrom("<changed@remote.test>")
		mod.ReplaceBody([]byte("replaced body\r\n"))
		return milter.RespAccept, nil
	}
	return milter.RespAccept, nil
}

// startScriptMilter serves scriptMilter on network ("tcp" or "unix") and
// returns its address in Postfix's syntax.
func startScriptMilter(t testing.TB, name, network string, seen *milterLog) string {
	t.Helper()
	var l net.Listener
	var err error
	var addr string
	if network == "unix" {
		path := filepath.Join(t.TempDir(), name+".sock")
		l, err = net.Listen("unix", path)
		addr = "unix:" + path
	} else {
		l, err = net.Listen("tcp", "127.0.0.1:0")
		if err == nil {
			addr = "inet:" + l.Addr().String()
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	s := &milter.Server{
		NewMilter: func() milter.Milter { return &scriptMilter{name: name, seen: seen} },
		Actions: milter.OptAddHeader | milter.OptChangeHeader | milter.OptAddRcpt | milter.OptRemoveRcpt |
			milter.OptChangeBody | milter.OptQuarantine | milter.OptChangeFrom,
	}
	go s.Serve(l)
	// Closing the listener ends Serve (the library's own Close races
	// with Serve's bookkeeping).
	t.Cleanup(func() { l.Close() })
	return addr
}

// TestMilterActions: every milter action, from a real milter (go-milter's
// server side) over TCP and a unix socket, two milters in order.
func TestMilterActions(t *testing.T) {
	seen := &milterLog{headers: map[string][]string{}, body: map[string]string{}}
	first := startScriptMilter(t, "first", "tcp", seen)
	second := startScriptMilter(t, "second", "unix", seen)
	cfg := newTestConfig(t, "")
	cfg.SMTPD.Milters = []string{first, second}
	sink := startLMTP(t, cfg)
	e := startSMTPD(t, cfg)
	mx := e.addr(kindMX)
	to := []string{"demo@example.test"}

	t.Run("continue", func(t *testing.T) {
		if err := sendMX(t, mx, "a@remote.test", to, "Subject: plain\r\n\r\nhello\r\n"); err != nil {
			t.Fatal(err)
		}
		if n := len(sink.messages("demo@example.test")); n != 1 {
			t.Fatalf("%d copies delivered", n)
		}
		h, body := seen.get("second")
		if len(h) < 2 || !strings.HasPrefix(h[0], "Received: from client.test") || h[len(h)-1] != "Subject: plain" || body != "hello\r\n" {
			t.Fatalf("second milter saw %q / %q", h, body)
		}
	})
	t.Run("reply code", func(t *testing.T) {
		err := sendMX(t, mx, "a@remote.test", to, "Subject: reject\r\n\r\nx\r\n")
		wantReply(t, err, 550, smtp.EnhancedCode{5, 7, 1}, "Not wanted here")
	})
	t.Run("multiline reply", func(t *testing.T) {
		err := sendMX(t, mx, "a@remote.test", to, "Subject: multiline\r\n\r\nx\r\n")
		wantReply(t, err, 550, smtp.EnhancedCode{5, 7, 1}, "first line\nsecond line")
	})
	t.Run("bare reject", func(t *testing.T) {
		err := sendMX(t, mx, "a@remote.test", to, "Subject: bare-reject\r\n\r\nx\r\n")
		wantReply(t, err, 554, smtp.EnhancedCode{5, 7, 1}, "rejected")
	})
	t.Run("tempfail", func(t *testing.T) {
		err := sendMX(t, mx, "a@remote.test", to, "Subject: tempfail\r\n\r\nx\r\n")
		wantReply(t, err, 451, smtp.EnhancedCode{4, 7, 1}, "try again")
	})
	t.Run("discard", func(t *testing.T) {
		before := len(sink.messages("demo@example.test"))
		if err := sendMX(t, mx, "a@remote.test", to, "Subject: discard\r\n\r\nx\r\n"); err != nil {
			t.Fatalf("discard must look accepted: %v", err)
		}
		if n := len(sink.messages("demo@example.test")); n != before {
			t.Fatal("a discarded message was delivered")
		}
		if ids, _ := e.srv.queue.IDs(); len(ids) != 0 {
			t.Fatalf("a discarded message was queued: %v", ids)
		}
	})
	t.Run("quarantine", func(t *testing.T) {
		before := len(sink.messages("demo@example.test"))
		if err := sendMX(t, mx, "a@remote.test", to, "Subject: quarantine\r\n\r\nx\r\n"); err != nil {
			t.Fatal(err)
		}
		envs, err := e.srv.queue.List()
		if err != nil || len(envs) != 1 {
			t.Fatalf("queue: %v, %v", envs, err)
		}
		env := envs[0]
		last, _ := env.Recipients[0].LastAttempt()
		if !env.Held || env.Recipients[0].State != queue.Pending || !strings.Contains(last.Reply, "looks like phishing") {
			t.Fatalf("quarantined envelope %+v", env)
		}
		time.Sleep(1500 * time.Millisecond) // a queue run or two
		if n := len(sink.messages("demo@example.test")); n != before {
			t.Fatal("a quarantined message was delivered")
		}
		if err := e.srv.queue.Delete(env.ID); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("modify", func(t *testing.T) {
		beforeDemo := len(sink.messages("demo@example.test"))
		msg := "X-Change: old\r\nX-Delete: gone\r\nX-Twice: one\r\nX-Twice: two\r\nSubject: modify\r\n\r\noriginal body\r\n"
		if err := sendMX(t, mx, "a@remote.test", to, msg); err != nil {
			t.Fatal(err)
		}
		if n := len(sink.messages("demo@example.test")); n != beforeDemo {
			t.Fatal("the removed recipient got the message")
		}
		got := sink.messages("alice@example.test")
		if len(got) != 1 {
			t.Fatalf("the added recipient got %d copies", len(got))
		}
		m := got[0]
		head, body, _ := strings.Cut(m, "\r\n\r\n")
		if !strings.HasPrefix(head, "X-Top: on top\r\nReceived: ") {
			t.Errorf("inserted field not on top:\n%s", head)
		}
		for _, want := range []string{"X-Change: changed value\r\n", "X-Twice: one\r\nX-Twice: second changed\r\n", "X-Added: by the first milter"} {
			if !strings.Contains(head, want) {
				t.Errorf("header lacks %q:\n%s", want, head)
			}
		}
		if strings.Contains(head, "X-Delete") || strings.Contains(head, "old") {
			t.Errorf("deleted or changed field still there:\n%s", head)
		}
		if body != "replaced body\r\n" {
			t.Errorf("body %q", body)
		}
		// The second milter saw the first one's changes.
		h, sbody := seen.get("second")
		if !strings.Contains(strings.Join(h, "\n"), "X-Added: by the first milter") || strings.TrimRight(sbody, "\r\n") != "replaced body" {
			t.Errorf("second milter saw %q / %q", h, sbody)
		}
	})
	t.Run("recipient refused at RCPT", func(t *testing.T) {
		// sales (alice's alias) is refused by the first milter; demo
		// still gets the message.
		before := len(sink.messages("demo@example.test"))
		if err := sendMX(t, mx, "a@remote.test", []string{"demo@example.test", "sales@example.test"}, "Subject: plain\r\n\r\nx\r\n"); err != nil {
			t.Fatal(err)
		}
		if n := len(sink.messages("demo@example.test")); n != before+1 {
			t.Fatal("demo did not get the message")
		}
		if n := len(sink.messages("alice@example.test")); n != 1 {
			t.Fatalf("alice (sales), refused by the milter, has %d messages", n)
		}
	})
}

// TestMilterDown: smtpd.milter_default_action decides when a milter
// cannot be reached.
func TestMilterDown(t *testing.T) {
	dead := "inet:" + freeAddr(t)
	for _, action := range []string{"tempfail", "accept"} {
		t.Run(action, func(t *testing.T) {
			cfg := newTestConfig(t, "")
			cfg.SMTPD.Milters = []string{dead}
			cfg.SMTPD.MilterDefaultAction = action
			sink := startLMTP(t, cfg)
			e := startSMTPD(t, cfg)
			err := sendMX(t, e.addr(kindMX), "a@remote.test", []string{"demo@example.test"}, "Subject: x\r\n\r\nx\r\n")
			if action == "tempfail" {
				wantReply(t, err, 451, smtp.EnhancedCode{4, 7, 1}, "unavailable")
				return
			}
			if err != nil || len(sink.messages("demo@example.test")) != 1 {
				t.Fatalf("accept: %v, %d delivered", err, len(sink.messages("demo@example.test")))
			}
		})
	}
}

// TestMilterSubmissionSwitch: milters see submitted mail only with
// smtpd.milter_submission.
func TestMilterSubmissionSwitch(t *testing.T) {
	seen := &milterLog{headers: map[string][]string{}, body: map[string]string{}}
	first := startScriptMilter(t, "first", "tcp", seen)
	for _, on := range []bool{false, true} {
		cfg := newTestConfig(t, "")
		cfg.SMTPD.Milters = []string{first}
		cfg.SMTPD.MilterSubmission = on
		startLMTP(t, cfg)
		e := startSMTPD(t, cfg)
		err := submit(t, e.addr(kindSubmission), "demo", "demo", "demo@example.test", []string{"alice@example.test"},
			"From: demo@example.test\r\nSubject: reject\r\n\r\nx\r\n", nil)
		if on {
			wantReply(t, err, 550, smtp.EnhancedCode{5, 7, 1}, "Not wanted")
		} else if err != nil {
			t.Fatalf("milter applied to submission with milter_submission off: %v", err)
		}
	}
}

func TestParseMilterReply(t *testing.T) {
	for _, c := range []struct {
		code int
		text string
		want *smtp.SMTPError
	}{
		{554, "5.7.1 Gtube pattern", &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Gtube pattern"}},
		{451, "4.7.1 Try again", &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 1}, Message: "Try again"}},
		{550, "4.7.1 wrong class", &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCodeNotSet, Message: "4.7.1 wrong class"}},
		{550, "5.7.1 one\r\n550-5.7.1 two", &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "5.7.1 one\ntwo"}},
		{550, "no enhanced code", &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCodeNotSet, Message: "no enhanced code"}},
		{550, "", &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCodeNotSet, Message: "Message rejected by content filter"}},
		{250, "2.0.0 fine", nil},
		{354, "go on", nil},
	} {
		got := parseMilterReply(c.code, c.text)
		if (got == nil) != (c.want == nil) || got != nil && (got.Code != c.want.Code || got.EnhancedCode != c.want.EnhancedCode || got.Message != c.want.Message) {
			t.Errorf("parseMilterReply(%d, %q) = %+v, want %+v", c.code, c.text, got, c.want)
		}
	}
}

// FuzzParseMilterReply: a milter's reply text never yields a non-refusal
// or a line break the client would read as a new reply.
func FuzzParseMilterReply(f *testing.F) {
	f.Add(550, "5.7.1 text")
	f.Add(421, "4.3.2 a\r\n421-4.3.2 b\r\n421 c")
	f.Add(550, "\r\n\r\n")
	f.Add(250, "ok")
	f.Fuzz(func(t *testing.T, code int, text string) {
		r := parseMilterReply(code, text)
		if r == nil {
			return
		}
		if r.Code < 400 || r.Code > 599 {
			t.Fatalf("code %d", r.Code)
		}
		for _, l := range strings.Split(r.Message, "\n") {
			if strings.ContainsAny(l, "\r\x00") {
				t.Fatalf("line %q", l)
			}
		}
		if r.EnhancedCode != smtp.EnhancedCodeNotSet && r.EnhancedCode[0] != r.Code/100 {
			t.Fatalf("enhanced code %v for %d", r.EnhancedCode, r.Code)
		}
	})
}
