package gray

import (
	"strings"
	"testing"
	"time"

	"github.com/graymesh/graymesh/internal/contract/config"
	"github.com/graymesh/graymesh/internal/contract/wire"
	"github.com/graymesh/graymesh/internal/core/lane"
)

// stressConfig has a release at 0% (STATE replaced).
const stressConfig = `
lane: {key: "gray-test-lane-key-0123456789abcdef"}
membership: {enabled: true}
releases:
  - {name: shop-v2, env: gray, salt: s, percent: 0, state: STATE}
services:
  - name: frontend
    sidecar: {inbound_port: 10001, outbound_port: 15001, edge: true}
    environments: {stable: ["127.0.0.1:9201"], gray: ["127.0.0.1:9202"]}
  - name: inventory
    sidecar: {inbound_port: 10003, outbound_port: 15003}
    environments: {stable: ["127.0.0.1:9204"], gray: ["127.0.0.1:9205"]}
`

// TestStressMarkerDecides: a verified marker sends the request to its
// release's environment at 0% and while frozen, with a stress lane the
// inner hop follows as stress; killed, stable serves it, still marked as
// shadow load; a forged, expired or unknown-release marker is ignored and
// says why, and the request is decided as if unmarked.
func TestStressMarkerDecides(t *testing.T) {
	now := time.Now()
	policy := func(state string) *Policy {
		return mustCompile(t, strings.Replace(stressConfig, "STATE", state, 1))
	}
	active := policy("active")
	marker, err := active.Lanes.SignStress("shop-v2", now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := lane.NewSigner([]byte("some-other-mesh-key-0123456789abcd"), time.Minute)
	forged, _ := other.SignStress("shop-v2", now, time.Hour)
	unknown, _ := active.Lanes.SignStress("cart-v9", now, time.Hour)
	tests := []struct {
		name, state, marker string
		env                 string
		reason              Reason
		stress              bool
		problem             string
	}{
		{"0%", "active", marker, "gray", ReasonStress, true, ""},
		{"frozen", "frozen", marker, "gray", ReasonStress, true, ""},
		{"killed", "killed", marker, config.Stable, ReasonKilled, true, ""},
		{"forged", "active", forged, "", ReasonNoIdentity, false, "unknown-key"},
		{"unknown release", "active", unknown, "", ReasonNoIdentity, false, "unknown-release"},
		{"garbage", "active", "not-a-marker", "", ReasonNoIdentity, false, "malformed"},
		{"none", "active", "", "", ReasonNoIdentity, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := policy(tt.state)
			o := p.Decide(Request{Hop: Hop{Service: "frontend"}, StressMarker: tt.marker, Now: now})
			if o.Env != tt.env || o.Reason != tt.reason || o.Stress != tt.stress || o.StressProblem != tt.problem {
				t.Fatalf("env %q reason %s stress %v problem %q, want %q %s %v %q", o.Env, o.Reason, o.Stress, o.StressProblem, tt.env, tt.reason, tt.stress, tt.problem)
			}
			if o.Membership != "" {
				t.Error("a stress request was handed a membership")
			}
			stressHeader := false
			for _, h := range o.RequestHeaders() {
				stressHeader = stressHeader || (h.Name == wire.HeaderStress && h.Value == "1")
			}
			if stressHeader != tt.stress {
				t.Errorf("%s header set %v", wire.HeaderStress, stressHeader)
			}
			if !tt.stress {
				return
			}
			inner := p.Decide(Request{Hop: Hop{Inner: true, Service: "inventory"}, Lane: o.Lane, Now: now})
			if !inner.Stress {
				t.Errorf("the inner hop does not see the stress lane: %+v", inner)
			}
		})
	}
}
