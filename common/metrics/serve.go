package metrics

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"
)

// Path is the only path the endpoint answers on.
const Path = "/metrics"

// The endpoint's HTTP limits. A scrape is one small request and one
// response of a few kilobytes, so anything slower than these is a stuck or
// hostile client, not a Prometheus server.
const (
	readHeaderTimeout = 5 * time.Second
	writeTimeout      = 10 * time.Second
	idleTimeout       = 60 * time.Second
	maxHeaderBytes    = 8 << 10
	// shutdownGrace bounds how long a scrape in progress may finish once
	// the daemon stops.
	shutdownGrace = 2 * time.Second
)

// ServeHTTP answers GET and HEAD on /metrics with the registry in the text
// format; any other path is 404 and any other method 405.
func (r *Registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.URL.Path != Path {
		http.NotFound(w, req)
		return
	}
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	// Rendered first, so that the length is known and a failed write is the
	// client's problem only.
	var buf bytes.Buffer
	r.WriteTo(&buf)
	w.Header().Set("Content-Type", ContentType)
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	if req.Method == http.MethodGet {
		w.Write(buf.Bytes())
	}
}

// Serve answers scrapes of r on l until ctx ends, then closes l and waits
// (a short while) for a scrape in progress. It returns nil after a clean
// stop.
func Serve(ctx context.Context, l net.Listener, r *Registry, log *slog.Logger) error {
	srv := &http.Server{
		Handler:           r,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readHeaderTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			srv.Close()
		}
	}()
	err := srv.Serve(l)
	if errors.Is(err, http.ErrServerClosed) {
		<-done
		return nil
	}
	return err
}
