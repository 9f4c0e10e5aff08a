//go:build !race

package analysis

// raceDetector: see race_on_test.go.
const raceDetector = false
