package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/graymesh/graymesh/internal/contract/wire"
	"github.com/graymesh/graymesh/internal/core/lane"
	"github.com/graymesh/graymesh/internal/runtime/admin"
)

// stressMarker mints a stress marker for release through the admin API.
func stressMarker(t *testing.T, adminURL, release string) string {
	t.Helper()
	resp, err := http.Post(adminURL+"/v1/releases/"+release+"/stress-marker?ttl=10m", "", nil)
	must(t, err)
	defer resp.Body.Close()
	var m admin.StressMarker
	must(t, json.NewDecoder(resp.Body).Decode(&m))
	if resp.StatusCode != http.StatusOK || m.Marker == "" || m.Header != wire.HeaderStressMarker {
		t.Fatalf("stress marker: %s %+v", resp.Status, m)
	}
	return m.Marker
}

// stressMarks is, hop by hop, the x-gray-stress each service was handed.
func (c chainReply) stressMarks() []string {
	out := []string{c.Service + ":" + c.Gray[wire.HeaderStress]}
	for _, next := range c.Calls {
		out = append(out, next.stressMarks()...)
	}
	return out
}

const (
	grayChainHops   = "frontend:gray orders:gray inventory:stable pricing:gray"
	stableChainHops = "frontend:stable orders:stable inventory:stable pricing:stable"
	everyHopMarked  = "frontend:1 orders:1 inventory:1 pricing:1"
	noHopMarked     = "frontend: orders: inventory: pricing:"
)

// TestMeshStressTestLoadsGrayAtZero: shop-v2 at 0%, with an analysis.
// Requests carrying a stress marker graymesh minted reach gray at every
// hop that has it, marked x-gray-stress on every hop; real callers, a
// forged marker and a client's own x-gray-stress stay stable and
// unmarked. Shadow requests are counted apart (the decisions counter
// moves only for the real ones), never reach the analysis (its windows
// hold no gray request, its access log counted them as stress), and the
// traces show the mark on every hop. Killed, the marked chain goes to
// stable, still marked as shadow load.
//
//nolint:funlen // one mesh, one story: shadow traffic and what sees it
func TestMeshStressTestLoadsGrayAtZero(t *testing.T) {
	m := newFourHop(t, func(cfg string) string {
		return strings.Replace(cfg, "percent: 50", "percent: 0\n    analysis: {interval: 2s}", 1)
	})
	marker := stressMarker(t, m.admin, "shop-v2")
	before := m.metrics(t)

	const shadow = 12
	var ids []string
	for range shadow {
		id := newTraceID()
		r, err := m.chain(id, map[string]string{wire.HeaderStressMarker: marker})
		must(t, err)
		if got := strings.Join(r.hops(), " "); got != grayChainHops {
			t.Fatalf("stress chain %s, want %s", got, grayChainHops)
		}
		if got := strings.Join(r.stressMarks(), " "); got != everyHopMarked {
			t.Fatalf("stress marks %s, want %s", got, everyHopMarked)
		}
		if r.Gray[wire.HeaderReason] != "stress" {
			t.Fatalf("edge reason %q, want stress", r.Gray[wire.HeaderReason])
		}
		ids = append(ids, id)
	}

	other, err := lane.NewSigner([]byte("not-the-mesh-key-0123456789abcdef-0123"), time.Minute)
	must(t, err)
	forged, err := other.SignStress("shop-v2", time.Now(), time.Hour)
	must(t, err)
	real := map[string]map[string]string{
		"anonymous":              nil,
		"bob":                    bearer(m.token("bob", time.Now().Add(time.Hour))),
		"forged marker":          {wire.HeaderStressMarker: forged},
		"client's x-gray-stress": {wire.HeaderStress: "1"},
	}
	for name, h := range real {
		r, err := m.chain(newTraceID(), h)
		must(t, err)
		if got := strings.Join(r.hops(), " "); got != stableChainHops {
			t.Errorf("%s: chain %s, want stable", name, got)
		}
		if got := strings.Join(r.stressMarks(), " "); got != noHopMarked {
			t.Errorf("%s: stress marks %s, want none", name, got)
		}
	}

	after := m.metrics(t)
	if d := metricValue(after, "graymesh_decisions_total") - max(metricValue(before, "graymesh_decisions_total"), 0); d != float64(len(real)) {
		t.Errorf("graymesh_decisions_total moved by %g, want %d: only real requests are decisions", d, len(real))
	}
	if n := metricValue(after, "graymesh_stress_requests_total"); n != shadow {
		t.Errorf("graymesh_stress_requests_total %g, want %d", n, shadow)
	}
	if n := metricValue(after, "graymesh_stress_markers_ignored_total"); n != 1 {
		t.Errorf("graymesh_stress_markers_ignored_total %g, want 1 (the forged marker)", n)
	}

	// The analysis never sees shadow load: every sidecar's access-log
	// entry of a stress chain is counted apart, and no window holds a
	// gray request (no real caller is admitted at 0%).
	waitFor(t, "the stress chains' access-log entries", 30*time.Second, func() error {
		if n := metricValue(m.metrics(t), "graymesh_analysis_stress_entries_total"); n < 4*shadow {
			return fmt.Errorf("graymesh_analysis_stress_entries_total %g, want %d (4 hops × %d chains)", n, 4*shadow, shadow)
		}
		return nil
	})
	sent := time.Now()
	waitFor(t, "an analysis window closed after the stress chains", 30*time.Second, func() error {
		st := analysisOf(t, m.admin, "shop-v2")
		if len(st.Windows) == 0 || st.Windows[len(st.Windows)-1].To.Before(sent) {
			return fmt.Errorf("%d windows, none ending after %s", len(st.Windows), sent.Format(time.RFC3339Nano))
		}
		return nil
	})
	for _, w := range analysisOf(t, m.admin, "shop-v2").Windows {
		for _, s := range w.Services {
			if s.Gray.Requests != 0 {
				t.Errorf("window %s–%s: %s has %d gray requests: shadow load reached the analysis", w.From.Format(time.TimeOnly), w.To.Format(time.TimeOnly), s.Service, s.Gray.Requests)
			}
		}
	}

	r, code := m.waitForTraces(ids)
	if code != 0 || r.Leaks != 0 || r.StressLost != 0 || r.Stress < shadow {
		t.Fatalf("verify-traces exit %d: %d leaks, %d stress chains (want ≥ %d), %d hops lost the mark", code, r.Leaks, r.Stress, shadow, r.StressLost)
	}

	// Killed means nobody: shadow load goes to stable, still marked.
	m.adminPost(t, "/v1/releases/shop-v2/kill?reason=stress+test")
	waitFor(t, "a marked chain served stable after the kill", 20*time.Second, func() error {
		r, err := m.chain(newTraceID(), map[string]string{wire.HeaderStressMarker: marker})
		if err != nil {
			return err
		}
		if got := strings.Join(r.hops(), " "); got != stableChainHops {
			return fmt.Errorf("chain %s", got)
		}
		if got := strings.Join(r.stressMarks(), " "); got != everyHopMarked {
			t.Fatalf("killed: stress marks %s, want %s", got, everyHopMarked)
		}
		return nil
	})
	m.adminPost(t, "/v1/releases/shop-v2/revive?reason=stress+test")
}

// TestMeshLoadtestAbortsWhenGrayBreaks: graymesh loadtest at 0% loads
// gray through the edge and reports gray against the stable baseline; with
// gray's frontend failing half its requests it stops early, exits 1 and
// says why.
func TestMeshLoadtestAbortsWhenGrayBreaks(t *testing.T) {
	m := newFourHop(t, func(cfg string) string { return strings.Replace(cfg, "percent: 50", "percent: 0", 1) })
	out, code := m.loadtest(t, "--rate", "20", "--ramp-up", "1s", "--duration", "3s", "--baseline-rate", "5")
	if code != 0 {
		t.Fatalf("healthy gray: exit %d\n%s", code, out)
	}
	envs := regexp.MustCompile(`envs: shadow (.*); baseline (.*)`).FindStringSubmatch(out)
	if envs == nil || !regexp.MustCompile(`^gray \d+$`).MatchString(envs[1]) || !regexp.MustCompile(`^stable \d+$`).MatchString(envs[2]) {
		t.Fatalf("healthy gray: shadow must all be gray and baseline all stable:\n%s", out)
	}
	spoil(t, fmt.Sprintf("127.0.0.1:%d", m.ports[9207]), "error_rate=0.5")
	out, code = m.loadtest(t, "--rate", "40", "--ramp-up", "1s", "--duration", "60s", "--abort-error-rate", "0.2")
	if code != 1 || !strings.Contains(out, "ABORTED: shadow error rate") || !strings.Contains(out, "first shadow failure: status 5") {
		t.Fatalf("spoiled gray: exit %d, want 1 with the abort and the first failure:\n%s", code, out)
	}
	t.Logf("spoiled gray:\n%s", out)
}

// loadtest runs graymesh loadtest against the mesh's edge for shop-v2 and
// returns its output and exit code.
func (m *fourHop) loadtest(t *testing.T, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args = append([]string{"loadtest", "--admin", m.admin, "--release", "shop-v2", "--target", m.edge + "/", "--progress", "off"}, args...)
	out, err := exec.CommandContext(ctx, filepath.Join(binDir, "graymesh"), args...).CombinedOutput()
	var exitErr *exec.ExitError
	switch {
	case errors.As(err, &exitErr):
		return string(out), exitErr.ExitCode()
	case err != nil:
		t.Fatalf("graymesh loadtest: %v\n%s", err, out)
	}
	return string(out), 0
}
