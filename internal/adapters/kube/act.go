package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"github.com/graymesh/graymesh/internal/contract/config"
)

// ErrAction marks an action Kubernetes mode has no patch for.
var ErrAction = errors.New("no such action in Kubernetes mode")

// Patch is the JSON merge patch of GrayRelease spec that an emergency
// control makes: kill, freeze, unfreeze (revive) or percent. It always
// writes change, so a rollback declared by an earlier change never
// carries over to this one, and clears effective_at: an emergency control
// takes effect now, never at a time an earlier change set (a change of
// the release held for its time is replaced). `kubectl patch grayrelease
// NAME --type merge -p PATCH` sends the same bytes (docs/kubernetes.md).
func Patch(kind string, percent float64, rollback bool, reason string) ([]byte, error) {
	spec, err := patchSpec(kind, percent, rollback, reason)
	if err != nil {
		return nil, err
	}
	return json.Marshal(map[string]any{"spec": spec})
}

// patchSpec is Patch's spec, which the analysis's fleet actions reuse.
func patchSpec(kind string, percent float64, rollback bool, reason string) (map[string]any, error) {
	if reason == "" {
		reason = "graymesh release " + kind
	}
	spec := map[string]any{"change": map[string]any{"rollback": rollback, "reason": reason}, "effective_at": nil}
	switch kind {
	case "kill":
		spec["state"] = config.StateKilled
	case "freeze":
		spec["state"] = config.StateFrozen
	case "unfreeze", "revive":
		spec["state"] = config.StateActive
	case "percent":
		// An explicit percentage replaces the schedule, as the admin
		// API's percent override does.
		spec["percent"], spec["schedule"] = percent, nil
	default:
		return nil, fmt.Errorf("%w: %q (kill, freeze, unfreeze, revive, percent)", ErrAction, kind)
	}
	return spec, nil
}

// Act patches GrayRelease name; the API server's CEL rules refuse an
// evicting change without rollback, with the rule's message.
func Act(ctx context.Context, c *Client, name, kind string, percent float64, rollback bool, reason string) (*unstructured.Unstructured, error) {
	b, err := Patch(kind, percent, rollback, reason)
	if err != nil {
		return nil, err
	}
	return c.Resource().Patch(ctx, name, types.MergePatchType, b, metav1.PatchOptions{FieldManager: "graymesh-release"})
}

// AcceptedOf is the status of u's Accepted condition ("" before any).
func AcceptedOf(u *unstructured.Unstructured) string {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		if m, ok := c.(map[string]any); ok && m["type"] == CondAccepted {
			return fmt.Sprint(m["status"])
		}
	}
	return ""
}
