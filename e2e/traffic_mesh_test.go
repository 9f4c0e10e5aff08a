package e2e

import (
	"strings"
	"testing"
)

// TestMeshTrafficSplitKeepsChainsInOneLane runs a traffic-weighted release
// at 50% through the four-hop mesh: the edge splits each anonymous request
// and signs the choice into the lane, so every hop of a chain serves the
// environment the edge chose (inventory, which has no gray version, falls
// back to stable and the lane carries on).
func TestMeshTrafficSplitKeepsChainsInOneLane(t *testing.T) {
	m := newFourHop(t, func(cfg string) string {
		return strings.Replace(cfg, "\nservices:", "\n  - {name: shop-split, env: gray, salt: split-2026, traffic_percent: 50}\nservices:", 1)
	})
	const n = 100
	var ids []string
	gray := 0
	for i := 0; i < n; i++ {
		id := newTraceID()
		r, err := m.chain(id, nil)
		must(t, err)
		hops := r.hops()
		if len(hops) != 4 {
			t.Fatalf("chain %d: %v", i, hops)
		}
		env := strings.TrimPrefix(hops[0], "frontend:")
		want := []string{"frontend:" + env, "orders:" + env, "inventory:stable", "pricing:" + env}
		if strings.Join(hops, " ") != strings.Join(want, " ") {
			t.Fatalf("chain %d left its lane: %v (reason %q)", i, hops, r.Gray["x-gray-reason"])
		}
		if r.Gray["x-gray-reason"] != "traffic" {
			t.Fatalf("chain %d decided by %v, want the traffic split", i, r.Gray)
		}
		if env == "gray" {
			gray++
		}
		ids = append(ids, id)
	}
	t.Logf("%d of %d chains gray", gray, n)
	if gray < 30 || gray > 70 {
		t.Fatalf("%d of %d chains gray at traffic_percent 50", gray, n)
	}
	if rep, code := m.waitForTraces(ids); code != 0 || rep.Leaks != 0 {
		t.Fatalf("verify-traces exit %d, %d leaks", code, rep.Leaks)
	}
}
