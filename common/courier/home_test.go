package courier

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"tern/common/auth"
	"tern/common/config"
	"tern/common/queue"
	"tern/common/recipient"
	"tern/common/smtptest"
)

// TestHomeHost: under [cluster] a local recipient whose home host is
// another host goes to that host's lmtpd on its internal LMTP port (here
// an LMTP sink on 127.0.0.2), the others to smtpd.lmtp; once the home
// host is down, its users' mail goes to smtpd.lmtp too (failover), found
// before anything is sent even on a pooled connection.
func TestHomeHost(t *testing.T) {
	tc := newTestCourier(t)
	home := smtptest.Start(t, "tcp", "127.0.0.2:0", true)
	_, port, _ := strings.Cut(home.Addr, ":")
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	users := filepath.Join(dir, "users")
	if err := os.WriteFile(secret, []byte("0123456789abcdef0123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(users, []byte("demo@example.test:{PLAIN}x\n"+
		"bob@example.test:{PLAIN}x::::::host=127.0.0.2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := *tc.cfg
	cfg.Cluster.Hosts = []string{"127.0.0.1", "127.0.0.2"}
	cfg.Cluster.Self = "127.0.0.1"
	cfg.Cluster.Secret = secret
	cfg.Cluster.LMTPPort, _ = strconv.Atoi(port)
	db, err := auth.Open(users, "example.test", nil)
	if err != nil {
		t.Fatal(err)
	}
	rcpts, err := recipient.New(&cfg, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	cr, err := New(Deps{Config: func() *config.Config { return &cfg }, Log: slog.New(slog.NewTextHandler(&log, nil)),
		Queue: tc.q, Users: db, Recipients: rcpts})
	if err != nil {
		t.Fatal(err)
	}
	defer cr.Close()
	if cr.home == nil {
		t.Fatal("no home-host routing under [cluster]")
	}
	data := func() io.Reader { return strings.NewReader(testMessage) }
	deliver := func(rcpts ...string) *queue.Envelope {
		e := &queue.Envelope{ID: "t" + strconv.FormatInt(time.Now().UnixNano(), 36), From: "a@remote.test", Arrival: time.Now()}
		var idx []int
		for i, r := range rcpts {
			e.Recipients = append(e.Recipients, queue.Recipient{Addr: r, State: queue.Pending})
			idx = append(idx, i)
		}
		cr.DeliverLocal(e, idx, data)
		for _, r := range e.Recipients {
			if r.State != queue.Delivered {
				last, _ := r.LastAttempt()
				t.Fatalf("%s not delivered: %+v", r.Addr, last)
			}
		}
		return e
	}

	deliver("bob@example.test", "demo@example.test")
	if n, m := len(home.To("bob@example.test")), len(tc.lmtp.To("bob@example.test")); n != 1 || m != 0 {
		t.Errorf("bob's mail: %d copies on the home host, %d here; want 1, 0", n, m)
	}
	if n, m := len(home.To("demo@example.test")), len(tc.lmtp.To("demo@example.test")); n != 0 || m != 1 {
		t.Errorf("demo's mail: %d copies on the home host, %d here; want 0, 1", n, m)
	}
	if got := home.To("bob@example.test")[0].Data; !strings.Contains(got, "Subject: hello") {
		t.Errorf("copy on the home host: %q", got)
	}

	// The home host goes down with a connection to it in the pool.
	home.Close()
	deliver("bob@example.test")
	if n := len(tc.lmtp.To("bob@example.test")); n != 1 {
		t.Errorf("bob's mail with the home host down: %d copies here, want 1", n)
	}
	if !strings.Contains(log.String(), "event=failover") || !strings.Contains(log.String(), "host=127.0.0.2") {
		t.Errorf("no failover logged:\n%s", log.String())
	}
}
