package main

import (
	"encoding/json"
	"fmt"
	"time"

	"tern/common/queue"
	"tern/common/trace"
)

// list prints the queue the way Postfix's mailq does, so that an admin's
// eyes and scripts know it: one entry per message (id, size, arrival,
// sender; "!" after the id when held), then each undelivered recipient
// with the reason of its last failed attempt in parentheses, and a total.
func (t *tool) list() int {
	envs, err := t.q.List()
	if err != nil {
		fmt.Fprintf(t.errw, "mailq: %v\n", err)
		return exIOErr
	}
	if len(envs) == 0 {
		fmt.Fprintln(t.out, "Mail queue is empty")
		return exOK
	}
	fmt.Fprintf(t.out, "%-22s %8s %-20s %s\n", "-Queue ID-", "--Size--", "----Arrival Time----", "-Sender/Recipient-------")
	var total int64
	for _, e := range envs {
		total += e.Size
		id := e.ID
		if e.Held {
			id += "!"
		}
		fmt.Fprintf(t.out, "%-22s %8d %-20s %s\n", id, e.Size, e.Arrival.Local().Format("Mon Jan _2 15:04:05"), sender(e.From))
		for _, r := range e.Recipients {
			if r.State != queue.Pending && r.State != queue.Failed {
				continue
			}
			if a, ok := r.LastAttempt(); ok {
				fmt.Fprintf(t.out, "%52s(%s)\n", "", trace.Printable(attemptText(a)))
			}
			fmt.Fprintf(t.out, "%52s%s\n", "", r.Addr)
		}
		fmt.Fprintln(t.out)
	}
	fmt.Fprintf(t.out, "-- %d Kbytes in %d %s.\n", (total+1023)/1024, len(envs), plural(len(envs), "request", "requests"))
	return exOK
}

func sender(from string) string {
	if from == "" {
		return "MAILER-DAEMON"
	}
	return from
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// attemptText is one delivery attempt as an admin reads it:
// "host said: 451 4.3.0 reply" or "host: local error".
func attemptText(a queue.Attempt) string {
	switch {
	case a.Host != "" && a.Code != 0:
		return fmt.Sprintf("%s said: %d %s", a.Host, a.Code, a.Reply)
	case a.Host != "":
		return a.Host + ": " + a.Reply
	case a.Code != 0:
		return fmt.Sprintf("%d %s", a.Code, a.Reply)
	}
	return a.Reply
}

// The JSON form of a queued message, one object per line (JSON Lines, as
// Postfix's postqueue -j). These field names are a stable interface,
// documented in tern-mailq(1): fields may be added, never renamed.
type jsonMessage struct {
	QueueID     string          `json:"queue_id"`
	QueueName   string          `json:"queue_name"` // "hold", "deferred" or "incoming"
	ArrivalTime int64           `json:"arrival_time"`
	Arrival     string          `json:"arrival"`
	MessageSize int64           `json:"message_size"`
	Sender      string          `json:"sender"`
	Held        bool            `json:"held"`
	Tries       int             `json:"tries"`
	NextAttempt string          `json:"next_attempt,omitempty"`
	AuthUser    string          `json:"submitted_by,omitempty"`
	Client      string          `json:"client,omitempty"`
	Recipients  []jsonRecipient `json:"recipients"`
}

type jsonRecipient struct {
	Address     string `json:"address"`
	State       string `json:"state"` // pending, delivered, failed, bounced
	DelayReason string `json:"delay_reason,omitempty"`
	LastAttempt string `json:"last_attempt,omitempty"`
	LastHost    string `json:"last_host,omitempty"`
	LastCode    int    `json:"last_code,omitempty"`
}

func toJSON(e *queue.Envelope) jsonMessage {
	m := jsonMessage{
		QueueID: e.ID, QueueName: queueName(e), ArrivalTime: e.Arrival.Unix(),
		Arrival: e.Arrival.UTC().Format(time.RFC3339), MessageSize: e.Size,
		Sender: e.From, Held: e.Held, Tries: e.Tries, AuthUser: e.AuthUser, Client: e.Client,
		Recipients: []jsonRecipient{},
	}
	if !e.NextAttempt.IsZero() {
		m.NextAttempt = e.NextAttempt.UTC().Format(time.RFC3339)
	}
	for _, r := range e.Recipients {
		jr := jsonRecipient{Address: r.Addr, State: string(r.State)}
		if a, ok := r.LastAttempt(); ok {
			if r.State != queue.Delivered {
				jr.DelayReason = trace.Printable(attemptText(a))
			}
			jr.LastAttempt = a.Time.UTC().Format(time.RFC3339)
			jr.LastHost, jr.LastCode = a.Host, a.Code
		}
		m.Recipients = append(m.Recipients, jr)
	}
	return m
}

// queueName sorts a message the way Postfix names its queues.
func queueName(e *queue.Envelope) string {
	switch {
	case e.Held:
		return "hold"
	case e.Tries > 0:
		return "deferred"
	}
	return "incoming"
}

func (t *tool) listJSON() int {
	envs, err := t.q.List()
	if err != nil {
		fmt.Fprintf(t.errw, "mailq: %v\n", err)
		return exIOErr
	}
	enc := json.NewEncoder(t.out)
	for _, e := range envs {
		if err := enc.Encode(toJSON(e)); err != nil {
			fmt.Fprintf(t.errw, "mailq: %v\n", err)
			return exIOErr
		}
	}
	return exOK
}
