package e2e

import (
	"strings"
	"testing"
	"time"
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
	ids, gray := m.splitChains(t, n, 0, map[string]string{"x-gray-reason": "traffic"})
	t.Logf("%d of %d chains gray", gray, n)
	if gray < 30 || gray > 70 {
		t.Fatalf("%d of %d chains gray at traffic_percent 50", gray, n)
	}
	if rep, code := m.waitForTraces(ids); code != 0 || rep.Leaks != 0 {
		t.Fatalf("verify-traces exit %d, %d leaks", code, rep.Leaks)
	}
}

// splitChains sends n anonymous chains through the four-hop mesh, pause
// apart (0: back to back), and checks that each serves one environment at
// every hop (inventory, with no gray version, stable) and that the edge's
// decision headers say want. It returns the chains' trace ids and how many
// went gray.
func (m *fourHop) splitChains(t *testing.T, n int, pause time.Duration, want map[string]string) (ids []string, gray int) {
	t.Helper()
	start := time.Now()
	for i := 0; i < n; i++ {
		id := newTraceID()
		r, err := m.chain(id, nil)
		must(t, err)
		hops := r.hops()
		if len(hops) != 4 {
			t.Fatalf("chain %d: %v", i, hops)
		}
		env := strings.TrimPrefix(hops[0], "frontend:")
		lane := []string{"frontend:" + env, "orders:" + env, "inventory:stable", "pricing:" + env}
		if strings.Join(hops, " ") != strings.Join(lane, " ") {
			t.Fatalf("chain %d (%s in) left its lane: %v (%v)", i, time.Since(start).Round(time.Millisecond), hops, r.Calls)
		}
		for k, v := range want {
			if r.Gray[k] != v {
				t.Fatalf("chain %d decided by %v, want %s: %s", i, r.Gray, k, v)
			}
		}
		if env == "gray" {
			gray++
		}
		ids = append(ids, id)
		// Pacing, not synchronisation: the chains must span lane windows.
		time.Sleep(pause)
	}
	return ids, gray
}
