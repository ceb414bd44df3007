package auth

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// exchange runs a SASL exchange between a client and a server the way the
// protocol layers do, and returns the server's final error.
func exchange(t testing.TB, c sasl.Client, s sasl.Server) error {
	t.Helper()
	_, resp, err := c.Start()
	if err != nil {
		t.Fatalf("client Start: %v", err)
	}
	for range 5 {
		challenge, done, err := s.Next(resp)
		if err != nil || done {
			return err
		}
		if resp, err = c.Next(challenge); err != nil {
			t.Fatalf("client Next(%q): %v", challenge, err)
		}
	}
	t.Fatal("exchange does not end")
	return nil
}

// recorder is an onSuccess callback that remembers what it was given.
type recorder struct{ addresses []string }

func (r *recorder) onSuccess(address string) error {
	r.addresses = append(r.addresses, address)
	return nil
}

func TestPlainServer(t *testing.T) {
	db, _, logs := openTestDB(t, testUsers, Options{})
	good := []struct{ authzid, authcid, passwd, want string }{
		{"", "demo@example.test", "demo", "demo@example.test"},
		{"", "Demo", "demo", "demo@example.test"},
		{"demo@example.test", "demo", "demo", "demo@example.test"},
		{"DEMO", "demo@example.test", "demo", "demo@example.test"},
		{"", "bob", "pässwörd", "bob@example.test"},
	}
	for _, tc := range good {
		var r recorder
		err := exchange(t, sasl.NewPlainClient(tc.authzid, tc.authcid, tc.passwd), db.NewPlainServer(r.onSuccess))
		if err != nil || len(r.addresses) != 1 || r.addresses[0] != tc.want {
			t.Errorf("PLAIN %q/%q: err %v, onSuccess got %v; want %q", tc.authzid, tc.authcid, err, r.addresses, tc.want)
		}
	}
	bad := []struct{ authzid, authcid, passwd string }{
		{"", "demo", "wrong"},
		{"", "nobody", "demo"},
		{"alice@example.test", "demo", "demo"}, // RFC 4616 2: demo may not act as alice
		{"de mo", "demo", "demo"},
	}
	for _, tc := range bad {
		var r recorder
		err := exchange(t, sasl.NewPlainClient(tc.authzid, tc.authcid, tc.passwd), db.NewPlainServer(r.onSuccess))
		if err != ErrFailed || len(r.addresses) != 0 {
			t.Errorf("PLAIN %q/%q/%q: err %v, onSuccess got %v; want ErrFailed", tc.authzid, tc.authcid, tc.passwd, err, r.addresses)
		}
	}
	if !strings.Contains(logs.String(), "authorization identity differs") {
		t.Errorf("authzid mismatch not logged:\n%s", logs)
	}
}

func TestPlainServerWithoutInitialResponse(t *testing.T) {
	db, _, _ := openTestDB(t, testUsers, Options{})
	var r recorder
	s := db.NewPlainServer(r.onSuccess)
	// RFC 4422 5: no initial response, so the server sends an empty
	// challenge.
	challenge, done, err := s.Next(nil)
	if err != nil || done || challenge == nil || len(challenge) != 0 {
		t.Fatalf("Next(nil) = %q, %v, %v; want an empty challenge", challenge, done, err)
	}
	if _, done, err := s.Next([]byte("\x00demo\x00demo")); err != nil || !done {
		t.Fatalf("Next(message) = %v, %v", done, err)
	}
	if len(r.addresses) != 1 {
		t.Errorf("onSuccess got %v", r.addresses)
	}
	if _, _, err := s.Next([]byte("\x00demo\x00demo")); !errors.Is(err, sasl.ErrUnexpectedClientResponse) {
		t.Errorf("Next after done: %v", err)
	}
}

func TestPlainServerMalformed(t *testing.T) {
	db, _, _ := openTestDB(t, testUsers, Options{MaxResponse: 64})
	for _, msg := range []string{
		"",
		"demo",
		"\x00demo",
		"\x00demo\x00demo\x00",
		"\x00\x00demo",
		"\x00demo\x00",
		"\x00demo\xff\x00demo",
		"\x00demo\x00" + strings.Repeat("x", 60),
	} {
		var r recorder
		s := db.NewPlainServer(r.onSuccess)
		_, done, err := s.Next([]byte(msg))
		if !errors.Is(err, ErrMalformed) || !done || len(r.addresses) != 0 {
			t.Errorf("PLAIN %q: done %v, err %v; want ErrMalformed", msg, done, err)
		}
	}
}

func TestPlainServerCallbackError(t *testing.T) {
	db, _, _ := openTestDB(t, testUsers, Options{})
	errBusy := errors.New("session busy")
	s := db.NewPlainServer(func(string) error { return errBusy })
	if _, _, err := s.Next([]byte("\x00demo\x00demo")); err != errBusy {
		t.Errorf("err = %v, want the callback's", err)
	}
}

func TestLoginServer(t *testing.T) {
	db, _, _ := openTestDB(t, testUsers, Options{})

	// go-sasl's client sends the user name as an initial response.
	var r recorder
	if err := exchange(t, sasl.NewLoginClient("ALICE", "secret"), db.NewLoginServer(r.onSuccess)); err != nil || len(r.addresses) != 1 || r.addresses[0] != "alice@example.test" {
		t.Errorf("LOGIN with initial response: %v, %v", err, r.addresses)
	}
	if err := exchange(t, sasl.NewLoginClient("alice", "Secret"), db.NewLoginServer(r.onSuccess)); err != ErrFailed {
		t.Errorf("LOGIN wrong password: %v", err)
	}

	// Outlook and most others wait for the prompts.
	for _, ir := range [][]byte{nil, {}} {
		var r recorder
		s := db.NewLoginServer(r.onSuccess)
		steps := []struct {
			resp, challenge string
			done            bool
		}{
			{"", "Username:", false},
			{"demo", "Password:", false},
			{"demo", "", true},
		}
		for i, st := range steps {
			resp := []byte(st.resp)
			if i == 0 {
				resp = ir
			}
			challenge, done, err := s.Next(resp)
			if err != nil || done != st.done || string(challenge) != st.challenge {
				t.Fatalf("step %d: Next(%q) = %q, %v, %v; want %q, %v", i, resp, challenge, done, err, st.challenge, st.done)
			}
		}
		if len(r.addresses) != 1 || r.addresses[0] != "demo@example.test" {
			t.Errorf("onSuccess got %v", r.addresses)
		}
		if _, _, err := s.Next([]byte("more")); !errors.Is(err, sasl.ErrUnexpectedClientResponse) {
			t.Errorf("Next after done: %v", err)
		}
	}
}

func TestLoginServerMalformed(t *testing.T) {
	db, _, _ := openTestDB(t, testUsers, Options{MaxResponse: 64})
	for _, steps := range [][]string{
		{"", ""},
		{"de\x00mo"},
		{"demo\xff"},
		{strings.Repeat("x", 65)},
		{"demo", strings.Repeat("x", 65)},
	} {
		var r recorder
		s := db.NewLoginServer(r.onSuccess)
		var err error
		for _, st := range steps {
			if _, _, err = s.Next([]byte(st)); err != nil {
				break
			}
		}
		if !errors.Is(err, ErrMalformed) || len(r.addresses) != 0 {
			t.Errorf("LOGIN %q: err %v; want ErrMalformed", steps, err)
		}
	}
}

// smtpBackend is a minimal go-smtp backend offering PLAIN and LOGIN through
// db, as smtpd does.
type smtpBackend struct {
	db *DB
	mu sync.Mutex
	// authed lists the addresses the server saw log in.
	authed []string
}

func (b *smtpBackend) NewSession(*smtp.Conn) (smtp.Session, error) { return &smtpSession{b: b}, nil }

type smtpSession struct{ b *smtpBackend }

func (s *smtpSession) AuthMechanisms() []string { return []string{sasl.Plain, sasl.Login} }

func (s *smtpSession) Auth(mech string) (sasl.Server, error) {
	onSuccess := func(address string) error {
		s.b.mu.Lock()
		defer s.b.mu.Unlock()
		s.b.authed = append(s.b.authed, address)
		return nil
	}
	switch mech {
	case sasl.Plain:
		return smtpReplies{s.b.db.NewPlainServer(onSuccess)}, nil
	case sasl.Login:
		return smtpReplies{s.b.db.NewLoginServer(onSuccess)}, nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

// smtpReplies turns the package's errors into SMTP replies, as smtpd must:
// go-smtp answers any other error with 454 and the error's text.
type smtpReplies struct{ sasl.Server }

func (s smtpReplies) Next(resp []byte) ([]byte, bool, error) {
	challenge, done, err := s.Server.Next(resp)
	switch {
	case errors.Is(err, ErrFailed):
		// RFC 4954 6: 535 5.7.8 Authentication credentials invalid.
		err = &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "Authentication credentials invalid"}
	case errors.Is(err, ErrMalformed):
		// RFC 4954 4: 501 when the response cannot be decoded.
		err = &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 5, 2}, Message: "Malformed authentication response"}
	}
	return challenge, done, err
}

func (s *smtpSession) Mail(string, *smtp.MailOptions) error { return nil }
func (s *smtpSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (s *smtpSession) Data(r io.Reader) error {
	_, err := io.Copy(io.Discard, r)
	return err
}
func (s *smtpSession) Reset()        {}
func (s *smtpSession) Logout() error { return nil }

// TestSMTPAuth runs both mechanisms through go-smtp's real server and
// client over a socket, as smtpd will.
func TestSMTPAuth(t *testing.T) {
	db, _, _ := openTestDB(t, testUsers, Options{})
	be := &smtpBackend{db: db}
	srv := smtp.NewServer(be)
	srv.Domain = "mx.example.test"
	srv.AllowInsecureAuth = true
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })

	try := func(c sasl.Client) error {
		t.Helper()
		cl, err := smtp.Dial(l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		return cl.Auth(c)
	}
	if err := try(sasl.NewPlainClient("", "demo", "demo")); err != nil {
		t.Errorf("PLAIN: %v", err)
	}
	if err := try(sasl.NewLoginClient("bob@EXAMPLE.test", "pässwörd")); err != nil {
		t.Errorf("LOGIN: %v", err)
	}
	var se *smtp.SMTPError
	if err := try(sasl.NewPlainClient("", "demo", "wrong")); !errors.As(err, &se) || se.Code != 535 {
		t.Errorf("PLAIN wrong password: %v, want a 535 reply", err)
	}
	if err := try(sasl.NewLoginClient("demo", "wrong")); !errors.As(err, &se) || se.Code != 535 {
		t.Errorf("LOGIN wrong password: %v, want a 535 reply", err)
	}
	if err := try(sasl.NewPlainClient("", "demo\x00", "demo")); !errors.As(err, &se) || se.Code != 501 {
		t.Errorf("PLAIN with an extra NUL: %v, want a 501 reply", err)
	}
	be.mu.Lock()
	defer be.mu.Unlock()
	if got := strings.Join(be.authed, " "); got != "demo@example.test bob@example.test" {
		t.Errorf("logged in: %q", got)
	}
}

// fuzzUsers is cheap to check, so that the fuzzers spend their time in the
// parsers: a PLAIN user, and the cheapest Argon2 hash possible as the dummy
// that failed logins check (echo -n secret | argon2 saltsaltsaltsalt -i -t 1
// -m 6 -p 1 -e).
const fuzzUsers = "demo@example.test:{PLAIN}demo\n" +
	"cheap@example.test:{ARGON2I}$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$CGnMwRlC4t6fgZqms/SAxnSrO+OnnnJAx0bHMz6m8vE\n"

func FuzzPlainServer(f *testing.F) {
	for _, s := range []string{"\x00demo\x00demo", "demo\x00demo\x00demo", "\x00\x00", "", "\x00demo\xff\x00x", "a\x00b\x00c\x00d"} {
		f.Add([]byte(s))
	}
	db, _, _ := openTestDB(f, fuzzUsers, Options{MaxResponse: 512})
	f.Fuzz(func(t *testing.T, msg []byte) {
		var r recorder
		s := db.NewPlainServer(r.onSuccess)
		_, done, err := s.Next(msg)
		if !done {
			t.Fatalf("Next(%q) not done", msg)
		}
		ok := err == nil
		if ok != (len(r.addresses) == 1) {
			t.Fatalf("Next(%q): err %v but onSuccess got %v", msg, err, r.addresses)
		}
		if ok && !bytes.HasSuffix(msg, []byte("\x00demo")) && !bytes.HasSuffix(msg, []byte("\x00secret")) {
			t.Fatalf("Next(%q) logged in", msg)
		}
	})
}

func FuzzLoginServer(f *testing.F) {
	f.Add([]byte("demo"), []byte("demo"))
	f.Add([]byte(""), []byte("demo"))
	f.Add([]byte("de\x00mo"), []byte("x"))
	f.Add([]byte("DEMO@example.test"), []byte("demo"))
	db, _, _ := openTestDB(f, fuzzUsers, Options{MaxResponse: 512})
	f.Fuzz(func(t *testing.T, user, pass []byte) {
		var r recorder
		s := db.NewLoginServer(r.onSuccess)
		var err error
		done := false
		for _, resp := range [][]byte{nil, user, pass} {
			if _, done, err = s.Next(resp); done || err != nil {
				break
			}
		}
		if err == nil && (!done || len(r.addresses) != 1 || (string(pass) != "demo" && string(pass) != "secret")) {
			t.Fatalf("LOGIN %q %q: done %v, onSuccess got %v", user, pass, done, r.addresses)
		}
	})
}
