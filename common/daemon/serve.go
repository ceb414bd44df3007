package daemon

import (
	"context"
	"errors"
	"log/slog"
	"sync"

	"tern/common/config"
	"tern/common/serve"
)

// Serve is the end of a daemon's Run once its listeners are open in its
// servers (common/serve): it drops privileges and tells systemd the daemon
// is ready (Ready), serves until ctx ends, then shuts every server down
// at once within ShutdownGrace, each session told its protocol's goodbye.
// It returns once every connection is closed.
func Serve(ctx context.Context, cfg *config.Config, log *slog.Logger, servers ...*serve.Server) error {
	if err := Ready(cfg, log); err != nil {
		for _, s := range servers {
			s.Close()
		}
		return err
	}
	var wg sync.WaitGroup
	errs := make([]error, len(servers))
	for i, s := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.Run(ctx.Done(), ShutdownGrace)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
