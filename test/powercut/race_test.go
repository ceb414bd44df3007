//go:build race

package powercut

// raceEnabled builds the daemons with the race detector when the tests
// run with it, as test/ does: the packages compiled for one are reused by
// the other, and the daemons' goroutines are checked under power cuts too.
const raceEnabled = true
