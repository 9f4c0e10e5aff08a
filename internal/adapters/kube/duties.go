package kube

import (
	"context"
	"time"

	"golang.org/x/sync/errgroup"
)

// Duties say what a process runs beside its watch of the GrayRelease
// objects, by role (docs/kubernetes.md, "Roles"): a node reports, a
// controller stands for the status writer's election, a node in role all
// does both.
type Duties struct {
	// Identity names the process in its report and in the election.
	Identity string
	// Report keeps the node report current: on every change of what the
	// node serves and once per Heartbeat (0: ReportHeartbeat).
	Report    bool
	Heartbeat time.Duration
	// StatusWriter stands for the election and, while elected, writes the
	// status and runs the duties registered with WhileElected.
	StatusWriter bool
}

// Serve runs the watch, feeding every change to ap, and d's duties until
// ctx is done. Call Start and Sync first: the initial list is in force
// before Serve.
func (s *Source) Serve(ctx context.Context, ap Applier, d Duties) error {
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { s.Run(gctx, ap); return nil })
	if d.StatusWriter {
		g.Go(func() error { return s.RunStatusWriter(gctx, d.Identity) })
	}
	if d.Report {
		g.Go(func() error { return s.RunReporter(gctx, d.Identity, d.Heartbeat) })
	}
	return g.Wait()
}
