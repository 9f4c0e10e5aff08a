package main

import (
	"flag"
	"os"
	"runtime/debug"
)

// defaultGCPercent is serve's garbage-collection target: the heap may grow
// to 5× what is live before a collection (Go's default, GOGC=100, is 2×).
// Every ext_proc request allocates its messages; a collection's cost is
// mostly scanning what is live, so collecting a fifth as often costs
// roughly a fifth of the instructions per request, for a larger resident
// set (bench/RESULTS.md, bench-ir, reports both).
const defaultGCPercent = 400

// gcFlag registers --gc-percent.
func gcFlag(fs *flag.FlagSet) *int {
	return fs.Int("gc-percent", defaultGCPercent, "garbage-collection target, as GOGC (the GOGC environment variable, when set, wins; -1 turns collection off)")
}

// setGCPercent applies --gc-percent unless GOGC is set in the environment.
func setGCPercent(percent int) {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(percent)
	}
}
