//go:build race

package e2e

// raceEnabled builds the daemons with the race detector when the tests run
// with it, so that `make test` checks the daemons' own goroutines too.
const raceEnabled = true
