package fleetbench

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"runtime/pprof"
	"slices"
	"sync/atomic"
	"time"

	"github.com/graymesh/graymesh/internal/contract/config"
	"github.com/graymesh/graymesh/internal/testing/kubeharness"
)

// measureRest measures the API server's request rate while the fleet
// idles.
func measureRest(ctx context.Context, cp *kubeharness.ControlPlane, res *Result) error {
	p0, err := metricsPage(cp)
	if err != nil {
		return err
	}
	t0 := time.Now()
	if err := pause(ctx, res.Rest); err != nil {
		return err
	}
	p1, err := metricsPage(cp)
	if err != nil {
		return err
	}
	res.RestRates = rates(requestCounts(p0), requestCounts(p1), time.Since(t0).Seconds(), 0.05)
	res.logf("at rest: %.1f requests/s (%v)", total(res.RestRates), res.RestRates)
	return nil
}

// rampSteps is a ramp as a schedule or an operator makes it: the
// percentage raised in steps, each a spec change every node puts in force
// and reports.
const rampSteps = 10

// measureRamp measures the API server's request rate while the release's
// percentage goes from 50 to 55, 60, … 100 (raised only: a lower one
// would be an eviction, refused), one step every RampEvery, and for one
// RampEvery after the last: the fleet's traffic for a rollout.
func measureRamp(ctx context.Context, cp *kubeharness.ControlPlane, res *Result) error {
	if res.RampEvery == 0 {
		res.RampEvery = 3 * time.Second
	}
	p0, err := metricsPage(cp)
	if err != nil {
		return err
	}
	t0 := time.Now()
	for step := 1; step <= rampSteps; step++ {
		if err := patchSpec(cp, fmt.Sprintf(`{"percent":%d,"change":{"reason":"fleetbench ramp"}}`, 50+50*step/rampSteps)); err != nil {
			return fmt.Errorf("ramp step %d: %w", step, err)
		}
		if err := pause(ctx, res.RampEvery); err != nil {
			return err
		}
	}
	p1, err := metricsPage(cp)
	if err != nil {
		return err
	}
	res.RampSeconds = time.Since(t0).Seconds()
	res.RampRates = rates(requestCounts(p0), requestCounts(p1), res.RampSeconds, 0.05)
	res.logf("ramp (%d steps, %s apart): %.1f requests/s (%v)", rampSteps, res.RampEvery, total(res.RampRates), res.RampRates)
	// Back to 50%, declared a rollback, for the measures that follow.
	if err := patchSpec(cp, `{"percent":50,"change":{"rollback":true,"reason":"fleetbench: after the ramp"}}`); err != nil {
		return fmt.Errorf("roll back after the ramp: %w", err)
	}
	return nil
}

// measureKills times res.Kills kill rounds, each followed by a revive,
// and counts the watch events of both changes.
func measureKills(ctx context.Context, cp *kubeharness.ControlPlane, nodes []*vnode, res *Result) error {
	p0, err := metricsPage(cp)
	if err != nil {
		return err
	}
	e0, b0 := watchEvents(p0)
	if res.KillProfile != nil {
		if err := pprof.StartCPUProfile(res.KillProfile); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	for round := range res.Kills {
		for _, n := range nodes {
			n.arm()
		}
		t0 := time.Now()
		if err := patchState(cp, config.StateKilled); err != nil {
			return err
		}
		if err := waitUntil(ctx, res.Timeout, "the kill in force on every node", func() (bool, error) {
			for _, n := range nodes {
				if n.killedAt().IsZero() {
					return false, nil
				}
			}
			return true, nil
		}); err != nil {
			return err
		}
		for _, n := range nodes {
			res.Kill = append(res.Kill, n.killedAt().Sub(t0))
		}
		if err := waitUntil(ctx, res.Timeout, "status: every node on the kill", func() (bool, error) {
			n, err := statusNodes(cp)
			return n == res.Nodes, err
		}); err != nil {
			return err
		}
		res.Status = append(res.Status, time.Since(t0))
		res.logf("round %d: kill in force everywhere after %s, status %d/%d after %s", round+1,
			slices.Max(res.Kill[len(res.Kill)-len(nodes):]).Round(time.Millisecond), res.Nodes, res.Nodes, res.Status[round].Round(time.Millisecond))
		if err := patchState(cp, config.StateActive); err != nil {
			return err
		}
		if err := waitUntil(ctx, res.Timeout, "status: every node on the revive", func() (bool, error) {
			n, err := statusNodes(cp)
			return n == res.Nodes, err
		}); err != nil {
			return err
		}
	}
	p1, err := metricsPage(cp)
	if err != nil {
		return err
	}
	e1, b1 := watchEvents(p1)
	changes := float64(2 * res.Kills)
	res.EventsPerChange, res.BytesPerChange = (e1-e0)/changes, (b1-b0)/changes
	return nil
}

func patchState(cp *kubeharness.ControlPlane, state string) error {
	return patchSpec(cp, fmt.Sprintf(`{"state":%q,"change":{"reason":"fleetbench"}}`, state))
}

// patchSpec merge-patches the release's spec with the JSON object spec.
func patchSpec(cp *kubeharness.ControlPlane, spec string) error {
	_, err := cp.Do(http.MethodPatch, "/apis/graymesh.io/v1alpha1/namespaces/graymesh/grayreleases/"+release,
		"application/merge-patch+json", []byte(`{"spec":`+spec+`}`))
	return err
}

// measureRestart kills kube-apiserver, waits until every node knows its
// watch is broken, starts it again and measures the reconnect.
func measureRestart(ctx context.Context, cp *kubeharness.ControlPlane, nodes []*vnode, res *Result) error {
	cp.StartWithin = res.Timeout
	cp.StopAPIServer()
	if err := waitUntil(ctx, res.Timeout, "every node stale while kube-apiserver is down", func() (bool, error) {
		for _, n := range nodes {
			if n.src.Staleness() == 0 {
				return false, nil
			}
		}
		return true, nil
	}); err != nil {
		return err
	}
	started := time.Now()
	if res.RestartWindow == 0 {
		res.RestartWindow = 30 * time.Second
	}
	var current atomic.Int64
	go func() {
		_ = waitUntil(ctx, res.RestartWindow+res.Timeout, "every node current", func() (bool, error) {
			for _, n := range nodes {
				if n.src.Staleness() > 0 {
					return false, nil
				}
			}
			current.Store(int64(time.Since(started)))
			return true, nil
		})
	}()
	if err := cp.StartAPIServer(); err != nil {
		return err
	}
	res.RestartReady = time.Since(started)
	ready := time.Now()
	// The API server's counters start at zero with the process: each
	// sample's rate is over the time since the previous one (the first,
	// since the process started), and the count runs until RestartWindow
	// after it was ready (a start under a reconnect storm can take longer
	// than the window).
	prevSum, prevAt := 0.0, started
	for time.Since(ready) < res.RestartWindow {
		if err := pause(ctx, time.Second); err != nil {
			return err
		}
		page, err := metricsPage(cp)
		if err != nil {
			continue
		}
		sum := 0.0
		for _, v := range requestCounts(page) {
			sum += v
		}
		now := time.Now()
		res.RestartPeakPerSec = math.Max(res.RestartPeakPerSec, (sum-prevSum)/now.Sub(prevAt).Seconds())
		prevSum, prevAt, res.RestartRequests = sum, now, sum
	}
	if err := waitUntil(ctx, res.Timeout, "every node current after kube-apiserver's restart", func() (bool, error) {
		return current.Load() != 0, nil
	}); err != nil {
		return err
	}
	res.RestartCurrent = time.Duration(current.Load())
	res.logf("restart: kube-apiserver ready %s after it started, every node current after %s; %.0f requests until %s after it was ready, peak %.0f/s",
		res.RestartReady.Round(time.Millisecond), res.RestartCurrent.Round(time.Millisecond), res.RestartRequests, res.RestartWindow, res.RestartPeakPerSec)
	return nil
}

// pause waits d, or until ctx is done (its error).
func pause(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
