package daemon

import (
	"log/slog"
	"net"
	"os"

	"tern/common/config"
)

// Notify sends a state string to the service manager (sd_notify(3)):
// "READY=1" once the configuration is loaded and the listeners are open,
// "RELOADING=1" and "STOPPING=1" around reloads and shutdown. Without
// $NOTIFY_SOCKET it does nothing, so daemons can always call it.
func Notify(state string) {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return
	}
	if path[0] == '@' {
		path = "\x00" + path[1:] // abstract socket namespace
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return
	}
	defer c.Close()
	c.Write([]byte(state))
}

// Ready is what a daemon calls once all its listeners are open and before
// it reads any network input: it drops root privileges to the configured
// user and group (binding ports below 1024 was the only reason for them)
// and tells the service manager that the daemon is ready.
func Ready(cfg *config.Config, log *slog.Logger) error {
	if err := DropPrivileges(cfg); err != nil {
		return err
	}
	Notify("READY=1")
	log.Info("ready", "uid", os.Getuid(), "gid", os.Getgid())
	return nil
}
