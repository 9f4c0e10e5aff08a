package kube

import (
	"context"
	"errors"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/graymesh/graymesh/internal/core/identity"
	"github.com/graymesh/graymesh/internal/runtime/control"
)

// ControllerOptions configure one replica of the graymesh controller
// (docs/kubernetes.md, "Roles").
type ControllerOptions struct {
	// Client is the connection, namespace included (Connect).
	Client *Client
	// ConfigPath is the nodes' config file: every GrayRelease is checked
	// with the same static settings and code as on a node, so the
	// Accepted condition the leader writes is the nodes' verdict.
	ConfigPath string
	// Identity names the replica in the leader election.
	Identity string
	// Registerer takes the change pipeline's and the fleet analysis's
	// metrics (none when nil).
	Registerer prometheus.Registerer
	// Synced, when set, is called once the initial list is checked: the
	// replica is ready.
	Synced func()
	Log    *slog.Logger
}

// RunController runs one controller replica until ctx is done: the
// GrayRelease watch feeds a change pipeline without sinks (it checks, it
// serves nothing), and the replica stands for the leader election of the
// Lease LeaseName; while elected it writes every GrayRelease's status and
// conditions from the node reports, keeps the fleet version's record and
// the finalizer, and runs the fleet analysis (merging the nodes' evidence
// ConfigMaps and acting by patching the object). Two replicas (or more)
// may run: one leads, the others wait for its Lease to lapse.
func RunController(ctx context.Context, o ControllerOptions) error {
	if o.Client == nil || o.ConfigPath == "" || o.Identity == "" || o.Log == nil {
		return errors.New("kube controller: Client, ConfigPath, Identity and Log are required")
	}
	src := NewSource(o.Client, o.Log)
	judge, err := NewFleetJudge(o.Client, src, o.Identity, o.Log, o.Registerer)
	if err != nil {
		return err
	}
	src.WhileElected(judge.Run)
	pipe, err := control.New(control.Options{
		Path:       o.ConfigPath,
		Fleet:      Fleet{Source: src, Actor: NewActor(o.Client, o.Identity), FleetView: NewFleetView(src)},
		Sources:    identity.NewSources(o.Log.With("component", "identity")),
		Registerer: o.Registerer,
		Log:        o.Log,
	})
	if err != nil {
		return err
	}
	if err := src.Start(ctx); err != nil {
		return err
	}
	src.Sync(pipe)
	if o.Synced != nil {
		o.Synced()
	}
	o.Log.Info("controller started", "namespace", o.Client.Namespace)
	return src.Serve(ctx, pipe, Duties{Identity: o.Identity, StatusWriter: true})
}
