package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/graymesh/graymesh/internal/contract/wire"
)

// TestMeshEnvoySplitsAnonymousTraffic runs a traffic-weighted release at
// 50% through the four-hop mesh with mesh.native_traffic_split: the edge's
// Envoy splits each anonymous request itself, its weighted clusters
// setting the window's lane, so the frontend's Envoy opens no ext_proc
// stream for them, and every hop of a chain still serves the environment
// the edge chose. The lane lives 2 s (windows of 1 s), and the chains
// span more than the lane's life plus Envoy's 5 s clock skew: they stay in
// their lane only if graymesh pushes each window's lanes. verify-traces
// counts them as Envoy's split. A freeze, and then a kill, send them to
// graymesh, and stable, from the first request after the push.
func TestMeshEnvoySplitsAnonymousTraffic(t *testing.T) {
	m := newFourHop(t, func(cfg string) string {
		cfg = strings.Replace(cfg, "\nservices:", "\n  - {name: shop-split, env: gray, salt: split-2026, traffic_percent: 50}\nservices:", 1)
		cfg = strings.Replace(cfg, "\n  message_timeout: 1s", "\n  message_timeout: 1s\n  native_traffic_split: true", 1)
		return strings.Replace(cfg, "ttl: 5m", "ttl: 2s", 1)
	})
	before := m.extProcStreams()["frontend"]
	const n = 100
	start := time.Now()
	ids, gray := m.splitChains(t, n, 100*time.Millisecond, map[string]string{wire.HeaderReason: wire.ReasonTrafficEnvoy, wire.HeaderRelease: "shop-split"})
	t.Logf("%d of %d chains gray over %s", gray, n, time.Since(start).Round(time.Millisecond))
	if gray < 30 || gray > 70 {
		t.Fatalf("%d of %d chains gray at traffic_percent 50", gray, n)
	}
	if after := m.extProcStreams()["frontend"]; after != before {
		t.Fatalf("the frontend's Envoy opened %d ext_proc streams for %d anonymous requests, want 0", after-before, n)
	}
	if rep := m.assertNativeChains(t, ids, wire.ReasonTrafficEnvoy, ""); rep.Native < n {
		t.Fatalf("verify-traces counted %d chains in all as routed by Envoy, want at least our %d", rep.Native, n)
	}

	// A freeze admits nobody new: the split goes back to graymesh, which
	// splits nothing while the release is frozen; unfrozen, Envoy splits
	// again.
	m.adminPost(t, "/v1/releases/shop-split/freeze")
	m.anonymousStableAfterPush(t, "freeze")
	m.adminPost(t, "/v1/releases/shop-split/unfreeze")
	waitFor(t, "Envoy's split again after the unfreeze", 20*time.Second, func() error {
		r, err := m.chain(newTraceID(), nil)
		if err != nil {
			return err
		}
		if r.Gray[wire.HeaderReason] != wire.ReasonTrafficEnvoy {
			return fmt.Errorf("decided by %v", r.Gray)
		}
		return nil
	})
	m.adminPost(t, "/v1/releases/shop-split/kill")
	m.anonymousStableAfterPush(t, "kill")
}

// assertNativeChains: verify-traces finds the chains of ids without a
// leak, each routed by the edge's Envoy itself for reason, in lane (any,
// for ""); it returns the report.
func (m *fourHop) assertNativeChains(t *testing.T, ids []string, reason, lane string) report {
	t.Helper()
	rep, code := m.waitForTraces(ids)
	if code != 0 || rep.Leaks != 0 {
		t.Fatalf("verify-traces exit %d, %d leaks", code, rep.Leaks)
	}
	sent := map[string]bool{}
	for _, id := range ids {
		sent[id] = true
	}
	native := 0
	for _, tr := range rep.Traces {
		if sent[tr.TraceID] {
			if !tr.Native || tr.Reason != reason || (lane != "" && tr.Lane != lane) {
				t.Fatalf("trace %s: native %v, reason %q, lane %q", tr.TraceID, tr.Native, tr.Reason, tr.Lane)
			}
			native++
		}
	}
	if native != len(ids) {
		t.Fatalf("verify-traces counted %d of the %d chains as routed by Envoy", native, len(ids))
	}
	return rep
}

// anonymousStableAfterPush waits for the first anonymous request graymesh
// decides (the push that took Envoy's split away has arrived), then checks
// that every anonymous chain from it on is stable and asks graymesh.
func (m *fourHop) anonymousStableAfterPush(t *testing.T, change string) {
	t.Helper()
	waitFor(t, "the "+change+" at the edge", 20*time.Second, func() error {
		r, err := m.chain(newTraceID(), nil)
		if err != nil {
			return err
		}
		if r.Gray[wire.HeaderReason] == wire.ReasonTrafficEnvoy {
			return fmt.Errorf("still split by Envoy: %v", r.hops())
		}
		return nil
	})
	streams := m.extProcStreams()["frontend"]
	const n = 20
	for i := 0; i < n; i++ {
		r, err := m.chain(newTraceID(), nil)
		must(t, err)
		if got := strings.Join(r.hops(), " "); got != "frontend:stable orders:stable inventory:stable pricing:stable" || r.Gray[wire.HeaderReason] == wire.ReasonTrafficEnvoy {
			t.Fatalf("anonymous chain %d after the %s: %s (%v)", i, change, got, r.Gray)
		}
	}
	if got := m.extProcStreams()["frontend"] - streams; got != n {
		t.Fatalf("%d ext_proc streams for %d anonymous requests after the %s, want %d", got, n, change, n)
	}
}
