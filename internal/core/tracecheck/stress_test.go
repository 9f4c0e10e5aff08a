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

// TestMessageHopIsCheckedLikeAnyHop: a consumer's span (lanekafka's, in
// the same vocabulary) is a hop: gray's consumer serving a gray chain is
// no leak, stable standing in while no gray consumer is live is an
// explained fallback, and stable serving a gray chain without a reason is
// a leak.
func TestMessageHopIsCheckedLikeAnyHop(t *testing.T) {
	chain := func(consume Span) Trace {
		return Trace{TraceID: "m", Spans: []Span{decision("gray"), hop(2, "frontend", "gray", "gray", ""), consume}}
	}
	r := Check([]Trace{
		chain(hop(3, "notifier", "gray", "gray", "")),
		chain(hop(3, "notifier", "stable", "gray", "gray"+wire.UnavailableSuffix)),
		chain(hop(3, "notifier", "stable", "stable", "")),
	})
	if r.TracesChecked != 3 || r.Fallbacks != 1 || r.LeakingChains != 1 {
		t.Fatalf("checked %d, fallbacks %d, leaking chains %d; want 3, 1, 1", r.TracesChecked, r.Fallbacks, r.LeakingChains)
	}
	if tr := r.Traces[2]; !tr.Hops[1].Leak || tr.Hops[1].Service != "notifier" {
		t.Fatalf("the leaking message hop: %+v", tr)
	}
}
