package maildir

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The package's lines go to the logger SetLogger gave, with its level and
// format, not to slog's default.
func TestSetLogger(t *testing.T) {
	var buf bytes.Buffer
	SetLogger(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn})).With("daemon", "imapd"))
	defer logp.Store(nil)
	m := openTest(t)
	f := folder(t, m, "INBOX")
	deliver(t, m, "INBOX", "a")
	mustSync(t, f)
	os.Remove(filepath.Join(f.Dir(), indexName))
	mustSync(t, f)
	if l := buf.String(); !strings.Contains(l, `"msg":"maildir: index vanished, new UIDVALIDITY"`) || !strings.Contains(l, `"daemon":"imapd"`) {
		t.Errorf("the index line is not in the daemon's log:\n%s", l)
	}
}
