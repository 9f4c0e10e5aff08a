package analyser

import (
	"context"
	"fmt"
	"time"

	"github.com/graymesh/graymesh/internal/contract/config"
	"github.com/graymesh/graymesh/internal/core/analysis"
)

// In Kubernetes mode a node never judges or acts on its own slice of the
// traffic: every window it publishes its evidence (FleetNode), and the one
// fleet analyser (FleetJudge) merges every node's before any test runs.
// Windows are aligned on the wall clock — window k of a release with
// interval d is [k·d, (k+1)·d) since the Unix epoch — so that the nodes'
// windows of one index cover the same time without any coordination.

// FleetNode is where a node's runner publishes its evidence in Kubernetes
// mode, and where it reads the fleet's windows back for `graymesh
// analysis` and the console.
type FleetNode interface {
	// PublishEvidence makes e, this node's evidence of release's window
	// index, readable by the fleet analyser.
	PublishEvidence(ctx context.Context, release string, index int64, e *analysis.Evidence) error
	// FleetWindows is the fleet analyser's record of release's windows,
	// oldest first.
	FleetWindows(ctx context.Context, release string) ([]Window, error)
}

// UseFleet makes the runner publish its evidence to f in Kubernetes mode
// (before Run).
func (a *Runner) UseFleet(f FleetNode) { a.fleet = f }

// WindowIndex is the index of the aligned window holding t.
func WindowIndex(t time.Time, interval time.Duration) int64 {
	return t.UnixNano() / int64(interval)
}

// WindowStart is when the aligned window index begins.
func WindowStart(index int64, interval time.Duration) time.Time {
	return time.Unix(0, index*int64(interval)).UTC()
}

// publishTimeout bounds one window's publication.
const publishTimeout = 10 * time.Second

// publishLoop publishes release's evidence at the end of every aligned
// window until ctx is done.
func (a *Runner) publishLoop(ctx context.Context, release string, interval time.Duration) {
	now := a.pipe.Clock().Now()
	if q, _, ok := query(a.pipe.Config(), release, now, now); ok {
		a.collector.Watch(q)
	}
	for {
		index := WindowIndex(a.pipe.Clock().Now(), interval)
		end := WindowStart(index+1, interval)
		t := time.NewTimer(time.Until(end))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if err := a.Publish(ctx, release, index, interval); err != nil && ctx.Err() == nil {
			a.log.Warn("publishing analysis evidence", "release", release, "window", index, "error", err)
		}
	}
}

// Publish closes release's window index and publishes it: the node's part
// of the fleet's window.
func (a *Runner) Publish(ctx context.Context, release string, index int64, interval time.Duration) error {
	q, r, ok := query(a.pipe.Config(), release, WindowStart(index, interval), WindowStart(index+1, interval))
	if !ok {
		return nil
	}
	if a.fleet == nil {
		return fmt.Errorf("kubernetes mode without a fleet analyser to publish to")
	}
	ev, err := a.nodeEvidence(ctx, r, q)
	if err != nil {
		return err
	}
	ev.From, ev.To = q.From, q.To
	pctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	return a.fleet.PublishEvidence(pctx, release, index, ev)
}

// nodeEvidence is this node's part of window q. With source prometheus
// the fleet analyser asks Prometheus for the whole fleet's window itself
// (every node's share of it would be the fleet's total, counted once per
// node), so a node publishes only which services it analyses.
func (a *Runner) nodeEvidence(ctx context.Context, r *config.Release, q analysis.Query) (*analysis.Evidence, error) {
	if a.source == nil && r.Analysis.Source == config.SourcePrometheus {
		return analysis.NewEvidence(q), nil
	}
	src, err := a.sourceFor(r)
	if err != nil {
		return nil, err
	}
	return collectEvidence(ctx, src, q)
}

// fleetStatusTimeout bounds reading the fleet's windows for the admin API.
const fleetStatusTimeout = 5 * time.Second

// fleetWindows is release's fleet windows (Kubernetes mode), the last n
// (all when n ≤ 0), and why none could be read.
func (a *Runner) fleetWindows(release string, n int) ([]Window, string) {
	if a.fleet == nil {
		return nil, "no fleet analyser: this node publishes nowhere"
	}
	ctx, cancel := context.WithTimeout(context.Background(), fleetStatusTimeout)
	defer cancel()
	ws, err := a.fleet.FleetWindows(ctx, release)
	if err != nil {
		return nil, "the fleet analyser's record could not be read: " + err.Error()
	}
	if n > 0 && len(ws) > n {
		ws = ws[len(ws)-n:]
	}
	return ws, ""
}
