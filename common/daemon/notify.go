package daemon

import (
	"net"
	"os"
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
