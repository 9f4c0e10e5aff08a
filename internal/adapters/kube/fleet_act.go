package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"github.com/graymesh/graymesh/api/v1alpha1"
	"github.com/graymesh/graymesh/internal/contract/config"
	"github.com/graymesh/graymesh/internal/runtime/control"
)

// Actor is how a node's analysis acts in Kubernetes mode: it patches the
// release's GrayRelease with the same patch as `graymesh release
// freeze|kill|percent --kube`, and every node puts the change in force
// from its watch. It is part of Fleet (control.Fleet).
//
// Every node judges the release on its own Envoy's logs, so many may act
// on one verdict at once. Each patch is conditional twice over: it is not
// sent when the object already is where the action leads (frozen, killed,
// rolled back, the step taken), and it carries the resourceVersion it was
// decided on, which the API server checks as a precondition (Kubernetes
// API concepts, "Resource versions"): of two nodes deciding on the same
// version, one patch lands and the other gets 409 Conflict, reads the
// object again and finds nothing left to do. So a schedule step is taken
// once, and a freeze is one generation, however many nodes agree.
type Actor struct {
	client *Client
	node   string
	// refuse, when set, is why this process never patches a spec: a node
	// pod of the split roles, whose Role grants no patch.
	refuse string
}

// NewActor acts as node (its name in the reasons it records).
func NewActor(c *Client, node string) *Actor { return &Actor{client: c, node: node} }

// NewNodeActor is the actor of a node pod when a controller runs the
// fleet's analysis: it refuses every action, saying who acts instead.
func NewNodeActor(node string) *Actor {
	return &Actor{node: node, refuse: "node " + node + " does not patch GrayReleases (--kube-role=node): the graymesh controller's fleet analysis acts, and people act with graymesh release --kube or kubectl"}
}

// actAttempts bounds the read-decide-patch rounds of one action; a
// conflict means another writer moved the object, usually to the target.
const actAttempts = 3

// maxChangeReason is the CRD's MaxLength of spec.change.reason.
const maxChangeReason = 500

// ActOnFleet is part of control.Fleet.
func (a *Actor) ActOnFleet(ctx context.Context, fa control.FleetAction) (string, error) {
	if a.refuse != "" {
		return "", errors.New(a.refuse)
	}
	return a.actWithReason(ctx, fa, fmt.Sprintf("analysis on node %s: %s", a.node, fa.Reason))
}

// actWithReason takes fa with reason as the object's change.reason.
func (a *Actor) actWithReason(ctx context.Context, fa control.FleetAction, reason string) (string, error) {
	reason = truncateUTF8(reason, maxChangeReason)
	for range actAttempts {
		u, err := a.client.Resource().Get(ctx, fa.Release, metav1.GetOptions{})
		if err != nil {
			return "", err
		}
		skip, patch, err := fleetPatch(u, fa, reason)
		if err != nil || skip != "" {
			return skip, err
		}
		_, err = a.client.Resource().Patch(ctx, fa.Release, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: "graymesh-analysis"})
		switch {
		case apierrors.IsConflict(err):
			continue
		case err != nil:
			return "", err
		}
		return fmt.Sprintf("GrayRelease patched from resourceVersion %s", u.GetResourceVersion()), nil
	}
	return "", fmt.Errorf("GrayRelease %s changed under each of %d attempts", fa.Release, actAttempts)
}

// fleetPatch decides fa on object u: a note when there is nothing to do,
// else the merge patch, with u's resourceVersion as its precondition.
func fleetPatch(u *unstructured.Unstructured, fa control.FleetAction, reason string) (string, []byte, error) {
	gr, err := fromUnstructured(u)
	if err != nil {
		return "", nil, err
	}
	if skip := fleetSkip(gr.Spec, fa); skip != "" {
		return skip, nil, nil
	}
	var spec map[string]any
	switch fa.Kind {
	case control.FleetFreeze, control.FleetKill:
		spec, err = patchSpec(fa.Kind, 0, false, reason)
	case control.FleetRollback:
		spec, err = patchSpec("percent", 0, true, reason)
	case control.FleetAdvance:
		// The step becomes the percentage, and the schedule keeps the
		// steps after it, as they are stored.
		spec, err = patchSpec("percent", fa.Step.Percent, false, reason)
		if rest, _, _ := unstructured.NestedSlice(u.Object, "spec", "schedule"); err == nil && len(rest) > 1 {
			spec["schedule"] = rest[1:]
		}
	default:
		err = fmt.Errorf("%w: analysis action %q", ErrAction, fa.Kind)
	}
	if err != nil {
		return "", nil, err
	}
	b, err := json.Marshal(map[string]any{"metadata": map[string]any{"resourceVersion": u.GetResourceVersion()}, "spec": spec})
	return "", b, err
}

// fleetSkip is why fa has nothing left to do on spec ("" when it has).
func fleetSkip(spec v1alpha1.GrayReleaseSpec, fa control.FleetAction) string {
	state := spec.State
	if state == config.StateKilled {
		return "release already killed on the fleet"
	}
	switch fa.Kind {
	case control.FleetFreeze:
		if state == config.StateFrozen {
			return "release already frozen on the fleet"
		}
	case control.FleetRollback:
		if spec.Percent == 0 && len(spec.Schedule) == 0 {
			return "release already rolled back on the fleet"
		}
	case control.FleetAdvance:
		if state == config.StateFrozen {
			return "release frozen on the fleet"
		}
		if len(spec.Schedule) == 0 || !spec.Schedule[0].At.Time.Equal(fa.Step.At) || spec.Schedule[0].Percent != fa.Step.Percent {
			return "step already taken on the fleet"
		}
	}
	return ""
}

// percentInForce is status.percent: with an analysis the schedule waits
// for a passing window, and in this mode a step taken becomes
// spec.percent (fleetPatch), so the steps left in the schedule are not in
// force yet, whatever their at.
func percentInForce(rel *config.Release, now time.Time) float64 {
	if rel.Analysis != nil {
		return rel.Percent
	}
	return rel.PercentAt(now)
}
