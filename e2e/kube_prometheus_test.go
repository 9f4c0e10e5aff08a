package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/graymesh/graymesh/internal/core/analysis"
)

// TestKubeFleetJudgesFromPrometheus: the prometheus source on a fleet. Three
// graymesh nodes in Kubernetes mode, each with its own Envoy, against the
// real kube-apiserver; one real Prometheus scrapes the three Envoys. The
// fleet analyser (in the elected node) judges from Prometheus's fleet-wide
// sums, not from any node's slice: a healthy gray takes its one schedule
// step once; with Prometheus stopped the windows hold, saying why; then gray fails 30% of its requests on node-0's traffic only,
// and exactly one patch rolls the release back on the whole fleet, with the
// failing window's gray error rate the fleet's (diluted by the two healthy
// nodes), not node-0's.
func TestKubeFleetJudgesFromPrometheus(t *testing.T) {
	if _, err := findPrometheus(); err != nil {
		missingPart(t, err, "make prometheus")
	}
	k := startKube(t)
	k.installCRD()
	bad, good := freePort(t), freePort(t)
	demo := filepath.Join(binDir, "demo-service")
	start(t, t.TempDir(), "shop-gray-bad", demo, "--listen", fmt.Sprintf("127.0.0.1:%d", bad), "--env", "gray", "--version", "v2")
	start(t, t.TempDir(), "shop-gray-good", demo, "--listen", fmt.Sprintf("127.0.0.1:%d", good), "--env", "gray", "--version", "v2")
	nodes := startFleetGrays(t, k, []int{bad, good, good})
	targets := make([]string, len(nodes))
	for i, nd := range nodes {
		targets[i] = nd.envoyAdmin
	}
	promPort := freePort(t)
	prom := startPrometheus(t, t.TempDir(), promPort, targets)
	waitFor(t, "prometheus scraping every node's envoy", 30*time.Second, func() error {
		if n, err := prom.upTargets(); err != nil || n != len(nodes) {
			return fmt.Errorf("%d of %d targets up: %w", n, len(nodes), err)
		}
		return nil
	})
	k.mustKubectl(grayRelease("checkout", fmt.Sprintf("  env: gray\n  percent: 50\n"+
		"  schedule:\n  - {at: \"2020-01-01T00:00:00Z\", percent: 60}\n"+
		"  analysis: {interval: 2s, min_requests: 40, on_fail: rollback, on_critical: rollback, source: prometheus, prometheus_url: \"http://127.0.0.1:%d\", prometheus_labels: {job: e2e-envoy}}\n", promPort)),
		"apply", "-f", "-")
	stop := fleetLoad(t, nodes)
	defer stop()
	waitForSpec(t, k, "checkout", "the healthy gray's step", func(spec map[string]any) bool { return spec["percent"] == 60.0 })
	obj, err := k.release("checkout")
	must(t, err)
	if g := generation(obj); g != 2 {
		t.Errorf("generation %d after one step, want 2: the step was taken more than once", g)
	}

	// Prometheus down: the fleet's windows are inconclusive and hold, and
	// say why; the verdicts above came from it.
	prom.proc.kill()
	waitFor(t, "fleet windows with Prometheus down", 30*time.Second, func() error {
		down := 0
		for _, w := range fleetWindows(t, nodes[0], "checkout") {
			if strings.Contains(w.Error, "prometheus unreachable") {
				if w.Verdict != analysis.Inconclusive || w.Action != "hold" {
					t.Fatalf("window %d without observations (%s) was %s → %s", w.Index, w.Error, w.Verdict, w.Action)
				}
				down++
			}
		}
		if down < 2 {
			return fmt.Errorf("%d windows say prometheus is unreachable", down)
		}
		return nil
	})
	prom.start(t)

	spoil(t, fmt.Sprintf("127.0.0.1:%d", bad), "error_rate=0.3")
	waitForSpec(t, k, "checkout", "the rollback", func(spec map[string]any) bool { return spec["percent"] == 0.0 })
	stop()
	obj, err = k.release("checkout")
	must(t, err)
	if g := generation(obj); g != 3 {
		t.Errorf("generation %d after a step and a rollback, want 3", g)
	}
	checkPrometheusFleetWindows(t, nodes)
}

// waitForSpec polls GrayRelease name until ok says its spec is there.
func waitForSpec(t *testing.T, k *kubeCP, name, what string, ok func(spec map[string]any) bool) {
	t.Helper()
	waitFor(t, what, 90*time.Second, func() error {
		obj, err := k.release(name)
		if err != nil {
			return err
		}
		if spec, _ := obj["spec"].(map[string]any); !ok(spec) {
			return fmt.Errorf("spec %v", spec)
		}
		return nil
	})
}

// checkPrometheusFleetWindows: every node shows the fleet's windows; one
// window advanced and one rolled back, each by a patch; the failing
// window's gray error rate is the fleet's, well below node-0's 30%.
func checkPrometheusFleetWindows(t *testing.T, nodes []*fleetNode) {
	t.Helper()
	ws := fleetWindows(t, nodes[0], "checkout")
	var patches []string
	var failed *int
	for i, w := range ws {
		if w.ActedBy == "" {
			t.Errorf("window %d names no analyser", w.Index)
		}
		if strings.Contains(w.Action, "GrayRelease patched") {
			patches = append(patches, fmt.Sprintf("%d %s: %s", w.Index, w.Verdict, w.Action))
			if w.Verdict == analysis.Fail || w.Verdict == analysis.Critical {
				failed = &i
			}
		}
	}
	if len(patches) != 2 {
		t.Errorf("%d windows patched the GrayRelease, want 2 (the step, the rollback): %v", len(patches), patches)
	}
	if failed == nil {
		t.Fatalf("no failing window patched: %v", patches)
	}
	w := ws[*failed]
	if !strings.Contains(w.Reason, "shop: errors") || w.Error != "" {
		t.Errorf("failing window %d: reason %q, error %q; want an errors fail from Prometheus's evidence", w.Index, w.Reason, w.Error)
	}
	gray := w.Services[0].Gray
	// Node-0 alone would show about 30%; the fleet's sum about 10%.
	if gray.ErrorRate <= 0 || gray.ErrorRate >= 20 {
		t.Errorf("gray's error rate in the failing window %.1f%%: not the fleet's sum", gray.ErrorRate)
	}
	for _, nd := range nodes[1:] {
		if other := fleetWindows(t, nd, "checkout"); len(other) < len(ws) {
			t.Errorf("%s shows %d windows, %s %d", nd.name, len(other), nodes[0].name, len(ws))
		}
	}
	t.Logf("patches: %v; failing window: gray %d requests, %.1f%% errors, by %s", patches, gray.Requests, gray.ErrorRate, w.ActedBy)
}
