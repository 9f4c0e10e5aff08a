package e2e

import (
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/graymesh/graymesh/internal/core/analysis"
	"github.com/graymesh/graymesh/internal/runtime/admin"
)

// fleetWindows is release's fleet windows as node nd's admin API shows
// them (the fleet analyser's record, the same on every node).
func fleetWindows(t *testing.T, nd *fleetNode, release string) []admin.Window {
	t.Helper()
	st := analysisOf(t, nd.admin, release)
	if st.FleetError != "" {
		t.Fatalf("%s: %s", nd.name, st.FleetError)
	}
	return st.Windows
}

// checkOnePatch: every node shows the same fleet windows, each judged by a
// named analyser on some node's evidence, and exactly one of them patched
// the GrayRelease. The analyser records a window with its action pending,
// patches, then records the outcome, so a caller that saw the patch land
// on the object may read the record between the two: it waits for the
// outcome.
func checkOnePatch(t *testing.T, nodes []*fleetNode, release string) []admin.Window {
	t.Helper()
	var ws []admin.Window
	waitFor(t, "the fleet record shows the patch's outcome", 30*time.Second, func() error {
		ws = fleetWindows(t, nodes[0], release)
		for _, w := range ws {
			if strings.Contains(w.Action, "GrayRelease patched") || w.ActionError != "" {
				return nil
			}
		}
		return fmt.Errorf("%d windows, none with an outcome recorded", len(ws))
	})
	patched := 0
	for _, w := range ws {
		if w.ActedBy == "" {
			t.Errorf("window %d names no analyser", w.Index)
		}
		if w.Action != "hold" {
			t.Logf("window %d (%d of %d nodes, by %s): %s → %s %s", w.Index, w.Nodes, w.NodesReporting, w.ActedBy, w.Verdict, w.Action, w.ActionError)
		}
		if strings.Contains(w.Action, "GrayRelease patched") {
			patched++
		}
	}
	if patched != 1 {
		t.Errorf("%d windows patched the GrayRelease, want 1", patched)
	}
	for _, nd := range nodes[1:] {
		if other := fleetWindows(t, nd, release); len(other) < len(ws) || other[len(ws)-1].Index != ws[len(ws)-1].Index {
			t.Errorf("%s shows %d windows, %s %d", nd.name, len(other), nodes[0].name, len(ws))
		}
	}
	return ws
}

// TestKubeFleetJudgesOneNodesErrorsOnTheFleetsEvidence: gray fails 30% of
// its requests on node-0's traffic only (node-0's gray upstream is its
// own; the two other nodes share a healthy one). The verdict is the
// fleet's: the window that fails it merged all three nodes' evidence, so
// gray's error rate in it is diluted by the healthy nodes' requests well
// below node-0's 30%, and one patch rolls the release back on the whole
// fleet. The healthy nodes show that window too.
func TestKubeFleetJudgesOneNodesErrorsOnTheFleetsEvidence(t *testing.T) {
	k := startKube(t)
	k.installCRD()
	bad, good := freePort(t), freePort(t)
	demo := filepath.Join(binDir, "demo-service")
	start(t, t.TempDir(), "shop-gray-bad", demo, "--listen", fmt.Sprintf("127.0.0.1:%d", bad), "--env", "gray", "--version", "v2")
	start(t, t.TempDir(), "shop-gray-good", demo, "--listen", fmt.Sprintf("127.0.0.1:%d", good), "--env", "gray", "--version", "v2")
	nodes := startFleetGrays(t, k, []int{bad, good, good})
	k.mustKubectl(grayRelease("checkout", "  env: gray\n  percent: 50\n  analysis: {interval: 2s, min_requests: 40, on_fail: rollback, on_critical: rollback}\n"), "apply", "-f", "-")
	eachNode(t, "release in force", nodes, func(nd *fleetNode) error {
		st, err := nd.status()
		if err != nil {
			return err
		}
		if st["config_version"] != "1" {
			return fmt.Errorf("%s: config_version %v", nd.name, st["config_version"])
		}
		return nil
	})
	// Every node serves gray before gray fails on node-0: the window that
	// fails then holds the healthy nodes' requests too. (Spoiled first,
	// node-0's errors alone once filled the first window on a loaded
	// machine, before the other nodes' traffic reached their reports.)
	stop := fleetLoad(t, nodes)
	eachNode(t, "gray traffic on every node", nodes, func(nd *fleetNode) error {
		if n := grayDecisions(t, nd); n < 40 {
			return fmt.Errorf("%s: %v gray decisions", nd.name, n)
		}
		return nil
	})
	spoil(t, fmt.Sprintf("127.0.0.1:%d", bad), "error_rate=0.3")
	waitFor(t, "the GrayRelease rolled back by the analysis", 90*time.Second, func() error {
		obj, err := k.release("checkout")
		if err != nil {
			return err
		}
		if spec, _ := obj["spec"].(map[string]any); spec["percent"] != 0.0 {
			return fmt.Errorf("spec.percent %v", spec["percent"])
		}
		return nil
	})
	stop()
	obj, err := k.release("checkout")
	must(t, err)
	if g := generation(obj); g != 2 {
		t.Errorf("generation %d after the rollback, want 2", g)
	}
	var failed *admin.Window
	ws := checkOnePatch(t, nodes, "checkout")
	for i := range ws {
		if strings.Contains(ws[i].Action, "GrayRelease patched") {
			failed = &ws[i]
		}
	}
	if failed == nil {
		t.Fatal("no window patched")
	}
	if failed.Verdict != analysis.Fail && failed.Verdict != analysis.Critical {
		t.Fatalf("the patching window's verdict is %s", failed.Verdict)
	}
	gray := failed.Services[0].Gray
	if failed.Nodes != 3 || failed.NodesReporting != 3 {
		t.Errorf("the failing window merged %d of %d nodes, want 3 of 3", failed.Nodes, failed.NodesReporting)
	}
	// Node-0 alone would show about 30%; merged with two healthy nodes
	// about 10%.
	if gray.ErrorRate <= 0 || gray.ErrorRate >= 20 {
		t.Errorf("gray's error rate in the failing window %.1f%%: not the fleet's merge", gray.ErrorRate)
	}
	t.Logf("failing window: gray %d requests, %.1f%% errors, over %d nodes", gray.Requests, gray.ErrorRate, failed.Nodes)
	checkFleetMetrics(t, k, nodes, "checkout")
}

// grayDecisions is how many requests a node's graymesh decided gray
// (graymesh_decisions_total with env="gray", every hop and reason; -1
// before the first).
func grayDecisions(t *testing.T, nd *fleetNode) float64 {
	var gray []string
	for _, line := range strings.Split(getMetrics(t, nd.admin), "\n") {
		if strings.Contains(line, `env="gray"`) {
			gray = append(gray, line)
		}
	}
	return metricValue(strings.Join(gray, "\n"), "graymesh_decisions_total")
}

// checkFleetMetrics: the fleet's windows are counted on the analyser's
// /metrics only — the leader's — with the nodes each merged; the other
// nodes count none.
func checkFleetMetrics(t *testing.T, k *kubeCP, nodes []*fleetNode, release string) {
	t.Helper()
	leader := k.leader(t)
	for _, nd := range nodes {
		resp, err := nd.client.Get(nd.admin + "/metrics")
		must(t, err)
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		must(t, err)
		text := string(b)
		failed := metricValue(text, `graymesh_fleet_analysis_verdicts_total{release="`+release+`",verdict="fail"}`) +
			max(metricValue(text, `graymesh_fleet_analysis_verdicts_total{release="`+release+`",verdict="critical"}`), 0)
		switch {
		case nd.name == leader && failed < 1:
			t.Errorf("the analyser %s counts %v failing windows of %s on /metrics", nd.name, failed, release)
		case nd.name == leader && !strings.Contains(text, `graymesh_fleet_analysis_nodes{kind="merged",release="`+release+`"} 3`):
			t.Errorf("the analyser %s does not show 3 nodes merged on /metrics", nd.name)
		case nd.name != leader && metricValue(text, "graymesh_fleet_analysis_verdicts_total") != -1:
			t.Errorf("%s, not the analyser, counts fleet windows", nd.name)
		}
	}
}

// leader is the node holding the status writer's Lease: the one running
// the fleet analyser.
func (k *kubeCP) leader(t *testing.T) string {
	t.Helper()
	return strings.TrimSpace(k.mustKubectl("", "-n", "graymesh", "get", "lease", "graymesh-status-writer", "-o", "jsonpath={.spec.holderIdentity}"))
}

// TestKubeFleetAnalyserHandsOver: the fleet analyser is killed (SIGKILL,
// its Lease not released) after the rollout's first step. Another node is
// elected, reads the persisted test and the last window judged, judges
// the windows its predecessor left from the nodes' published evidence,
// and takes the remaining steps: each step exactly once (three steps, three
// generations), the record's windows contiguous across the handover (no
// window lost), judged by both analysers.
func TestKubeFleetAnalyserHandsOver(t *testing.T) {
	const n = 3
	k := startKube(t)
	k.installCRD()
	nodes := startFleet(t, k, n)
	k.mustKubectl(grayRelease("checkout", "  env: gray\n  percent: 20\n  analysis: {interval: 2s, min_requests: 30}\n  schedule:\n"+
		"  - {at: \"2020-01-01T00:00:00Z\", percent: 40}\n  - {at: \"2020-01-01T00:01:00Z\", percent: 60}\n  - {at: \"2020-01-01T00:02:00Z\", percent: 80}\n"),
		"apply", "-f", "-")
	stop := fleetLoad(t, nodes)
	waitFor(t, "the first step taken", 60*time.Second, func() error {
		obj, err := k.release("checkout")
		if err != nil {
			return err
		}
		if spec, _ := obj["spec"].(map[string]any); spec["percent"] != 40.0 {
			return fmt.Errorf("spec.percent %v", spec["percent"])
		}
		return nil
	})
	first := k.leader(t)
	var survivors []*fleetNode
	for _, nd := range nodes {
		if nd.name == first {
			nd.graymesh.kill()
		} else {
			survivors = append(survivors, nd)
		}
	}
	if len(survivors) != n-1 {
		t.Fatalf("the Lease names %q, no node of the fleet", first)
	}
	waitFor(t, "every step taken after the handover", 90*time.Second, func() error {
		obj, err := k.release("checkout")
		if err != nil {
			return err
		}
		if spec, _ := obj["spec"].(map[string]any); spec["percent"] != 80.0 || spec["schedule"] != nil {
			return fmt.Errorf("spec.percent %v, schedule %v", spec["percent"], spec["schedule"])
		}
		return nil
	})
	stop()
	obj, err := k.release("checkout")
	must(t, err)
	if g := generation(obj); g != 4 {
		t.Errorf("generation %d after three steps, want 4: a step was taken twice (or lost)", g)
	}
	spec, _ := obj["spec"].(map[string]any)
	change, _ := spec["change"].(map[string]any)
	second := k.leader(t)
	if r := fmt.Sprint(change["reason"]); second == first || !regexp.MustCompile(`^fleet analysis by `+regexp.QuoteMeta(second)+`: pass — advance to 80% `).MatchString(r) {
		t.Errorf("last step's reason %q; analysers %s then %s", r, first, second)
	}
	checkHandedOver(t, fleetWindows(t, survivors[0], "checkout"), first, second)
}

// checkHandedOver: the windows follow each other without a gap, the
// first analyser judged some and the second the rest, and the steps were
// taken in order, once each.
func checkHandedOver(t *testing.T, ws []admin.Window, first, second string) {
	t.Helper()
	by := map[string]int{}
	var steps []string
	for i, w := range ws {
		by[w.ActedBy]++
		if i > 0 && !w.From.Equal(ws[i-1].To) {
			t.Errorf("window %d starts %s, the one before ended %s: a window was lost", w.Index, w.From, ws[i-1].To)
		}
		if i > 0 && w.Index != ws[i-1].Index+1 {
			t.Errorf("window %d follows window %d", w.Index, ws[i-1].Index)
		}
		if strings.Contains(w.Action, "GrayRelease patched") {
			steps = append(steps, strings.SplitN(w.Action, " (", 2)[0])
		}
		t.Logf("window %d %s–%s by %s, %d of %d nodes: %s → %s", w.Index, w.From.Format("15:04:05"), w.To.Format("15:04:05"),
			w.ActedBy, w.Nodes, w.NodesReporting, w.Verdict, w.Action)
	}
	if by[first] == 0 || by[second] == 0 || len(by) != 2 {
		t.Errorf("windows judged by %v, want both %s and %s only", by, first, second)
	}
	if want := "advance to 40%,advance to 60%,advance to 80%"; strings.Join(steps, ",") != want {
		t.Errorf("patches %v, want %s", steps, want)
	}
}
