package smtpserver

import "sync"

// status collects an LMTP session's per-recipient results (RFC 2033 4.2:
// one reply per accepted RCPT, in order). It is smtp.StatusCollector.
type status struct {
	mu      sync.Mutex
	rcpts   []string
	results []error
	set     []bool
}

func newStatus(rcpts []string) *status {
	return &status{rcpts: rcpts, results: make([]error, len(rcpts)), set: make([]bool, len(rcpts))}
}

// SetStatus sets the result of the first recipient rcpt (as given in RCPT
// TO) that has none yet; a recipient given twice gets two results.
func (s *status) SetStatus(rcpt string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, r := range s.rcpts {
		if r == rcpt && !s.set[i] {
			s.results[i], s.set[i] = err, true
			return
		}
	}
}

// fill gives err to every recipient without a result, and returns them all.
func (s *status) fill(err error) []error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.results {
		if !s.set[i] {
			s.results[i], s.set[i] = err, true
		}
	}
	return append([]error(nil), s.results...)
}
