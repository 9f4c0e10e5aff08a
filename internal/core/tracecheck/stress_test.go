package tracecheck

import (
	"testing"

	"github.com/graymesh/graymesh/internal/contract/wire"
)

// markStress tags every span of the named services' hops (their own spans
// and their decision's) graymesh.stress, as the edge, the sidecars and
// the demo services do for a stress-test request.
func markStress(tr Trace, services ...string) Trace {
	want := map[string]bool{}
	for _, s := range services {
		want[s] = true
	}
	for i, s := range tr.Spans {
		if want[s.tag(wire.AttrService)] {
			tr.Spans[i].Tags = append(tr.Spans[i].Tags, Tag{wire.AttrStress, "1"})
		}
	}
	return tr
}

// TestStressChainsAreCountedApart: a stress-test chain is checked like
// any, counted as stress, and a hop whose service saw no mark is counted
// as lost; unmarked chains are no stress chains.
func TestStressChainsAreCountedApart(t *testing.T) {
	all := []string{"frontend", "orders", "inventory", "pricing"}
	r := Check([]Trace{
		markStress(newBuilder("a", true).chain(true, grayChain()...).trace(), all...),
		markStress(newBuilder("b", true).chain(true, grayChain()...).trace(), "frontend", "orders"),
		newBuilder("c", true).chain(true, grayChain()...).trace(),
	})
	if r.Stress != 2 || r.StressLost != 2 || r.Leaks != 0 || r.TracesChecked != 3 {
		t.Fatalf("stress %d, lost %d, leaks %d, checked %d; want 2, 2, 0, 3", r.Stress, r.StressLost, r.Leaks, r.TracesChecked)
	}
	if tr := r.Traces[1]; !tr.Stress || tr.StressLost != 2 || !tr.Hops[2].StressLost || tr.Hops[1].StressLost {
		t.Fatalf("partly marked chain %+v", tr)
	}
	if tr := r.Traces[2]; tr.Stress || tr.StressLost != 0 {
		t.Fatalf("unmarked chain %+v", tr)
	}
}
