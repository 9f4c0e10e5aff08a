package kube

import (
	"testing"
	"time"
)

// TestProbeBackoff: a stale source's probes wait twice as long after each
// that finds it behind, up to maxProbeInterval, each wait in the upper
// half of its interval — so a fleet's probes spread out instead of
// arriving in step.
func TestProbeBackoff(t *testing.T) {
	prev := probeInterval / 2
	var intervals []time.Duration
	for range 6 {
		var lo, hi time.Duration
		prev, lo = probeBackoff(prev, 0)
		_, hi = probeBackoff(prev/2, 0.999999)
		if lo != prev/2 || hi >= prev || hi < prev*99/100 {
			t.Errorf("interval %s: waits from %s to %s, want [%s, %s)", prev, lo, hi, prev/2, prev)
		}
		intervals = append(intervals, prev)
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 8 * time.Second, 8 * time.Second}
	for i := range want {
		if intervals[i] != want[i] {
			t.Fatalf("intervals %v, want %v", intervals, want)
		}
	}
}
