package maildir

import (
	"log/slog"
	"sync/atomic"
)

// logp is the logger of the package's own lines (a repaired index, a
// watcher that fell back to polling): the daemon's, so that they follow
// its [log] level and format. Until SetLogger, slog's default.
var logp atomic.Pointer[slog.Logger]

// SetLogger sends the package's log lines to l (common/daemon sets the
// daemon's logger at start).
func SetLogger(l *slog.Logger) { logp.Store(l) }

func logger() *slog.Logger {
	if l := logp.Load(); l != nil {
		return l
	}
	return slog.Default()
}
