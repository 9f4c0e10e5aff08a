package kube

import (
	"encoding/json"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/graymesh/graymesh/internal/contract/config"
	"github.com/graymesh/graymesh/internal/runtime/control"
)

// object is a stored GrayRelease as the API server returns it.
func object(t *testing.T, rv, spec string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := json.Unmarshal([]byte(`{"apiVersion":"graymesh.io/v1alpha1","kind":"GrayRelease","metadata":{"name":"checkout","resourceVersion":"`+rv+`","generation":3},"spec":`+spec+`}`), &u.Object); err != nil {
		t.Fatal(err)
	}
	return u
}

// TestFleetPatch: each analysis action becomes the emergency control's
// patch, with the resourceVersion it was decided on as a precondition;
// an action whose target the object already has sends nothing.
func TestFleetPatch(t *testing.T) {
	step0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ramp := `{"env":"gray","percent":1,"schedule":[{"at":"2026-01-01T00:00:00Z","percent":10},{"at":"2030-01-01T00:00:00Z","percent":100}]}`
	tests := []struct {
		name, spec string
		fa         control.FleetAction
		skip, want string
	}{
		{"freeze", `{"env":"gray","percent":5}`, control.FleetAction{Kind: control.FleetFreeze}, "",
			`{"metadata":{"resourceVersion":"41"},"spec":{"change":{"reason":"R","rollback":false},"effective_at":null,"state":"frozen"}}`},
		{"freeze, already frozen", `{"env":"gray","state":"frozen"}`, control.FleetAction{Kind: control.FleetFreeze}, "release already frozen on the fleet", ""},
		{"freeze, killed", `{"env":"gray","state":"killed"}`, control.FleetAction{Kind: control.FleetFreeze}, "release already killed on the fleet", ""},
		{"kill", `{"env":"gray","state":"frozen"}`, control.FleetAction{Kind: control.FleetKill}, "",
			`{"metadata":{"resourceVersion":"41"},"spec":{"change":{"reason":"R","rollback":false},"effective_at":null,"state":"killed"}}`},
		{"rollback", ramp, control.FleetAction{Kind: control.FleetRollback}, "",
			`{"metadata":{"resourceVersion":"41"},"spec":{"change":{"reason":"R","rollback":true},"effective_at":null,"percent":0,"schedule":null}}`},
		{"rollback, already", `{"env":"gray"}`, control.FleetAction{Kind: control.FleetRollback}, "release already rolled back on the fleet", ""},
		{"advance", ramp, control.FleetAction{Kind: control.FleetAdvance, Step: config.Step{At: step0, Percent: 10}}, "",
			`{"metadata":{"resourceVersion":"41"},"spec":{"change":{"reason":"R","rollback":false},"effective_at":null,"percent":10,"schedule":[{"at":"2030-01-01T00:00:00Z","percent":100}]}}`},
		{"advance, the last step", `{"env":"gray","percent":1,"schedule":[{"at":"2026-01-01T00:00:00Z","percent":10}]}`,
			control.FleetAction{Kind: control.FleetAdvance, Step: config.Step{At: step0, Percent: 10}}, "",
			`{"metadata":{"resourceVersion":"41"},"spec":{"change":{"reason":"R","rollback":false},"effective_at":null,"percent":10,"schedule":null}}`},
		// Another node took the step first: this node's view is behind.
		{"advance, step taken", `{"env":"gray","percent":10,"schedule":[{"at":"2030-01-01T00:00:00Z","percent":100}]}`,
			control.FleetAction{Kind: control.FleetAdvance, Step: config.Step{At: step0, Percent: 10}}, "step already taken on the fleet", ""},
		{"advance, frozen", `{"env":"gray","state":"frozen","schedule":[{"at":"2026-01-01T00:00:00Z","percent":10}]}`,
			control.FleetAction{Kind: control.FleetAdvance, Step: config.Step{At: step0, Percent: 10}}, "release frozen on the fleet", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			skip, patch, err := fleetPatch(object(t, "41", tt.spec), tt.fa, "R")
			if err != nil {
				t.Fatal(err)
			}
			if skip != tt.skip || string(patch) != tt.want {
				t.Errorf("skip %q patch %s\nwant skip %q patch %s", skip, patch, tt.skip, tt.want)
			}
		})
	}
	if _, _, err := fleetPatch(object(t, "41", `{"env":"gray"}`), control.FleetAction{Kind: "revive"}, "R"); err == nil {
		t.Error("an unknown analysis action was patched")
	}
}

// TestPercentInForceHeldByAnalysis: status.percent of an analysed release
// is spec.percent until a window passes, even with steps due by time.
func TestPercentInForceHeldByAnalysis(t *testing.T) {
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	r := config.Release{Percent: 1, Schedule: []config.Step{{At: now.Add(-time.Hour), Percent: 10}}}
	if p := percentInForce(&r, now); p != 10 {
		t.Errorf("without analysis: %v, want the due step's 10", p)
	}
	r.Analysis = &config.Analysis{}
	if p := percentInForce(&r, now); p != 1 {
		t.Errorf("with analysis: %v, want spec.percent 1", p)
	}
}
