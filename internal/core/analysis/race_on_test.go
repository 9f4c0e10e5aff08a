//go:build race

package analysis

// raceDetector is set when the tests run under the race detector, which
// slows the single-goroutine simulations about tenfold and has nothing to
// find in them: they then run fewer rollouts, still asserting.
const raceDetector = true
