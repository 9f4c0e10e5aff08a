package gray

import (
	"strings"
	"testing"
	"time"

	"github.com/graymesh/graymesh/internal/contract/config"
	"github.com/graymesh/graymesh/internal/core/lane"
)

const followConfig = `
lane: {key: "gray-test-lane-key-0123456789abcdef"}
membership: {enabled: true}
releases:
  - {name: shop-v2, env: gray, salt: s, whitelist: [alice], state: STATE}
services:
  - name: frontend
    sidecar: {inbound_port: 10001, outbound_port: 15001, edge: true}
    environments: {stable: ["127.0.0.1:9201"], gray: ["127.0.0.1:9202"]}
  - name: inventory
    sidecar: {inbound_port: 10003, outbound_port: 15003}
    environments: {stable: ["127.0.0.1:9204"]}
`

func compileFollow(t *testing.T, state string) *Policy {
	t.Helper()
	return mustCompile(t, strings.Replace(followConfig, "STATE", state, 1))
}

// TestInnerHopFollowsTheLane: an inner hop honours a lane the edge signed
// exactly as its Envoy's routes do (plan.Service.InnerRoutes): the lane's
// environment, stable with a fallback where the service has no version
// of it, stable when the release is killed, refused or missing — and a
// lane not honoured is not passed on.
func TestInnerHopFollowsTheLane(t *testing.T) {
	now := time.Now()
	active := compileFollow(t, "active")
	edge := active.Decide(Request{Hop: Hop{Service: "frontend"}, Asserted: &Asserted{Subject: "alice"}, Now: now})
	if edge.Env != "gray" || !edge.SetLane || edge.Lane == "" {
		t.Fatalf("edge: %+v", edge)
	}
	if anon := active.Decide(Request{Hop: Hop{Service: "frontend"}, Lane: edge.Lane, Now: now}); !anon.RemovesLane() {
		t.Fatalf("an anonymous edge request keeps the client's lane: %+v", anon)
	}
	other, _ := lane.NewSigner([]byte("some-other-mesh-key-0123456789abcd"), time.Minute)
	tests := []struct {
		name, state, service, lane string
		env                        string
		reason                     Reason
		fallback, problem          string
		drops                      bool
	}{
		{"lane", "active", "frontend", edge.Lane, "gray", ReasonLane, "", "", false},
		{"no version of the lane's env", "active", "inventory", edge.Lane, "gray", ReasonLane, "no-gray-version", "", false},
		{"no lane", "active", "frontend", "", "", ReasonLaneMissing, "", "", false},
		{"forged", "active", "frontend", other.Sign("gray", "shop-v2", "1", now), "stable", ReasonLaneRefused, "", "lane-bad-signature", true},
		{"killed", "killed", "frontend", edge.Lane, "stable", ReasonKilled, "", "", true},
		{"frozen keeps travelling lanes", "frozen", "frontend", edge.Lane, "gray", ReasonLane, "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := compileFollow(t, tt.state)
			o := p.Decide(Request{Hop: Hop{Inner: true, Service: tt.service}, Lane: tt.lane, Now: now})
			if o.Env != tt.env || o.Reason != tt.reason || o.Fallback != tt.fallback || o.LaneProblem != tt.problem || o.RemovesLane() != tt.drops {
				t.Fatalf("%+v", o)
			}
			ex := p.Explain(Request{Hop: Hop{Inner: true, Service: tt.service}, Lane: tt.lane, Now: now})
			if ex.Reason != tt.reason || ex.LaneProblem != tt.problem {
				t.Fatalf("explain says %+v", ex)
			}
		})
	}
}

// TestCompiledPlanCarriesLaneKeys: the plan every output translates holds
// the public keys inner hops verify with, and the killed releases.
func TestCompiledPlanCarriesLaneKeys(t *testing.T) {
	p := compileFollow(t, "killed")
	if p.Plan.Lane == nil || p.Plan.Lane.Keys != p.Lanes.JWKS() || p.Plan.Lane.TTL != p.Lanes.TTL() || p.Plan.Lane.ClockSkew != lane.ClockSkew {
		t.Fatalf("plan lane %+v", p.Plan.Lane)
	}
	if strings.Contains(p.Plan.Lane.Keys, "gray-test-lane-key") || !strings.Contains(p.Plan.Lane.Keys, p.Lanes.KeyID()) {
		t.Fatalf("keys %s", p.Plan.Lane.Keys)
	}
	if len(p.Plan.Killed) != 1 || p.Plan.Killed[0] != "shop-v2" {
		t.Fatalf("killed %v", p.Plan.Killed)
	}
}

// TestKillStopsLanesByFleetVersion: with fleet versions a kill at an
// inner hop stops the lanes issued under the node's version or before,
// and lanes whose version it cannot place, but honours a lane issued
// under a newer version — an edge that has applied the revive this node
// has not; in file mode every lane of the killed release is stopped.
func TestKillStopsLanesByFleetVersion(t *testing.T) {
	now := time.Now()
	signer, err := lane.NewSigner([]byte("gray-test-lane-key-0123456789abcdef"), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		fleet       bool
		laneVersion string
		reason      Reason
	}{
		{"issued before the kill", true, "4", ReasonKilled},
		{"issued at the node's version", true, "5", ReasonKilled},
		{"issued after the revive", true, "6", ReasonLane},
		{"no version", true, "", ReasonKilled},
		{"not an integer", true, "6a", ReasonKilled},
		{"file mode, newer number", false, "6", ReasonKilled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := config.Parse([]byte(strings.Replace(followConfig, "STATE", "killed", 1)), "t.yaml")
			if err != nil {
				t.Fatal(err)
			}
			cfg.Version, cfg.FleetVersion = "5", tt.fleet
			p, err := Compile(cfg)
			if err != nil {
				t.Fatal(err)
			}
			o := p.Decide(Request{Hop: Hop{Inner: true, Service: "frontend"}, Lane: signer.Sign("gray", "shop-v2", tt.laneVersion, now), Now: now})
			if o.Reason != tt.reason || (o.Env == "gray") != (tt.reason == ReasonLane) {
				t.Fatalf("%+v", o)
			}
		})
	}
}
