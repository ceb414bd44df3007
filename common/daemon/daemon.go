// Package daemon is the start and stop sequence every tern daemon shares:
// flags (-config, -check, -version), loading the configuration, the logger,
// and turning SIGTERM/SIGINT into the cancellation of a context.
//
// A daemon's main.go is then only wiring: it declares the daemon as data
// (Daemon: its name, listeners, metrics endpoint and the function that
// serves) and hands it to Main. Connections are served by common/serve.
package daemon

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"tern/common/config"
	"tern/common/listen"
	"tern/common/maildir"
	"tern/common/reload"
)

// Version is set at build time with -ldflags "-X tern/common/daemon.Version=...".
var Version = "dev"

// DefaultConfig is where the configuration lives when -config is not given.
const DefaultConfig = "/etc/tern/tern.toml"

// ShutdownGrace is how long a daemon has, after SIGTERM, to answer its
// sessions and finish what is in flight before it exits anyway.
const ShutdownGrace = 4 * time.Second

// RunFunc serves until ctx is cancelled, then returns once the daemon's
// sessions are closed. A non-nil error makes the process exit 1.
type RunFunc func(ctx context.Context, cfg *config.Config, log *slog.Logger) error

// Daemon is a daemon, declared as data.
type Daemon struct {
	Name string
	// Listeners are the daemon's listeners by kind, in the order of
	// tern.toml's keys: opened before privileges are dropped (Prebind),
	// their kinds label the connection metrics.
	Listeners func(*config.Config) []Listeners
	// Metrics is the daemon's metrics key ("" when off; nil: none).
	Metrics func(*config.Config) string
	// Maildirs says the daemon opens Maildirs: the storage is inspected
	// at start (tern-cluster(7)).
	Maildirs bool
	// Run opens the listeners and serves until the context ends.
	Run RunFunc
}

// Listeners are one kind of listener of a daemon and its addresses.
type Listeners struct {
	Kind  string
	Addrs []string
}

// listenAddrs lists every listen address of d with cfg.
func (d Daemon) listenAddrs(cfg *config.Config) []string {
	var out []string
	for _, l := range d.listeners(cfg) {
		out = append(out, l.Addrs...)
	}
	return out
}

func (d Daemon) listeners(cfg *config.Config) []Listeners {
	if d.Listeners == nil {
		return nil
	}
	return d.Listeners(cfg)
}

func (d Daemon) metricsAddr(cfg *config.Config) string {
	if d.Metrics == nil {
		return ""
	}
	return d.Metrics(cfg)
}

// Main is the whole life of the daemon d. It never returns.
func Main(d Daemon) {
	os.Exit(main(d, os.Args[1:], os.Stdout, os.Stderr))
}

func main(d Daemon, args []string, stdout, stderr io.Writer) int {
	name, run := d.Name, d.Run
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", DefaultConfig, "configuration `file`")
	check := fs.Bool("check", false, "check the configuration and exit: 0 if good, 1 with the problems")
	version := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *version {
		fmt.Fprintf(stdout, "tern %s %s\n", name, Version)
		return 0
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	if *check {
		fmt.Fprintf(stdout, "%s: configuration %s is valid\n", name, *cfgPath)
		return 0
	}
	// Before any Maildir is opened (RFC 7162 QRESYNC's expunge history).
	maildir.SetExpungeHistory(cfg.Storage.ExpungeHistory)
	log, level := newLogger(stderr, cfg.Log)
	live := config.NewLive(cfg)
	liveMu.Lock()
	lives[cfg] = live
	liveMu.Unlock()
	var metricsLn net.Listener
	if addr := d.metricsAddr(cfg); addr != "" {
		metricsLn, err = startMetrics(d, addr, cfg)
		if err != nil {
			fmt.Fprintf(stderr, "%s: metrics endpoint: %v\n", name, err)
			return 1
		}
	}
	log = log.With("daemon", name)
	maildir.SetLogger(log)
	if err := bindAndDrop(d.listenAddrs(cfg), cfg); err != nil {
		if metricsLn != nil {
			metricsLn.Close()
		}
		log.Error("exiting", "err", err)
		return 1
	}
	log.Info("starting", "version", Version, "config", *cfgPath,
		"hostname", cfg.Hostname, "domains", cfg.Domains)
	setupStorage(d.Maildirs, cfg, log)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go reloadOnHUP(ctx, log, *cfgPath, live, level)
	metricsDone := serveMetrics(ctx, metricsLn, log)
	err = run(ctx, cfg, log)
	stop()
	<-metricsDone
	if err != nil && !errors.Is(err, context.Canceled) {
		log.Error("exiting", "err", err)
		return 1
	}
	log.Info("stopped")
	return 0
}

// bindAndDrop is the start of a daemon launched as root with a configured
// user: it opens the daemon's listeners (ports below 1024 need root without
// socket activation), then drops to the user before anything else happens,
// so that every file the daemon creates is the user's and no network input
// is ever read as root. Otherwise it does nothing.
func bindAndDrop(addrs []string, cfg *config.Config) error {
	if cfg.User == "" || os.Geteuid() != 0 {
		return nil
	}
	id, err := ResolveIdentity(cfg.User, cfg.Group)
	if err != nil {
		return err
	}
	if err := listen.Prebind(addrs, id.UID, id.GID); err != nil {
		return err
	}
	return setIdentity(id)
}

// reloadOnHUP re-reads tern.toml on SIGHUP, with every rule of -check. A
// file with problems is refused with a log line naming file and line, and
// the configuration in force keeps serving. A good one is put in force for
// new sessions and deliveries (open sessions keep theirs), except for the
// keys that take a restart (config.RestartKeys), which are logged and keep
// their values. Then the users file, the aliases and the certificate are
// re-read (common/reload).
func reloadOnHUP(ctx context.Context, log *slog.Logger, path string, live *config.Live, level *slog.LevelVar) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			Notify("RELOADING=1")
			reloadConfig(log, path, live, level)
			reload.Run()
			Notify("READY=1")
		}
	}
}

// reloadConfig is the configuration half of a SIGHUP.
func reloadConfig(log *slog.Logger, path string, live *config.Live, level *slog.LevelVar) {
	kept, err := live.Reload(path, config.RestartKeys)
	if err != nil {
		log.Error("SIGHUP: configuration refused, the one in force is kept", "config", path, "err", err)
		return
	}
	for _, key := range kept {
		log.Warn("SIGHUP: key changed; takes effect at restart", "key", key)
	}
	// The new level is in force before the line that says so is written:
	// whoever reads the line and then connects is served at that level.
	// The line itself is shown whatever the level (at it, when above info).
	_ = level.UnmarshalText([]byte(live.Load().Log.Level)) // validated by config
	at := max(slog.LevelInfo, level.Level())
	log.Log(context.Background(), at, "SIGHUP: configuration re-read; re-reading users, aliases and certificate",
		"config", path, "restart_keys_changed", len(kept))
}

var (
	liveMu sync.Mutex
	lives  = map[*config.Config]*config.Live{}
)

// Live is the live configuration (see reloadOnHUP) of the daemon started
// with cfg: a daemon that reads its keys from it at the start of each
// session sees the changes SIGHUP puts in force. For a cfg that no daemon
// started with (a test's), it is a holder of cfg alone.
func Live(cfg *config.Config) *config.Live {
	liveMu.Lock()
	defer liveMu.Unlock()
	if l, ok := lives[cfg]; ok {
		return l
	}
	return config.NewLive(cfg)
}

// NewLogger makes the structured logger of a daemon.
func NewLogger(w io.Writer, c config.Log) *slog.Logger {
	log, _ := newLogger(w, c)
	return log
}

// newLogger is NewLogger with the level, which SIGHUP may change.
func newLogger(w io.Writer, c config.Log) (*slog.Logger, *slog.LevelVar) {
	level := new(slog.LevelVar)
	_ = level.UnmarshalText([]byte(c.Level)) // validated by config
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts)), level
	}
	return slog.New(slog.NewTextHandler(w, opts)), level
}
