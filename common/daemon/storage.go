package daemon

import (
	"log/slog"
	"path/filepath"
	"strings"

	"tern/common/config"
	"tern/common/maildir"
)

// setupStorage applies [storage] shared and shared_poll to the store and,
// in the daemons that open Maildirs (smtpd and mailq hand mail to lmtpd),
// logs which mode the Maildir tree is in
// and every known-unsafe mount option (tern-cluster(7)).
func setupStorage(maildirs bool, cfg *config.Config, log *slog.Logger) {
	mode := maildir.SharedAuto
	switch cfg.Storage.Shared {
	case "true":
		mode = maildir.SharedOn
	case "false":
		mode = maildir.SharedOff
	}
	maildir.SetShared(mode, cfg.Storage.SharedPoll.D())
	if !maildirs {
		return
	}
	info, err := maildir.Inspect(templateRoot(cfg.Maildir))
	if err != nil {
		log.Warn("maildir: storage not inspected", "template", cfg.Maildir, "err", err)
		return
	}
	info.Log(log)
}

// templateRoot is the directory part of a Maildir template before its first
// placeholder: "/var/vmail/%d/%n/Maildir" gives "/var/vmail". Users with a
// Maildir of their own elsewhere are reported when their folders are first
// opened.
func templateRoot(tmpl string) string {
	if i := strings.IndexByte(tmpl, '%'); i >= 0 {
		tmpl = tmpl[:i]
	}
	if !strings.HasSuffix(tmpl, "/") {
		tmpl = filepath.Dir(tmpl)
	}
	return filepath.Clean(tmpl)
}
