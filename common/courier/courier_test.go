package courier

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"tern/common/config"
	"tern/common/dns"
	"tern/common/queue"
	"tern/common/smtptest"
)

// The courier is driven here through its whole interface (Deps, Run,
// Wake, DeliverLocal) with no smtpd: a real queue in a temp directory and
// a real LMTP server on a unix socket (common/smtptest) standing for
// lmtpd.

type testCourier struct {
	*Courier
	cfg  *config.Config
	q    *queue.Queue
	lmtp *smtptest.Sink
}

func newTestCourier(t *testing.T) *testCourier {
	t.Helper()
	dir := t.TempDir()
	sockDir, err := os.MkdirTemp("", "courier")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	// A remote domain's next hop that refuses connections: remote
	// deliveries are deferred at once, and nothing leaves the machine.
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close()
	cfg := config.Default()
	cfg.Hostname = "mx.example.test"
	cfg.Domains = []string{"example.test"}
	cfg.StateDir = filepath.Join(dir, "state")
	cfg.SMTPD.LMTP = "unix:" + filepath.Join(sockDir, "lmtp.sock")
	cfg.SMTPD.Transport = map[string]string{"remote.test": deadAddr}
	cfg.SMTPD.MTASTS = false
	cfg.SMTPD.TLSReports = false
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	q, err := queue.Open(cfg.StateDir, log)
	if err != nil {
		t.Fatal(err)
	}
	k := smtptest.Start(t, "unix", strings.TrimPrefix(cfg.SMTPD.LMTP, "unix:"), true)
	k.Refuse("gone@example.test", &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"})
	c, err := New(Deps{Config: func() *config.Config { return &cfg }, Log: log, Queue: q, Resolver: dns.New(cfg.DNS)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return &testCourier{Courier: c, cfg: &cfg, q: q, lmtp: k}
}

func (tc *testCourier) run(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); tc.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

const testMessage = "From: <a@remote.test>\r\nTo: <demo@example.test>\r\nSubject: hello\r\n\r\nbody\r\n"

// TestRunDeliversAndBounces: a queued message's local recipient is
// delivered to lmtpd, a refused one is bounced with a DSN queued to the
// sender (RFC 3464), and the message leaves the queue.
func TestRunDeliversAndBounces(t *testing.T) {
	tc := newTestCourier(t)
	id, err := tc.q.Enqueue(&queue.Envelope{From: "a@remote.test", Body: "8BITMIME", Recipients: []queue.Recipient{
		{Addr: "demo@example.test", State: queue.Pending},
		{Addr: "gone@example.test", State: queue.Pending, Notify: []string{"FAILURE"}},
	}}, strings.NewReader(testMessage))
	if err != nil {
		t.Fatal(err)
	}
	tc.run(t)
	tc.Wake()
	waitUntil(t, "the copy in lmtpd", func() bool { return len(tc.lmtp.To("demo@example.test")) == 1 })
	if got := tc.lmtp.To("demo@example.test")[0].Data; !strings.Contains(got, "Subject: hello") {
		t.Errorf("delivered copy: %q", got)
	}
	var dsn *queue.Envelope
	waitUntil(t, "the original to leave the queue and a DSN", func() bool {
		envs, _ := tc.q.List()
		dsn = nil
		for _, e := range envs {
			if e.ID == id {
				return false
			}
			if e.IsDSN {
				dsn = e
			}
		}
		return dsn != nil
	})
	if dsn.From != "" || len(dsn.Recipients) != 1 || dsn.Recipients[0].Addr != "a@remote.test" {
		t.Fatalf("DSN envelope: from %q to %v", dsn.From, dsn.Recipients)
	}
	// Read without a claim: the courier may be trying to send it now.
	data, err := os.ReadFile(filepath.Join(tc.q.Dir(), "data", dsn.ID))
	if err != nil {
		t.Fatal(err)
	}
	d, err := smtptest.ParseDSN(string(data))
	if err != nil {
		t.Fatalf("%v:\n%s", err, data)
	}
	if len(d.PerRecipient) != 1 {
		t.Fatalf("%d recipients reported, want 1", len(d.PerRecipient))
	}
	for k, want := range map[string]string{"Final-Recipient": "rfc822; gone@example.test", "Action": "failed", "Status": "5.1.1"} {
		if got := d.PerRecipient[0].Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	if !strings.Contains(d.Returned, "Subject: hello") {
		t.Errorf("the notice does not return the message:\n%s", d.Returned)
	}
}

// TestDeliverLocal: the receiver's direct path records each recipient's
// result in the envelope, and queues nothing for a message lmtpd took.
func TestDeliverLocal(t *testing.T) {
	tc := newTestCourier(t)
	e := &queue.Envelope{ID: "direct", From: "a@remote.test", Arrival: time.Now(), Recipients: []queue.Recipient{
		{Addr: "demo@example.test", State: queue.Pending},
		{Addr: "gone@example.test", State: queue.Pending},
	}}
	tc.DeliverLocal(e, []int{0, 1}, func() io.Reader { return strings.NewReader(testMessage) })
	if s := e.Recipients[0].State; s != queue.Delivered {
		t.Errorf("demo: state %v, want delivered", s)
	}
	if s := e.Recipients[1].State; s != queue.Failed {
		t.Errorf("gone: state %v, want failed", s)
	}
	if a, _ := e.Recipients[1].LastAttempt(); a.Code != 550 || !strings.HasPrefix(a.Reply, "5.1.1") {
		t.Errorf("gone: last attempt %+v", a)
	}
	if ids, _ := tc.q.IDs(); len(ids) != 0 {
		t.Errorf("queued: %v", ids)
	}
	if n := len(tc.lmtp.To("demo@example.test")); n != 1 {
		t.Errorf("%d copies delivered, want 1", n)
	}
}

// TestRemoteDeferred: a remote recipient whose next hop is down stays
// queued with the failure recorded and a next attempt set.
func TestRemoteDeferred(t *testing.T) {
	tc := newTestCourier(t)
	id, err := tc.q.Enqueue(&queue.Envelope{From: "demo@example.test", Recipients: []queue.Recipient{
		{Addr: "bob@remote.test", State: queue.Pending}}}, strings.NewReader(testMessage))
	if err != nil {
		t.Fatal(err)
	}
	tc.run(t)
	tc.Wake()
	waitUntil(t, "a recorded attempt", func() bool {
		e, err := tc.q.Get(id)
		return err == nil && e.Tries > 0
	})
	e, _ := tc.q.Get(id)
	a, _ := e.Recipients[0].LastAttempt()
	if e.Recipients[0].State != queue.Pending || !strings.Contains(a.Reply, "all next hops failed") || !e.NextAttempt.After(time.Now()) {
		t.Errorf("state %v, attempt %+v, next %v", e.Recipients[0].State, a, e.NextAttempt)
	}
}
