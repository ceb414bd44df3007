package main

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-smtp"
)

// BenchmarkDeliver measures deliveries per second into Maildir (each one
// fsynced file and directory) over LMTP on the unix socket, with 1 and 8
// clients sending at once, each message to one recipient; buffer=0 spools
// every message to a file, as a message larger than lmtpd.memory_buffer is.
func BenchmarkDeliver(b *testing.B) {
	msg := "From: a@remote.test\r\nTo: demo@example.test\r\nSubject: bench\r\n\r\n" + strings.Repeat("0123456789abcdef 0123456789abcdef 0123456789abcdef 0123456789abcdef\r\n", 60)
	for _, buffer := range []configSize{0, 256 << 10} {
		for _, clients := range []int{1, 8} {
			benchDeliver(b, msg, buffer, clients)
		}
	}
}

func benchDeliver(b *testing.B, msg string, buffer configSize, clients int) {
	{
		b.Run(fmt.Sprintf("buffer=%d/clients=%d", buffer, clients), func(b *testing.B) {
			e := startServer(b, func(c *configT) {
				c.LMTPD.Sieve = ""
				c.LMTPD.MemoryBuffer = buffer
			})
			conns := make([]*smtp.Client, clients)
			for i := range conns {
				nc, err := net.Dial("unix", e.unix)
				if err != nil {
					b.Fatal(err)
				}
				conns[i] = smtp.NewClientLMTP(nc)
				if err := conns[i].Hello("bench.test"); err != nil {
					b.Fatal(err)
				}
			}
			users := []string{"demo@example.test", "alice@example.test", "bob@example.test", "dave@example.test"}
			b.SetBytes(int64(len(msg)))
			b.ResetTimer()
			var wg sync.WaitGroup
			work := make(chan int)
			errs := make(chan error, clients)
			for i, c := range conns {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for n := range work {
						if err := send(c, users[(i+n)%len(users)], msg); err != nil {
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
		})
	}
}

func send(c *smtp.Client, rcpt, msg string) error {
	if err := c.Mail("a@remote.test", nil); err != nil {
		return err
	}
	if err := c.Rcpt(rcpt, nil); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write([]byte(msg)); err != nil {
		return err
	}
	_, err = w.CloseWithLMTPResponse()
	return err
}
