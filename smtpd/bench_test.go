package main

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-smtp"

	"tern/common/config"
)

// BenchmarkReceive measures messages per second from an SMTP client on the
// MX port to a 250, through smtpd and a real LMTP server that fsyncs every
// copy, with 1 and 8 clients sending at once. buffer=0 writes every
// message to a queue spool file, as a message larger than
// smtpd.memory_buffer is.
func BenchmarkReceive(b *testing.B) {
	msg := "From: a@remote.test\r\nTo: demo@example.test\r\nSubject: bench\r\n\r\n" +
		strings.Repeat("0123456789abcdef 0123456789abcdef 0123456789abcdef 0123456789abcdef\r\n", 150)
	for _, buffer := range []config.Size{0, 256 << 10} {
		for _, clients := range []int{1, 8} {
			b.Run(fmt.Sprintf("buffer=%d/clients=%d", buffer, clients), func(b *testing.B) {
				benchReceive(b, msg, buffer, clients)
			})
		}
	}
}

func benchReceive(b *testing.B, msg string, buffer config.Size, clients int) {
	cfg := newTestConfig(b, "")
	cfg.SMTPD.MemoryBuffer = buffer
	startLMTP(b, cfg)
	e := startSMTPD(b, cfg)
	conns := make([]*smtp.Client, clients)
	for i := range conns {
		c, err := smtp.Dial(e.addr(kindMX))
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Hello("client.remote.test"); err != nil {
			b.Fatal(err)
		}
		conns[i] = c
	}
	b.SetBytes(int64(len(msg)))
	b.ResetTimer()
	var wg sync.WaitGroup
	work := make(chan int)
	errs := make(chan error, clients)
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range work {
				if err := c.SendMail("a@remote.test", []string{"demo@example.test"}, strings.NewReader(msg)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for n := 0; n < b.N; n++ {
		work <- n
	}
	close(work)
	wg.Wait()
	b.StopTimer()
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	for _, c := range conns {
		c.Quit()
	}
}
