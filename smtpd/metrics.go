package main

import (
	"errors"
	"log/slog"
	"time"

	"tern/common/metrics"
	"tern/common/queue"
)

// smtpd's part of the metrics endpoint (tern.toml(5), METRICS). Events and
// connections are counted by common/daemon and common/listen; what only
// smtpd knows is its queue, and how long a message took from arrival to
// delivery.

// registerMetrics adds the queue gauges, computed at each scrape, when the
// endpoint is on.
func (s *server) registerMetrics() {
	if s.cfg().SMTPD.Metrics == "" {
		return
	}
	registerQueueMetrics(metrics.Default, s.queue, s.log)
}

// registerQueueMetrics adds tern_queue_messages and
// tern_queue_oldest_seconds to reg. One scrape costs one read of the
// queue's envelope directory and of one envelope: ids sort by arrival
// (tern-queue(5)), so the first readable one is the oldest message.
func registerQueueMetrics(reg *metrics.Registry, q *queue.Queue, log *slog.Logger) {
	size := reg.Gauge("tern_queue_messages",
		"Messages in smtpd's queue (held ones included), counted at each scrape.", "daemon").With("smtpd")
	oldest := reg.Gauge("tern_queue_oldest_seconds",
		"Age in seconds of the oldest message in smtpd's queue; 0 when it is empty.", "daemon").With("smtpd")
	reg.OnScrape(func() {
		ids, err := q.IDs()
		if err != nil {
			log.Warn("metrics: cannot list the queue", "err", err)
			return
		}
		size.Set(float64(len(ids)))
		age := 0.0
		for _, id := range ids {
			e, err := q.Get(id)
			if errors.Is(err, queue.ErrNotFound) {
				continue // delivered since the listing
			}
			if err == nil && !e.Arrival.IsZero() {
				age = max(time.Since(e.Arrival).Seconds(), 0)
			}
			break
		}
		oldest.Set(age)
	})
}
